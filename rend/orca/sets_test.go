package orca

import (
	"context"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
)

var _ server.RunBatcher = (*Orca)(nil)

// setRun builds a run of plain sets: key k gets value v.
func setRun(kv ...string) ([]*protocol.Request, []*protocol.Response, []error) {
	var reqs []*protocol.Request
	var resps []*protocol.Response
	for i := 0; i < len(kv); i += 2 {
		r := &protocol.Request{Command: protocol.CmdSet, Value: []byte(kv[i+1]), Flags: uint32(i)}
		r.AddKey([]byte(kv[i]))
		reqs, resps = append(reqs, r), append(resps, new(protocol.Response))
	}
	return reqs, resps, make([]error, len(reqs))
}

// TestHandleSetsRun: a run of pipelined sets in the L2 modes costs one L1
// take-out batch, one L2 burst and one L1 put-back batch; L1 and L2 end as
// after the sets one by one (a key set twice holds its last value, in both
// layers, with L2's version in L1); the batch port puts back only keys L1
// had. A failed L2 burst fails every set of the run and holds the keys
// (no L1 copy, no fill, until L2 settles).
func TestHandleSetsRun(t *testing.T) {
	r := newRig(t, true)
	l1, l2 := &counting{Backend: r.l1}, &counting{Backend: r.l2}
	o, err := New(Config{Mode: L1L2, L1: l1, L2: l2, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	big := value(3*testChunk + 7)
	reqs, resps, errs := setRun("a", "a1", "b", big, "a", "a2", "c", "c1")
	o.HandleSets(context.Background(), reqs, resps, errs)
	o.WaitFills() // the put-back runs behind the replies
	if l1.calls.Load() != 2 || l2.calls.Load() != 1 {
		t.Errorf("run of 4 sets: %d L1 and %d L2 round trips, want 2 and 1", l1.calls.Load(), l2.calls.Load())
	}
	for i := range resps {
		if errs[i] != nil || resps[i].Status != protocol.StatusOK || resps[i].CAS == 0 {
			t.Fatalf("set %d: %v %+v", i, errs[i], resps[i])
		}
	}
	for k, want := range map[string]string{"a": "a2", "b": big, "c": "c1"} {
		h1, ok1 := get1(t, r.regular, k) // L1 hit (the put-back), else L2
		h2, ok2 := get1(t, r.l2, k)
		if !ok1 || !ok2 || string(h1.Value) != want || string(h2.Value) != want || h1.CAS != h2.CAS {
			t.Errorf("%s: rend %q (cas %d), L2 %q (cas %d), want %q", k, h1.Value, h1.CAS, h2.Value, h2.CAS, want)
		}
	}
	if st := r.regular.Stats(); st.L1Misses.Load() != 0 {
		t.Errorf("%d L1 misses after the run: the put-back did not land", st.L1Misses.Load())
	}

	// Batch port: only keys L1 had are put back.
	bo, err := New(Config{Mode: L1L2Batch, L1: r.l1, L2: r.l2, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	reqs, resps, errs = setRun("a", "hot", "cold", "c")
	bo.HandleSets(context.Background(), reqs, resps, errs)
	bo.WaitFills()
	if _, ok := get1(t, r.l1, "cold"); ok {
		t.Error("batch port: a cold key entered L1")
	}
	if h, ok := get1(t, r.regular, "a"); !ok || string(h.Value) != "hot" {
		t.Errorf("batch port: hot key reads %q %v", h.Value, ok)
	}

	// L2 down: every set fails and its key is held.
	f := &faulty{Backend: r.l2}
	fo, err := New(Config{Mode: L1L2, L1: r.l1, L2: f, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	f.down.Store(true)
	reqs, resps, errs = setRun("a", "x", "d", "y")
	fo.HandleSets(context.Background(), reqs, resps, errs)
	for i := range resps {
		if errs[i] == nil || resps[i].Status != protocol.StatusServerError {
			t.Errorf("L2 down: set %d: %v %+v", i, errs[i], resps[i])
		}
	}
	if n := fo.pending.Len(); n != 2 {
		t.Errorf("L2 down: %d keys pending, want 2 held", n)
	}
	if _, ok := get1(t, r.l1, "a"); ok {
		t.Error("L2 down: L1 still has a copy of a key written in the failed run")
	}
}

// TestHandleSetsNotPlain: a run holding anything but plain sets, and
// l1only, go set by set with the same outcome.
func TestHandleSetsNotPlain(t *testing.T) {
	for _, withL2 := range []bool{false, true} {
		r := newRig(t, withL2)
		reqs, resps, errs := setRun("p", "1", "q", "2")
		reqs[1].CAS = 12345 // a cas: EXISTS or NOT_FOUND, as alone
		r.regular.HandleSets(context.Background(), reqs, resps, errs)
		if errs[0] != nil || resps[0].Status != protocol.StatusOK || resps[1].Status != protocol.StatusNotFound {
			t.Errorf("l2=%v: %v %+v %+v", withL2, errs, resps[0], resps[1])
		}
		if h, ok := get1(t, r.regular, "p"); !ok || string(h.Value) != "1" {
			t.Errorf("l2=%v: p reads %q %v", withL2, h.Value, ok)
		}
	}
}
