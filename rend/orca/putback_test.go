package orca

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// These tests hold a write's L1 put-back, which runs behind the client's
// reply (putBackLater), at a gate, and check what every other step sees
// meanwhile: the writer has its answer, L1 has no copy of the key (the old
// one was taken out before L2 was asked), a get (the writer's next one, or
// anyone's) waits for the put-back and reads the new value, never the old.

// setGate holds L1 writes whose last request is a set (put-backs; fills
// are adds, take-outs deletes) while held is true, until open is closed,
// and counts them. With lose, such a write reaches L1 but its caller gets
// an error, as when L1's reply is lost.
type setGate struct {
	Backend
	held, lose atomic.Bool
	open       chan struct{}
	sets       atomic.Int32
	// holdGet makes the next L1 get wait, after L1 answered it, until
	// getOpen is closed (a lookup whose L1 reply is on its way).
	holdGet atomic.Bool
	getOpen chan struct{}
	gets    atomic.Int32
}

func (g *setGate) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	err := g.Backend.Handle(ctx, req, resp)
	if req.Command == protocol.CmdGet && g.holdGet.CompareAndSwap(true, false) {
		g.gets.Add(1)
		<-g.getOpen
	}
	return err
}

func (g *setGate) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	isSet := reqs[len(reqs)-1].Command == protocol.CmdSet
	if isSet && g.held.Load() {
		g.sets.Add(1)
		<-g.open
	}
	err := g.Backend.Do(ctx, reqs, resps)
	if err == nil && isSet && g.lose.Load() {
		return errors.New("setGate: L1's reply lost")
	}
	return err
}

