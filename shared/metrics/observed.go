package metrics

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Observed is a daemon's client-facing handler around the one that does the
// work (rend's orchestrator, mnemonic's store): it answers "stats settings"
// from the daemon's configuration, appends the daemon's own fields to a
// successful "stats", and counts every request in Commands. The funcs are
// built once at start, so a request costs no allocation here.
type Observed struct {
	Next     protocol.Handler
	Commands *Commands
	// Settings appends the "stats settings" lines.
	Settings func(dst []protocol.Stat) []protocol.Stat
	// Extra appends the daemon's fields to the general "stats".
	Extra func(dst []protocol.Stat) []protocol.Stat
}

func (h *Observed) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	start := time.Now()
	var err error
	if req.Command == protocol.CmdStats && string(req.Args) == "settings" {
		resp.Status = protocol.StatusOK
		resp.Stats = h.Settings(resp.Stats)
	} else {
		err = h.Next.Handle(ctx, req, resp)
		if req.Command == protocol.CmdStats && len(req.Args) == 0 && err == nil && resp.Status == protocol.StatusOK {
			resp.Stats = h.Extra(resp.Stats)
		}
	}
	h.Commands.Request(req, resp, err, start)
	return err
}

// BatchObserved is Observed for a Next that takes pipelined gets together
// (rend's orchestrator; server.GetBatcher).
type BatchObserved struct{ Observed }

// getBatcher is server.GetBatcher, restated so metrics need not import
// the server.
type getBatcher interface {
	HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error)
}

// HandleGets passes gets a client pipelined to Next together (one backend
// lookup for all of them instead of round trips per request) and counts
// each request as Handle does. A Next that cannot batch gets them one at a
// time.
func (h *BatchObserved) HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	start := time.Now()
	if gb, ok := h.Next.(getBatcher); ok {
		gb.HandleGets(ctx, reqs, resps, errs)
	} else {
		for i, req := range reqs {
			errs[i] = h.Next.Handle(ctx, req, resps[i])
		}
	}
	h.Commands.Batch(reqs, resps, errs, start)
}
