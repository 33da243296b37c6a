package main

import (
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// handler is the client-facing Handler (metrics.Observed around the
// store): it answers "stats settings" with the whole configuration, adds
// the process's fields to "stats", and counts every request per command and
// outcome (pre-resolved counters: no allocation). The store answers one
// request at a time, so this is not a server.GetBatcher.
func (p *daemon) handler() protocol.Handler {
	return &metrics.Observed{Next: p.st, Commands: p.cmds, Settings: p.settings, Extra: p.extraStats}
}
