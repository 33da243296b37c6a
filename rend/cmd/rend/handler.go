package main

import (
	"context"

	"github.com/moneta-cache/moneta/rend/orca"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
)

// handler is the client-facing Handler of one port (metrics.Observed
// around the port's orchestrator): it answers "stats settings", adds rend's
// extra fields to "stats", and counts every request in the client layer's
// metrics (from counters resolved at start, so it adds no allocation).
// Pipelined gets and mg lines reach the orchestrator together
// (server.RunBatcher: one L1 lookup for all of them).
func (p *daemon) handler(next protocol.Handler, mode orca.Mode) *runObserved {
	return &runObserved{metrics.BatchObserved{Observed: metrics.Observed{Next: next, Commands: p.client, Extra: p.extraStats,
		Settings: func(dst []protocol.Stat) []protocol.Stat { return p.settings(dst, mode) }}}}
}

// runObserved is metrics.BatchObserved as a server.RunBatcher, so that the
// server hands buffered mg lines to HandleGets with the gets around them
// (a plain GetBatcher gets only classic gets together).
type runObserved struct{ metrics.BatchObserved }

var _ server.RunBatcher = (*runObserved)(nil)

// HandleSets answers a run of pipelined sets one by one, in order, exactly
// as Handle answers each (every write holds its key's stripe for its own
// L1-L2-L1 sequence).
func (h *runObserved) HandleSets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	for i, req := range reqs {
		errs[i] = h.Handle(ctx, req, resps[i])
	}
}
