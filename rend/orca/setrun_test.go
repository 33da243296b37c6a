package orca

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// setOp is one set of a run.
type setOp struct {
	key, value string
	flags      uint32
	exptime    int64
}

func setReqs(prefix string, ops []setOp) []*protocol.Request {
	reqs := make([]*protocol.Request, len(ops))
	for i, s := range ops {
		r := &protocol.Request{Command: protocol.CmdSet, Value: []byte(s.value), Flags: s.flags}
		r.Exptime, r.HasExptime = s.exptime, true
		r.AddKey([]byte(prefix + s.key))
		reqs[i] = r
	}
	return reqs
}

// runSets serves reqs as one run (HandleSets) or one by one (store).
func runSets(o *Orca, reqs []*protocol.Request, asRun bool) ([]*protocol.Response, []error) {
	resps := make([]*protocol.Response, len(reqs))
	for i := range resps {
		resps[i] = new(protocol.Response)
	}
	errs := make([]error, len(reqs))
	if asRun {
		o.HandleSets(context.Background(), reqs, resps, errs)
	} else {
		for i, r := range reqs {
			errs[i] = o.Handle(context.Background(), r, resps[i])
		}
	}
	o.WaitFills() // the put-backs behind the replies
	return resps, errs
}

// keyState is what a client and L1 show of a key after a script.
type keyState struct {
	hit         bool
	value       string
	flags       uint32
	inL1        bool
	l1Value     string
	l1IsCurrent bool // L1's copy carries L2's version
}

func (r *rig) state(t *testing.T, key string) keyState {
	t.Helper()
	var s keyState
	l2 := do(t, r.l2, op{cmd: protocol.CmdGets, keys: []string{key}})
	raw, inL1 := get1(t, r.l1, key) // before any read through rend fills L1
	if len(l2.Hits) == 1 {
		s.hit, s.value, s.flags = true, string(l2.Hits[0].Value), l2.Hits[0].Flags
	}
	if inL1 {
		h, err := chunk.Decode(raw.Value, 1<<20)
		if err != nil {
			t.Fatalf("%s: L1 header: %v", key, err)
		}
		s.inL1, s.l1Value = true, string(h.Inline)
		s.l1IsCurrent = s.hit && h.Version == l2.Hits[0].CAS && h.Flags == s.flags
	}
	return s
}

