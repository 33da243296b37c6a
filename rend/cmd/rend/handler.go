package main

import (
	"github.com/moneta-cache/moneta/rend/orca"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
)

// handler is the client-facing Handler of one port (metrics.Observed
// around the port's orchestrator): it answers "stats settings", adds rend's
// extra fields to "stats", and counts every request in the client layer's
// metrics (from counters resolved at start, so it adds no allocation).
// Pipelined gets reach the orchestrator together (server.GetBatcher).
func (p *daemon) handler(next protocol.Handler, mode orca.Mode) *metrics.BatchObserved {
	return &metrics.BatchObserved{Observed: metrics.Observed{Next: next, Commands: p.client, Extra: p.extraStats,
		Settings: func(dst []protocol.Stat) []protocol.Stat { return p.settings(dst, mode) }}}
}

var _ server.GetBatcher = (*metrics.BatchObserved)(nil)
