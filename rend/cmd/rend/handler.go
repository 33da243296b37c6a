package main

import (
	"context"
	"time"

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

// setBatcher is the orchestrator's HandleSets (server.RunBatcher's).
type setBatcher interface {
	HandleSets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error)
}

// HandleSets passes a run of pipelined sets to the orchestrator (in the
// L2 modes one L1 take-out, one L2 burst and one L1 put-back for the run)
// and counts each request as Handle does.
func (h *runObserved) HandleSets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	sb, ok := h.Next.(setBatcher)
	if !ok {
		for i, req := range reqs {
			errs[i] = h.Handle(ctx, req, resps[i])
		}
		return
	}
	start := time.Now()
	sb.HandleSets(ctx, reqs, resps, errs)
	for i, req := range reqs {
		h.Commands.Request(req, resps[i], errs[i], start)
	}
}
