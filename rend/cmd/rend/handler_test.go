package main

import (
	"context"
	"errors"
	"testing"

	"github.com/moneta-cache/moneta/rend/orca"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// batcher answers a hit for key "k", fails key "down", misses the rest, and
// counts its HandleGets calls.
type batcher struct{ calls int }

func (b *batcher) Handle(_ context.Context, req *protocol.Request, resp *protocol.Response) error {
	switch string(req.Key()) {
	case "k":
		resp.AppendHit(0, []byte("v"), 0, 1, 0)
	case "down":
		return errors.New("backend down")
	}
	return nil
}

func (b *batcher) HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	b.calls++
	for i, req := range reqs {
		errs[i] = b.Handle(ctx, req, resps[i])
	}
}

// TestObservedHandleGets: the client-layer handler hands a batch of gets to
// a batching orchestrator in one call (or one by one to one that cannot
// batch) and counts every request of it.
func TestObservedHandleGets(t *testing.T) {
	reqs := make([]*protocol.Request, 3)
	for i, k := range []string{"k", "nope", "down"} {
		reqs[i] = &protocol.Request{Command: protocol.CmdGet}
		reqs[i].AddKey([]byte(k))
	}
	b := &batcher{}
	for _, next := range []protocol.Handler{b, protocol.HandlerFunc(b.Handle)} {
		p := &daemon{client: metrics.NewCommands(prometheus.NewRegistry(), "x", "client")}
		h := p.handler(next, orca.L1L2)
		resps := []*protocol.Response{new(protocol.Response), new(protocol.Response), new(protocol.Response)}
		errs := make([]error, 3)
		h.HandleGets(context.Background(), reqs, resps, errs)
		if len(resps[0].Hits) != 1 || len(resps[1].Hits) != 0 || errs[0] != nil || errs[1] != nil || errs[2] == nil {
			t.Fatalf("answers %+v %+v, errs %v", resps[0], resps[1], errs)
		}
		if n := p.client.Total(protocol.CmdGet); n != 3 {
			t.Errorf("%d gets counted, want 3", n)
		}
	}
	if b.calls != 1 {
		t.Errorf("HandleGets called %d times, want 1", b.calls)
	}
}
