package main

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
)

var _ server.GetBatcher = (*observed)(nil)

// HandleGets passes gets a client pipelined to the orchestrator together
// (server.GetBatcher: one backend lookup for all of them instead of round
// trips per request) and counts each request as Handle does. A next that
// cannot batch gets them one at a time.
func (h *observed) HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	start := time.Now()
	if gb, ok := h.next.(server.GetBatcher); ok {
		gb.HandleGets(ctx, reqs, resps, errs)
	} else {
		for i, req := range reqs {
			errs[i] = h.next.Handle(ctx, req, resps[i])
		}
	}
	for i, req := range reqs {
		h.p.client.Request(req, resps[i], errs[i], start)
	}
}