// setGatedOrca is an orchestrator of mode over the rig's memcacheds (L2
// the second) whose L1 put-backs go through a setGate.
func setGatedOrca(t *testing.T, mode Mode) (*rig, *setGate, *Orca) {
	t.Helper()
	r := newRig(t, true)
	g := &setGate{Backend: r.l1, open: make(chan struct{}), getOpen: make(chan struct{})}
	o, err := New(Config{Mode: mode, L1: g, L2: r.l2, Locks: NewLocks(64), ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	return r, g, o
}

// l1Value is the value L1 holds for key (its header decoded: inline values
// only), and whether it holds one.
func l1Value(t *testing.T, r *rig, key string) (string, bool) {
	t.Helper()
	raw, ok := get1(t, r.l1, key)
	if !ok {
		return "", false
	}
	h, err := chunk.Decode(raw.Value, 1<<20)
	if err != nil {
		t.Fatalf("%s: L1 header: %v", key, err)
	}
	return string(h.Inline), true
}

// getLater gets key through o on another goroutine (a client's next get)
// and delivers the value read ("" for a miss).
func getLater(o *Orca, key string) <-chan string {
	got := make(chan string, 1)
	go func() {
		req := &protocol.Request{Command: protocol.CmdGet}
		req.AddKey([]byte(key))
		resp := new(protocol.Response)
		if err := o.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) == 0 {
			got <- ""
			return
		}
		got <- string(resp.Hits[0].Value)
	}()
	return got
}

// notYet fails if ch delivers within 50 ms: what is waited for is held at
// a gate, so it must still be blocked after any wait; 50 ms only bounds
// how long we look.
func notYet[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: answered (%.40v) while the put-back holding its stripe was out", what, v)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestPutBackAfterReply: each write that puts its result back into L1 is
// answered once L2 accepted it, before the put-back (held at the gate)
// is done. Meanwhile L1 holds no copy of the key, and a get waits for the
// put-back and reads the new value; afterwards L1 holds the new value and
// serves it.
func TestPutBackAfterReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    op
		want string
	}{
		{"set", op{cmd: protocol.CmdSet, value: "new"}, "new"},
		{"add", op{cmd: protocol.CmdAdd, value: "new"}, "new"}, // of a fresh key
		{"replace", op{cmd: protocol.CmdReplace, value: "new"}, "new"},
		{"cas", op{cmd: protocol.CmdCas, value: "new"}, "new"}, // with the current version
		{"append", op{cmd: protocol.CmdAppend, value: "-new"}, "10-new"},
		{"incr", op{cmd: protocol.CmdIncr, delta: 5}, "15"},
		{"chunked", op{cmd: protocol.CmdSet, value: value(5 * testChunk)}, value(5 * testChunk)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, g, o := setGatedOrca(t, L1L2)
			key := "k"
			if tc.w.cmd == protocol.CmdAdd {
				key = "fresh"
			} else {
				do(t, o, op{cmd: protocol.CmdSet, keys: []string{key}, value: "10"})
				if v, ok := l1Value(t, r, key); !ok || v != "10" {
					t.Fatalf("L1 before: %q %v", v, ok)
				}
			}
			w := tc.w
			w.keys = []string{key}
			if w.cmd == protocol.CmdCas {
				h, _ := get1(t, o, key)
				w.cas = h.CAS
			}
			g.held.Store(true)
			if resp := do2(t, o, w); resp.Status != protocol.StatusOK {
				t.Fatalf("%v: status %v", w.cmd, resp.Status)
			}
			mctest.Eventually(t, 5*time.Second, "the put-back's write", func() bool { return g.sets.Load() == 1 })
			if v, ok := get1(t, r.l1, key); ok {
				t.Fatalf("L1 holds a copy (%q) between the reply and the put-back", v.Value)
			}
			l2Hits := o.Stats().L2Hits.Load()
			got := getLater(o, key)
			notYet(t, got, "a get of the key")
			close(g.open)
			if v := <-got; v != tc.want {
				t.Fatalf("get after the reply: %q, want %q", v, tc.want)
			}
			// It read L1 again once the put-back had landed (reReadL1),
			// so memcached counted the fetch on the new copy.
			if n := o.Stats().L2Hits.Load() - l2Hits; n != 0 {
				t.Errorf("the waiting get read L2 (%d hits), not the copy put back", n)
			}
			o.WaitFills()
			if tc.name == "chunked" {
				if _, ok := get1(t, r.l1, key); !ok {
					t.Fatal("L1 has no header after the put-back")
				}
			} else if v, ok := l1Value(t, r, key); !ok || v != tc.want {
				t.Fatalf("L1 after the put-back: %q %v", v, ok)
			}
			l2Hits = o.Stats().L2Hits.Load()
			if h, ok := get1(t, o, key); !ok || string(h.Value) != tc.want || o.Stats().L2Hits.Load() != l2Hits {
				t.Fatalf("get after the put-back: %q %v, L2 reads %d (want an L1 hit)", h.Value, ok, o.Stats().L2Hits.Load()-l2Hits)
			}
			if o.Stats().L1PutBackBatches.Load() == 0 {
				t.Error("no put-back batch counted")
			}
		})
	}
}

// do2 is do without waiting for the jobs behind the reply (do waits for
// them, which would wait for the gate).
func do2(t *testing.T, o *Orca, w op) *protocol.Response {
	t.Helper()
	req := new(protocol.Request)
	req.Command = w.cmd
	for _, k := range w.keys {
		req.AddKey([]byte(k))
	}
	req.Value = []byte(w.value)
	req.Exptime, req.HasExptime = w.exptime, true
	req.CAS, req.Delta = w.cas, w.delta
	resp := new(protocol.Response)
	if err := o.Handle(context.Background(), req, resp); err != nil {
		t.Fatalf("%v %v: %v", w.cmd, w.keys, err)
	}
	return resp
}

// setLater sets key to val through o on another goroutine (another
// client's write) and delivers its status.
func setLater(o *Orca, key, val string) <-chan protocol.Status {
	done := make(chan protocol.Status, 1)
	go func() {
		req := &protocol.Request{Command: protocol.CmdSet, Value: []byte(val)}
		req.AddKey([]byte(key))
		resp := new(protocol.Response)
		if err := o.Handle(context.Background(), req, resp); err != nil {
			resp.Status = protocol.StatusServerError
		}
		done <- resp.Status
	}()
	return done
}

