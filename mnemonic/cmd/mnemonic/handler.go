package main

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/mnemonic/store"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
)

// handler is the client-facing Handler (metrics.Observed around the
// store): it answers "stats settings" with the whole configuration, adds
// the process's fields to "stats", and counts every request per command and
// outcome (pre-resolved counters: no allocation). It is a
// server.RunBatcher: pipelined gets and mg lines reach the store together
// (one MultiGet per shard), and so do pipelined sets (one WriteBatch per
// shard).
func (p *daemon) handler() protocol.Handler {
	return &runObserved{
		BatchObserved: metrics.BatchObserved{Observed: metrics.Observed{Next: p.st, Commands: p.cmds, Settings: p.settings, Extra: p.extraStats}},
		st:            p.st,
	}
}

// runObserved adds HandleSets to metrics.BatchObserved.
type runObserved struct {
	metrics.BatchObserved
	st *store.Store
}

var _ server.RunBatcher = (*runObserved)(nil)

// HandleSets passes a run of pipelined sets to the store and counts each
// request as Handle does.
func (h *runObserved) HandleSets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	start := time.Now()
	h.st.HandleSets(ctx, reqs, resps, errs)
	for i, req := range reqs {
		h.Commands.Request(req, resps[i], errs[i], start)
	}
}
