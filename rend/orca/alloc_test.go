package orca

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// l1OnlyMem returns an l1only orchestrator over an in-process L1 (default
// chunk size), so allocation counts measure the orchestrator's L1 path.
func l1OnlyMem(tb testing.TB) *Orca {
	o, err := New(Config{Mode: L1Only, L1: memBackend{memstore.New(memstore.Options{})}})
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// l1GetAllocs stores a value of n bytes and returns the allocations of one
// get of it.
func l1GetAllocs(tb testing.TB, o *Orca, n int) float64 {
	ctx := context.Background()
	val := bytes.Repeat([]byte{'v'}, n)
	set := &protocol.Request{Command: protocol.CmdSet, Value: val}
	set.AddKey([]byte("key"))
	if err := o.Handle(ctx, set, new(protocol.Response)); err != nil {
		tb.Fatal(err)
	}
	get := &protocol.Request{Command: protocol.CmdGet}
	get.AddKey([]byte("key"))
	resp := new(protocol.Response)
	run := func() {
		resp.Reset()
		if err := o.Handle(ctx, get, resp); err != nil || len(resp.Hits) != 1 || !bytes.Equal(resp.Hits[0].Value, val) {
			tb.Fatalf("get: %v %+v", err, resp)
		}
	}
	run()
	return testing.AllocsPerRun(200, run)
}

// TestL1GetAllocs: an L1 hit of an inline or a one-chunk value (up to the
// chunk size: the common small value) allocates nothing in orca; a longer
// value allocates its assembled buffer and nothing else.
func TestL1GetAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector")
	}
	o := l1OnlyMem(t)
	for _, tc := range []struct {
		size int
		max  float64
	}{{100, 0}, {1024, 0}, {5000, 1}} {
		if got := l1GetAllocs(t, o, tc.size); got > tc.max {
			t.Errorf("get of a %d-byte value: %v allocs, want at most %v", tc.size, got, tc.max)
		}
	}
}

// TestL1BatchAllocs: a 16-key multi-get and 16 pipelined gets and mg
// served together (HandleGets) allocate nothing in orca either.
func TestL1BatchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector")
	}
	o := l1OnlyMem(t)
	ctx := context.Background()
	multi := &protocol.Request{Command: protocol.CmdGet}
	reqs := make([]*protocol.Request, 16)
	resps := make([]*protocol.Response, 16)
	for i := range reqs {
		k := []byte(fmt.Sprintf("key%d", i))
		set := &protocol.Request{Command: protocol.CmdSet, Value: bytes.Repeat([]byte{'v'}, 1000+i)}
		set.AddKey(k)
		if err := o.Handle(ctx, set, new(protocol.Response)); err != nil {
			t.Fatal(err)
		}
		multi.AddKey(k)
		reqs[i] = &protocol.Request{Command: protocol.CmdGet}
		reqs[i].AddKey(k)
		if i%2 == 1 { // plain mg batch with the gets (RunBatcher)
			reqs[i].Mods.Meta = true
			reqs[i].Want = protocol.WantValue | protocol.WantFlags
		}
		resps[i] = new(protocol.Response)
	}
	resp := new(protocol.Response)
	errs := make([]error, len(reqs))
	runMulti := func() {
		resp.Reset()
		if err := o.Handle(ctx, multi, resp); err != nil || len(resp.Hits) != 16 {
			t.Fatalf("multi-get: %v, %d hits", err, len(resp.Hits))
		}
	}
	runBatch := func() {
		for _, r := range resps {
			r.Reset()
		}
		o.HandleGets(ctx, reqs, resps, errs)
		for i, r := range resps {
			if errs[i] != nil || len(r.Hits) != 1 || len(r.Hits[0].Value) != 1000+i {
				t.Fatalf("batched get %d: %v %+v", i, errs[i], r)
			}
		}
	}
	for name, run := range map[string]func(){"multi-get": runMulti, "batched gets": runBatch} {
		run()
		if got := testing.AllocsPerRun(100, run); got != 0 {
			t.Errorf("%s of 16 keys: %v allocs, want 0", name, got)
		}
	}
}

