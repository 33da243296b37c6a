package orca

import (
	"context"
	"testing"

	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// memBackend is an in-process Backend (shared/memstore), so that allocation
// counts measure the orchestrator alone, without sockets.
type memBackend struct{ *memstore.Store }

func (m memBackend) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	for i, r := range reqs {
		if err := m.Handle(ctx, r, resps[i]); err != nil {
			return err
		}
	}
	return nil
}

func (memBackend) Healthy() bool { return true }

// memOrca returns an l1l2 orchestrator over in-process backends, either
// bare or with both layers instrumented.
func memOrca(tb testing.TB, instrument bool) *Orca {
	var l1, l2 Backend = memBackend{memstore.New(memstore.Options{})}, memBackend{memstore.New(memstore.Options{})}
	if instrument {
		reg := prometheus.NewRegistry()
		l1 = Instrument(l1, metrics.NewCommands(reg, "t", "l1"))
		l2 = Instrument(l2, metrics.NewCommands(reg, "t", "l2"))
	}
	o, err := New(Config{Mode: L1L2, L1: l1, L2: l2})
	if err != nil {
		tb.Fatal(err)
	}
	return o
}

// getAllocs returns the allocations of one get of key (after a set), for an
// L1 hit and for a key present only in L2 (an L1 miss, L2 hit and lost fill).
func getAllocs(tb testing.TB, o *Orca) (hit, l2 float64) {
	ctx := context.Background()
	set := &protocol.Request{Command: protocol.CmdSet, Value: []byte("value")}
	set.AddKey([]byte("k"))
	if err := o.Handle(ctx, set, new(protocol.Response)); err != nil {
		tb.Fatal(err)
	}
	get := &protocol.Request{Command: protocol.CmdGet}
	get.AddKey([]byte("k"))
	resp := new(protocol.Response)
	run := func() {
		resp.Reset()
		o.Handle(ctx, get, resp)
		o.WaitFills() // a fill behind the reply is part of the cost
	}
	run()
	hit = testing.AllocsPerRun(200, run)
	// A key only L2 has: each read misses L1, hits L2 and fills L1, so
	// the measured function deletes the L1 copy first.
	cold := &protocol.Request{Command: protocol.CmdSet, Value: []byte("cold")}
	cold.AddKey([]byte("c"))
	o.l2.Backend().Handle(ctx, cold, new(protocol.Response))
	get.Keys = get.Keys[:0]
	get.AddKey([]byte("c"))
	run()
	del := &protocol.Request{Command: protocol.CmdDelete}
	del.AddKey([]byte("c"))
	l2 = testing.AllocsPerRun(200, func() {
		o.l1.Backend().Handle(ctx, del, new(protocol.Response))
		run()
	})
	return hit, l2
}

// TestInstrumentAddsNoAllocs: per-layer metrics cost no allocation on the
// request path.
func TestInstrumentAddsNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector")
	}
	bareHit, bareL2 := getAllocs(t, memOrca(t, false))
	hit, l2 := getAllocs(t, memOrca(t, true))
	if hit != bareHit || l2 != bareL2 {
		t.Fatalf("allocs per get: L1 hit %v (bare %v), L2 hit %v (bare %v)", hit, bareHit, l2, bareL2)
	}
	t.Logf("allocs per get: L1 hit %v, L2 hit with fill %v", hit, l2)
}

func BenchmarkGetL1Hit(b *testing.B) {
	for _, tc := range []struct {
		name string
		on   bool
	}{{"bare", false}, {"instrumented", true}} {
		b.Run(tc.name, func(b *testing.B) {
			o := memOrca(b, tc.on)
			ctx := context.Background()
			set := &protocol.Request{Command: protocol.CmdSet, Value: []byte("value")}
			set.AddKey([]byte("k"))
			o.Handle(ctx, set, new(protocol.Response))
			get := &protocol.Request{Command: protocol.CmdGet}
			get.AddKey([]byte("k"))
			resp := new(protocol.Response)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				resp.Reset()
				o.Handle(ctx, get, resp)
			}
		})
	}
}

// TestCollector: orca.Stats and the pending backlog appear in a scrape.
func TestCollector(t *testing.T) {
	s, p := new(Stats), new(Pending)
	s.L1Hits.Add(3)
	s.ChunkTokenMismatches.Add(2)
	p.add([]byte("k"))
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector("t", s, p))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			key := mf.GetName()
			for _, l := range m.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			if m.Counter != nil {
				got[key] = m.Counter.GetValue()
			} else {
				got[key] = m.Gauge.GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"t_layer_lookups_total,layer=l1,result=hit":            3,
		"t_l1_inconsistencies_total,kind=chunk_token_mismatch": 2,
		"t_l1_pending_invalidations":                           1,
		"t_l1_fills_total,result=stored":                       0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}