// TestHandleSetsAsOneByOne: a run of sets served together leaves the same
// replies, the same items in L2 and the same L1 copies (current ones) as
// the same sets served one at a time, on both ports: hot keys (in L1),
// cold ones (L2 only), new ones, a key set twice in the run (the later
// wins), an already expired set, and a run holding a chunked value (served
// one by one).
func TestHandleSetsAsOneByOne(t *testing.T) {
	r := newRig(t, true)
	script := []setOp{
		{"hot", "h1", 1, 0}, {"cold", "c1", 2, 0}, {"new", "n1", 3, 300},
		{"dup", "d1", 4, 0}, {"hot2", "x1", 0, 0}, {"dup", "d2", 5, 0},
		{"gone", "g1", 0, -1}, {"hot2", "x2", 6, 0}, {"dup", "d3", 7, 0},
	}
	chunked := append([]setOp{{"big", value(3 * testChunk), 8, 0}}, script[:4]...)
	keys := []string{"hot", "cold", "new", "dup", "hot2", "gone", "big"}
	for _, o := range []*Orca{r.regular, r.batch} {
		for si, sc := range [][]setOp{script, chunked} {
			var states [2][]keyState
			for m, asRun := range []bool{true, false} {
				p := fmt.Sprintf("%s-%d-%v:", o.pol.name, si, asRun)
				// hot, hot2, dup and gone in L1 (via the regular port),
				// cold in L2 only.
				for _, k := range []string{"hot", "hot2", "dup", "gone"} {
					do(t, r.regular, op{cmd: protocol.CmdSet, keys: []string{p + k}, value: "old"})
				}
				do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{p + "cold"}, value: "old"})
				before := r.stats.CmdSet.Load()
				resps, errs := runSets(o, setReqs(p, sc), asRun)
				if n := r.stats.CmdSet.Load() - before; n != uint64(len(sc)) {
					t.Errorf("%s: %d sets counted, want %d", p, n, len(sc))
				}
				for i, resp := range resps {
					if errs[i] != nil || resp.Status != protocol.StatusOK || resp.CAS == 0 {
						t.Fatalf("%s: set %d: %v %v cas %d", p, i, errs[i], resp.Status, resp.CAS)
					}
				}
				for _, k := range keys {
					s := r.state(t, p+k)
					if s.inL1 && !s.l1IsCurrent {
						t.Errorf("%s%s: L1 holds %q, not L2's item %q", p, k, s.l1Value, s.value)
					}
					states[m] = append(states[m], s)
				}
			}
			for i, k := range keys {
				if states[0][i] != states[1][i] {
					t.Errorf("%s script %d, %s: as a run %+v, one by one %+v", o.pol.name, si, k, states[0][i], states[1][i])
				}
			}
		}
	}
	// The run's point: L2 and L1 each see one pipelined burst per step.
	l1, l2 := &counting{Backend: r.l1}, &counting{Backend: r.l2}
	o, err := New(Config{Mode: L1L2, L1: l1, L2: l2, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	runSets(o, setReqs("rt:", script), true)
	if l1.calls.Load() != 2 || l2.calls.Load() != 1 {
		t.Errorf("a run of %d sets took %d L1 and %d L2 round trips, want 2 and 1", len(script), l1.calls.Load(), l2.calls.Load())
	}
}

// TestHandleSetsFaults: L2 failing a run answers SERVER_ERROR to every
// set, takes every L1 copy out and holds every key, so when L2 turns out
// to have applied the run after all (a timeout), rend serves L2's values,
// never the old L1 copies and never a fill, until L2 settles. L1 failing
// the take-out leaves the keys pending and puts nothing back.
func TestHandleSetsFaults(t *testing.T) {
	r := newRig(t, true)
	l1, l2 := &faulty{Backend: r.l1}, &faulty{Backend: r.l2}
	pending := &Pending{Settle: time.Millisecond}
	o, err := New(Config{Mode: L1L2, L1: l1, L2: l2, ChunkSize: testChunk, Pending: pending})
	if err != nil {
		t.Fatal(err)
	}
	script := []setOp{{"a", "new-a", 0, 0}, {"b", "new-b", 0, 0}, {"a", "newer-a", 0, 0}}
	for _, k := range []string{"a", "b"} {
		do(t, o, op{cmd: protocol.CmdSet, keys: []string{k}, value: "old"})
		if _, ok := get1(t, r.l1, k); !ok {
			t.Fatal("test setup: no L1 copy")
		}
	}
	l2.down.Store(true)
	resps, errs := runSets(o, setReqs("", script), true)
	for i, resp := range resps {
		if errs[i] == nil || resp.Status != protocol.StatusServerError {
			t.Fatalf("set %d with L2 failing: %v %v", i, errs[i], resp.Status)
		}
	}
	l2.down.Store(false)
	for _, k := range []string{"a", "b"} {
		if _, ok := get1(t, r.l1, k); ok {
			t.Fatalf("%s: L1 kept its copy through an ambiguous run", k)
		}
	}
	if pending.Len() != 2 {
		t.Fatalf("pending %d, want 2", pending.Len())
	}
	// L2 applied the run after all, behind rend's back.
	for _, s := range script {
		do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{s.key}, value: s.value})
	}
	for i := 0; i < 2; i++ {
		if h, ok := get1(t, o, "a"); !ok || string(h.Value) != "newer-a" {
			t.Fatalf("held key served %q", h.Value)
		}
	}
	if _, ok := get1(t, r.l1, "a"); ok {
		t.Fatal("held key filled into L1")
	}
	pending.Probe(context.Background(), l2)
	mctest.Eventually(t, 5*time.Second, "the held keys released", func() bool { return pending.Probe(context.Background(), l2) == 0 })

	// L1 down for the take-out: the keys are pending, nothing is put back,
	// and no read serves the old copies that L1 kept.
	for _, k := range []string{"a", "b"} {
		do(t, o, op{cmd: protocol.CmdSet, keys: []string{k}, value: "old"})
	}
	l1.down.Store(true)
	resps, errs = runSets(o, setReqs("", script), true)
	l1.down.Store(false)
	for i, resp := range resps {
		if errs[i] != nil || resp.Status != protocol.StatusOK {
			t.Fatalf("set %d with L1 down: %v %v", i, errs[i], resp.Status)
		}
	}
	for k, want := range map[string]string{"a": "newer-a", "b": "new-b"} {
		if h, ok := get1(t, o, k); !ok || string(h.Value) != want {
			t.Fatalf("%s: served %q, want %q", k, h.Value, want)
		}
	}
}

// TestHandleSetsAllocs: a run of sets allocates nothing in orca (the
// run's scratch is pooled).
func TestHandleSetsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector")
	}
	o, err := New(Config{Mode: L1L2, L1: okBackend{}, L2: okBackend{}})
	if err != nil {
		t.Fatal(err)
	}
	var ops []setOp
	for i := range 16 {
		ops = append(ops, setOp{key: fmt.Sprint("k", i%12), value: "v"})
	}
	reqs := setReqs("", ops)
	resps := make([]*protocol.Response, len(reqs))
	for i := range resps {
		resps[i] = new(protocol.Response)
	}
	errs := make([]error, len(reqs))
	run := func() {
		for _, r := range resps {
			r.Reset()
		}
		o.HandleSets(context.Background(), reqs, resps, errs)
	}
	run()
	if got := testing.AllocsPerRun(100, run); got != 0 {
		t.Errorf("a run of %d sets: %v allocs, want 0", len(reqs), got)
	}
}