// TestPutBackOrdersWrites: a second write of a key whose first write's
// put-back is still out waits for it (the job holds the stripe), so the
// first put-back can never land after the second write and leave L1 with
// the older value.
func TestPutBackOrdersWrites(t *testing.T) {
	r, g, o := setGatedOrca(t, L1L2)
	g.held.Store(true)
	if resp := do2(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "first"}); resp.Status != protocol.StatusOK {
		t.Fatalf("set: %v", resp.Status)
	}
	mctest.Eventually(t, 5*time.Second, "the first put-back's write", func() bool { return g.sets.Load() == 1 })
	second := setLater(o, "k", "second")
	notYet(t, second, "a second set of the key")
	close(g.open)
	if st := <-second; st != protocol.StatusOK {
		t.Fatalf("second set: %v", st)
	}
	o.WaitFills()
	if v, ok := l1Value(t, r, "k"); !ok || v != "second" {
		t.Fatalf("L1 after both writes: %q %v, want the second", v, ok)
	}
	if h, ok := get1(t, o, "k"); !ok || string(h.Value) != "second" {
		t.Fatalf("get after both writes: %q %v", h.Value, ok)
	}
}

// TestFlushWaitsForPutBacks: a flush_all that arrives while a set's
// put-back is on its way to L1 waits for it (Locks.lockAll) and removes
// it: the next get misses. Without that the put-back could land after
// the second L1 flush and serve the flushed value.
func TestFlushWaitsForPutBacks(t *testing.T) {
	r, g, o := setGatedOrca(t, L1L2)
	g.held.Store(true)
	do2(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "flushed"})
	mctest.Eventually(t, 5*time.Second, "the put-back's write", func() bool { return g.sets.Load() == 1 })
	flushed := make(chan protocol.Status, 1)
	go func() {
		resp := new(protocol.Response)
		if err := o.Handle(context.Background(), &protocol.Request{Command: protocol.CmdFlushAll}, resp); err != nil {
			resp.Status = protocol.StatusServerError
		}
		flushed <- resp.Status
	}()
	notYet(t, flushed, "flush_all")
	close(g.open)
	if st := <-flushed; st != protocol.StatusOK {
		t.Fatalf("flush_all: %v", st)
	}
	if h, ok := get1(t, o, "k"); ok {
		t.Errorf("get after flush_all: %q", h.Value)
	}
	if v, ok := l1Value(t, r, "k"); ok {
		t.Errorf("L1 after flush_all: %q", v)
	}
}

// TestPutBackLostReply: a put-back whose L1 reply is lost (L1 may or may
// not have stored it; here it did) deletes the key from L1 again before
// the stripe is released: the next get refills from L2.
func TestPutBackLostReply(t *testing.T) {
	r, g, o := setGatedOrca(t, L1L2)
	g.lose.Store(true)
	inv := o.Stats().L1Invalidations.Load()
	if resp := do(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "v"}); resp.Status != protocol.StatusOK {
		t.Fatalf("set: %v (an L1 failure is not the client's)", resp.Status)
	}
	if n := o.Stats().L1Invalidations.Load() - inv; n != 1 {
		t.Errorf("%d invalidations, want 1", n)
	}
	if v, ok := l1Value(t, r, "k"); ok {
		t.Fatalf("L1 kept %q after a put-back that failed", v)
	}
	g.lose.Store(false)
	if h, ok := get1(t, o, "k"); !ok || string(h.Value) != "v" {
		t.Fatalf("get: %q %v", h.Value, ok)
	}
}

// TestPutBackLargeInline: a value above maxPutBackLater is put back
// before the reply, as before (its copy would pin too much memory behind
// replies).
func TestPutBackLargeInline(t *testing.T) {
	r, g, o := setGatedOrca(t, L1L2)
	big := value(maxPutBackLater + 1)
	g.held.Store(true)
	done := setLater(o, "big", big)
	mctest.Eventually(t, 5*time.Second, "the put-back's write", func() bool { return g.sets.Load() == 1 })
	notYet(t, done, "a set of a large value")
	close(g.open)
	if st := <-done; st != protocol.StatusOK {
		t.Fatalf("set: %v", st)
	}
	if _, ok := get1(t, r.l1, "big"); !ok {
		t.Fatal("L1 has no copy after the reply")
	}
}