// okBackend answers every request StatusOK and keeps nothing, so that the
// allocations of a write are orca's alone.
type okBackend struct{}

func (okBackend) Handle(context.Context, *protocol.Request, *protocol.Response) error { return nil }
func (okBackend) Do(_ context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	for i := range reqs {
		resps[i].Reset()
	}
	return nil
}
func (okBackend) Healthy() bool { return true }

// TestL1SetAllocs: writing a value into L1 (chunks and header) allocates
// nothing in orca, whatever its size.
func TestL1SetAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector")
	}
	o, err := New(Config{Mode: L1Only, L1: okBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, size := range []int{100, 1024, 5000} {
		set := &protocol.Request{Command: protocol.CmdSet, Value: bytes.Repeat([]byte{'v'}, size)}
		set.AddKey([]byte("key"))
		resp := new(protocol.Response)
		run := func() {
			resp.Reset()
			if err := o.Handle(ctx, set, resp); err != nil || resp.Status != protocol.StatusOK {
				t.Fatalf("set: %v %v", err, resp.Status)
			}
		}
		run()
		if got := testing.AllocsPerRun(200, run); got != 0 {
			t.Errorf("set of a %d-byte value: %v allocs, want 0", size, got)
		}
	}
}

func BenchmarkL1OnlyGet(b *testing.B) {
	for _, size := range []int{100, 1024, 5000} {
		b.Run(byteSize(size), func(b *testing.B) {
			o := l1OnlyMem(b)
			ctx := context.Background()
			set := &protocol.Request{Command: protocol.CmdSet, Value: bytes.Repeat([]byte{'v'}, size)}
			set.AddKey([]byte("key"))
			o.Handle(ctx, set, new(protocol.Response))
			get := &protocol.Request{Command: protocol.CmdGet}
			get.AddKey([]byte("key"))
			resp := new(protocol.Response)
			b.ReportAllocs()
			for b.Loop() {
				resp.Reset()
				o.Handle(ctx, get, resp)
			}
		})
	}
}

func BenchmarkL1OnlySet(b *testing.B) {
	for _, size := range []int{100, 1024, 5000} {
		b.Run(byteSize(size), func(b *testing.B) {
			o := l1OnlyMem(b)
			ctx := context.Background()
			set := &protocol.Request{Command: protocol.CmdSet, Value: bytes.Repeat([]byte{'v'}, size)}
			set.AddKey([]byte("key"))
			resp := new(protocol.Response)
			b.ReportAllocs()
			for b.Loop() {
				resp.Reset()
				o.Handle(ctx, set, resp)
			}
		})
	}
}

func byteSize(n int) string { return fmt.Sprintf("%05dB", n) }

// BenchmarkL1L2Writes: each write of the two-layer mode (take L1's copy
// out, the record, put back) over in-process backends, for allocs/op.
func BenchmarkL1L2Writes(b *testing.B) {
	for _, cmd := range []protocol.Command{protocol.CmdSet, protocol.CmdAdd, protocol.CmdAppend,
		protocol.CmdIncr, protocol.CmdTouch, protocol.CmdDelete} {
		b.Run(cmd.String(), func(b *testing.B) {
			o := memOrca(b, false)
			ctx := context.Background()
			set := &protocol.Request{Command: protocol.CmdSet, Value: []byte("1")}
			set.AddKey([]byte("key"))
			req := &protocol.Request{Command: cmd, Value: []byte("1"), Delta: 1, Exptime: 100, HasExptime: true}
			req.AddKey([]byte("key"))
			resp := new(protocol.Response)
			b.ReportAllocs()
			for b.Loop() {
				resp.Reset()
				o.Handle(ctx, set, resp)
				resp.Reset()
				o.Handle(ctx, req, resp)
			}
		})
	}
}
