package orca

import (
	"context"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// metaReq runs a meta-style request (Mods.Meta) against h.
func metaReq(t *testing.T, h protocol.Handler, cmd protocol.Command, key string, mod func(*protocol.Request)) *protocol.Response {
	t.Helper()
	req := new(protocol.Request)
	req.Command = cmd
	req.AddKey([]byte(key))
	req.Mods.Meta = true
	if mod != nil {
		mod(req)
	}
	resp := new(protocol.Response)
	if err := h.Handle(context.Background(), req, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestL1OnlyMetaState: in l1only mode the chunk header keeps the meta
// state: md I makes the item stale, the first mg wins (X W), the next sees
// Z X, a classic get serves the value; mg N vivifies once. Inline and
// chunked values alike.
func TestL1OnlyMetaState(t *testing.T) {
	r := newRig(t, false)
	o := r.regular
	for _, n := range []int{1, 3*testChunk + 5} {
		v := value(n)
		status(t, do(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: v}), protocol.StatusOK)
		st := metaReq(t, o, protocol.CmdDelete, "k", func(r *protocol.Request) { r.Invalidate = true })
		status(t, st, protocol.StatusOK)
		h := metaReq(t, o, protocol.CmdGet, "k", nil).Hits
		if len(h) != 1 || !h[0].Win || !h[0].Stale || h[0].Won || string(h[0].Value) != v {
			t.Fatalf("%d bytes: first mg after md I: %+v", n, h)
		}
		h = metaReq(t, o, protocol.CmdGet, "k", nil).Hits
		if len(h) != 1 || h[0].Win || !h[0].Stale || !h[0].Won {
			t.Fatalf("%d bytes: second mg after md I: %+v", n, h)
		}
		if g, ok := get1(t, o, "k"); !ok || string(g.Value) != v {
			t.Fatalf("%d bytes: classic get of a stale item: %+v %v", n, g, ok)
		}
	}
	viv := func(r *protocol.Request) { r.Vivify, r.Mods.VivifyExptime = true, 100 }
	if h := metaReq(t, o, protocol.CmdGet, "v", viv).Hits; len(h) != 1 || !h[0].Win {
		t.Fatalf("mg N on a miss: %+v", h)
	}
	if h := metaReq(t, o, protocol.CmdGet, "v", viv).Hits; len(h) != 1 || h[0].Win || !h[0].Won {
		t.Fatalf("second mg N: %+v", h)
	}
}

// TestL1OnlyModifyAllocs bounds the allocations of an l1only incr (a
// read-modify-write through package item) against an in-memory L1. The 3
// left are the in-memory L1's own (memstore copies each stored value into a
// new entry); rend's path itself allocates nothing (go test -bench
// L1OnlyIncr -memprofile shows them all in memstore.apply).
func TestL1OnlyModifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector")
	}
	o, incr, resp := l1OnlyIncr(t)
	ctx := context.Background()
	n := testing.AllocsPerRun(200, func() {
		resp.Reset()
		o.Handle(ctx, incr, resp)
	})
	if n > 3 {
		t.Errorf("l1only incr: %v allocs per request", n)
	}
}

func BenchmarkL1OnlyIncr(b *testing.B) {
	o, incr, resp := l1OnlyIncr(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp.Reset()
		o.Handle(ctx, incr, resp)
	}
}

// l1OnlyIncr is an l1only Orca over memstore holding n=100, and an incr of
// n with its response, for the allocation test and benchmark.
func l1OnlyIncr(tb testing.TB) (*Orca, *protocol.Request, *protocol.Response) {
	o := l1OnlyMem(tb)
	set := &protocol.Request{Command: protocol.CmdSet, Value: []byte("100")}
	set.AddKey([]byte("n"))
	o.Handle(context.Background(), set, new(protocol.Response))
	incr := &protocol.Request{Command: protocol.CmdIncr, Delta: 1}
	incr.AddKey([]byte("n"))
	return o, incr, new(protocol.Response)
}