// TestPutBackRunAfterReply: a run of pipelined sets (HandleSets) is
// answered before its put-back batch lands; a get of any of its keys
// waits for it and reads the run's last value of the key. On the batch
// port only the key L1 had is put back, also behind the replies.
func TestPutBackRunAfterReply(t *testing.T) {
	for _, mode := range []Mode{L1L2, L1L2Batch} {
		t.Run(mode.String(), func(t *testing.T) {
			r, g, o := setGatedOrca(t, mode)
			do(t, r.regular, op{cmd: protocol.CmdSet, keys: []string{"a"}, value: "old"}) // hot
			g.held.Store(true)
			reqs, resps, errs := setRun("a", "a1", "b", "b1", "a", "a2")
			o.HandleSets(context.Background(), reqs, resps, errs)
			for i := range resps {
				if errs[i] != nil || resps[i].Status != protocol.StatusOK {
					t.Fatalf("set %d: %v %v", i, errs[i], resps[i].Status)
				}
			}
			mctest.Eventually(t, 5*time.Second, "the run's put-back", func() bool { return g.sets.Load() == 1 })
			if v, ok := l1Value(t, r, "a"); ok {
				t.Fatalf("L1 holds %q between the replies and the put-back", v)
			}
			gotA, gotB := getLater(o, "a"), getLater(o, "b")
			notYet(t, gotA, "a get of a")
			close(g.open)
			if a, b := <-gotA, <-gotB; a != "a2" || b != "b1" {
				t.Fatalf("gets after the run: a %q b %q", a, b)
			}
			o.WaitFills()
			if v, ok := l1Value(t, r, "a"); !ok || v != "a2" {
				t.Errorf("L1 a: %q %v", v, ok)
			}
			if _, ok := l1Value(t, r, "b"); ok != (mode == L1L2) {
				t.Errorf("L1 has b: %v (cold key, %v)", ok, mode)
			}
		})
	}
}

// TestReReadAfterLanding: a get whose L1 read missed the key because the
// key's put-back had not landed yet, and which then finds the stripe free
// (the put-back landed while the L1 reply was on its way), reads L1 again
// rather than L2 (reReadL1): it is served the copy, and memcached counts
// the fetch there, as for a client that had read after the put-back.
func TestReReadAfterLanding(t *testing.T) {
	r, g, o := setGatedOrca(t, L1L2)
	g.held.Store(true)
	do2(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "new"})
	mctest.Eventually(t, 5*time.Second, "the put-back's write", func() bool { return g.sets.Load() == 1 })
	g.holdGet.Store(true)
	l1Hits, l2Hits := o.Stats().L1Hits.Load(), o.Stats().L2Hits.Load()
	got := getLater(o, "k")
	mctest.Eventually(t, 5*time.Second, "the get's L1 read", func() bool { return g.gets.Load() == 1 })
	close(g.open) // the put-back lands while the get's L1 miss is on its way
	o.WaitFills()
	if v, ok := l1Value(t, r, "k"); !ok || v != "new" {
		t.Fatalf("L1 after the put-back: %q %v", v, ok)
	}
	close(g.getOpen)
	if v := <-got; v != "new" {
		t.Fatalf("get: %q", v)
	}
	if d1, d2 := o.Stats().L1Hits.Load()-l1Hits, o.Stats().L2Hits.Load()-l2Hits; d1 != 1 || d2 != 0 {
		t.Errorf("get served by L1 %d times, by L2 %d times; want L1 once (read again), L2 never", d1, d2)
	}
	if o.Stats().L1Misses.Load() != 0 {
		t.Errorf("%d L1 misses counted for a get L1 answered on its second read", o.Stats().L1Misses.Load())
	}
}
