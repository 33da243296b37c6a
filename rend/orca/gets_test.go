package orca

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
)

var _ server.GetBatcher = (*Orca)(nil)

// getReqs builds get requests, one per key list.
func getReqs(keyLists ...[]string) []*protocol.Request {
	var reqs []*protocol.Request
	for i, keys := range keyLists {
		r := &protocol.Request{Command: protocol.CmdGet}
		if i%2 == 1 {
			r.Command = protocol.CmdGets
		}
		for _, k := range keys {
			r.AddKey([]byte(k))
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// outcome is what a client can see of one answered get.
type outcome struct {
	status protocol.Status
	msg    string
	hits   []protocol.Hit
	failed bool
}

func batched(o *Orca, reqs []*protocol.Request) []outcome {
	resps := make([]*protocol.Response, len(reqs))
	for i := range resps {
		resps[i] = new(protocol.Response)
	}
	errs := make([]error, len(reqs))
	o.HandleGets(context.Background(), reqs, resps, errs)
	o.WaitFills()
	out := make([]outcome, len(reqs))
	for i, r := range resps {
		out[i] = outcome{r.Status, r.Message, r.Hits, errs[i] != nil}
	}
	return out
}

func oneByOne(o *Orca, reqs []*protocol.Request) []outcome {
	out := make([]outcome, len(reqs))
	for i, req := range reqs {
		r := new(protocol.Response)
		err := o.Handle(context.Background(), req, r)
		o.WaitFills()
		out[i] = outcome{r.Status, r.Message, r.Hits, err != nil}
	}
	return out
}

func sameOutcomes(t *testing.T, what string, got, want []outcome) {
	t.Helper()
	for i := range want {
		g, w := got[i], want[i]
		if len(g.hits) == 0 && len(w.hits) == 0 {
			g.hits, w.hits = nil, nil
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: request %d: batched %+v, one by one %+v", what, i, g, w)
		}
	}
}

// TestHandleGetsAsOneByOne: pipelined gets served together answer exactly
// what they answer one at a time, in every mode, for inline, chunked and
// missing keys, repeated keys and multi-key requests.
func TestHandleGetsAsOneByOne(t *testing.T) {
	for _, withL2 := range []bool{false, true} {
		r := newRig(t, withL2)
		o := r.regular
		for _, n := range sizes {
			do(t, o, op{cmd: protocol.CmdSet, keys: []string{fmt.Sprintf("k%d", n)}, value: value(n), flags: uint32(n)})
		}
		if withL2 {
			// Keys only L2 has: misses in L1, read from L2 (and filled).
			for _, k := range []string{"cold1", "cold2"} {
				do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{k}, value: value(200)})
			}
		}
		keys := [][]string{
			{"k1"}, {"k10000", "nope", "k0"}, {"k1"}, {"nope"}, {"k65", "k64", "k129"},
			{"cold1"}, {"cold2", "k1", "cold1"}, {"k63"},
		}
		// The fills done by the first pass change nothing a client sees:
		// compare batched against one by one both ways round.
		want := oneByOne(o, getReqs(keys...))
		sameOutcomes(t, fmt.Sprintf("l2=%v", withL2), batched(o, getReqs(keys...)), want)
		sameOutcomes(t, fmt.Sprintf("l2=%v again", withL2), batched(o, getReqs(keys...)), oneByOne(o, getReqs(keys...)))
		single := getReqs([]string{"k1", "k0"})
		sameOutcomes(t, "single", batched(o, single), oneByOne(o, single))
	}
}

// TestHandleGetsFailures: a batch fails exactly the requests a lone get
// would fail. With L2 down, a request with an L1 hit is served from L1 and
// one without fails; with L1 down in l1only mode, all fail.
func TestHandleGetsFailures(t *testing.T) {
	r := newRig(t, true)
	l2 := &faulty{Backend: r.l2}
	o, err := New(Config{Mode: L1L2, L1: r.l1, L2: l2, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"hot"}, value: value(100)})
	do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{"cold"}, value: "c"})
	l2.down.Store(true)
	keys := [][]string{{"hot"}, {"cold"}, {"hot", "cold"}, {"nope"}}
	got, want := batched(o, getReqs(keys...)), oneByOne(o, getReqs(keys...))
	sameOutcomes(t, "L2 down", got, want)
	if !got[1].failed || got[0].failed || got[2].failed || !got[3].failed {
		t.Errorf("L2 down: %+v", got)
	}

	l1 := &faulty{Backend: r.l1}
	o1, err := New(Config{Mode: L1Only, L1: l1, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	l1.down.Store(true)
	got, want = batched(o1, getReqs(keys...)), oneByOne(o1, getReqs(keys...))
	sameOutcomes(t, "L1 down", got, want)
	for i := range got {
		if !got[i].failed || got[i].status != protocol.StatusServerError {
			t.Errorf("L1 down: request %d %+v", i, got[i])
		}
	}
}

// TestHandleGetsMetaAsOneByOne: plain mg lines pipelined with gets are
// served together (one L1 lookup for the batch) and answer exactly what
// they answer one at a time, also for a stale item, whose W token the
// first mg takes and a later one sees as Z: in l1only (the header is the
// record: recordRead after the lookup) and with L2 (an mg's L2 miss is
// read as an mg, a get's as a get, in request order). CAS values differ
// between the passes (each rewrites the item) and are not compared.
func TestHandleGetsMetaAsOneByOne(t *testing.T) {
	for _, withL2 := range []bool{false, true} {
		r := newRig(t, withL2)
		l1 := &counting{Backend: r.l1}
		cfg := Config{Mode: L1Only, L1: l1, ChunkSize: testChunk}
		if withL2 {
			cfg.Mode, cfg.L2 = L1L2, r.l2
		}
		o, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		reqs := func() []*protocol.Request {
			var rs []*protocol.Request
			for _, k := range []string{"stale", "plain", "stale", "chunked", "stale", "nope"} {
				for _, meta := range []bool{true, false} {
					q := &protocol.Request{Command: protocol.CmdGet}
					q.AddKey([]byte(k))
					if meta {
						q.Mods.Meta = true
						q.Want = protocol.WantValue | protocol.WantFlags | protocol.WantCAS
					}
					rs = append(rs, q)
				}
			}
			return rs
		}
		prepare := func() {
			do(t, o, op{cmd: protocol.CmdSet, keys: []string{"plain"}, value: "p"})
			do(t, o, op{cmd: protocol.CmdSet, keys: []string{"chunked"}, value: value(3*testChunk + 1)})
			do(t, o, op{cmd: protocol.CmdSet, keys: []string{"stale"}, value: value(2 * testChunk)})
			metaReq(t, o, protocol.CmdDelete, "stale", func(r *protocol.Request) { r.Invalidate = true })
			o.WaitFills()
		}
		noCAS := func(out []outcome) []outcome {
			for i := range out {
				for j := range out[i].hits {
					out[i].hits[j].CAS = 0
				}
			}
			return out
		}
		prepare()
		want := noCAS(oneByOne(o, reqs()))
		if len(want[0].hits) != 1 || !want[0].hits[0].Win || len(want[4].hits) != 1 || !want[4].hits[0].Won {
			t.Fatalf("l2=%v: one by one, the first mg should win the stale item and the second see Z: %+v %+v", withL2, want[0], want[4])
		}
		prepare()
		got := noCAS(batched(o, reqs()))
		sameOutcomes(t, fmt.Sprintf("meta l2=%v", withL2), got, want)

		// A batch of plain reads of items without state is one L1 lookup.
		plain := reqs()[2:4] // mg plain, get plain
		plain = append(plain, reqs()[6:8]...)
		l1.calls.Store(0)
		batched(o, plain)
		if n := l1.calls.Load(); n != 2 { // headers, then the chunks of "chunked"
			t.Errorf("l2=%v: a batch of mg and get: %d L1 round trips, want 2", withL2, n)
		}
	}
}
