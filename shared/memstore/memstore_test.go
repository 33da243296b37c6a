package memstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// fixture drives a Store directly with a clock the test moves.
type fixture struct {
	t   *testing.T
	s   *Store
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, now: time.Unix(1_700_000_000, 0)}
	f.s = New(Options{Now: func() time.Time { return f.now }, MaxItemSize: 100})
	return f
}

func (f *fixture) advance(d time.Duration) { f.now = f.now.Add(d) }

// do runs cmd on keys after edit adjusts the request.
func (f *fixture) do(cmd protocol.Command, edit func(*protocol.Request), keys ...string) *protocol.Response {
	f.t.Helper()
	req := &protocol.Request{Command: cmd, HasExptime: true}
	for _, k := range keys {
		req.AddKey([]byte(k))
	}
	if edit != nil {
		edit(req)
	}
	resp := &protocol.Response{}
	if err := f.s.Handle(context.Background(), req, resp); err != nil {
		f.t.Fatalf("%v %v: %v", cmd, keys, err)
	}
	return resp
}

func (f *fixture) set(cmd protocol.Command, key, value string, edit func(*protocol.Request)) *protocol.Response {
	f.t.Helper()
	return f.do(cmd, func(r *protocol.Request) {
		r.Value = []byte(value)
		if edit != nil {
			edit(r)
		}
	}, key)
}

func (f *fixture) status(resp *protocol.Response, want protocol.Status) {
	f.t.Helper()
	if resp.Status != want {
		f.t.Fatalf("status %v (%q), want %v", resp.Status, resp.Message, want)
	}
}

// get returns the value of key, or "<miss>".
func (f *fixture) get(key string) string {
	f.t.Helper()
	r := f.do(protocol.CmdGet, nil, key)
	f.status(r, protocol.StatusOK)
	if len(r.Hits) == 0 {
		return "<miss>"
	}
	return string(r.Hits[0].Value)
}

func (f *fixture) hit(key string) protocol.Hit {
	f.t.Helper()
	r := f.do(protocol.CmdGets, nil, key)
	if len(r.Hits) != 1 {
		f.t.Fatalf("%s: miss", key)
	}
	return r.Hits[0]
}

// mg reads key as meta mg does (W X Z handed out).
func (f *fixture) mg(key string) protocol.Hit {
	f.t.Helper()
	r := f.do(protocol.CmdGet, func(r *protocol.Request) { r.Mods.Meta = true }, key)
	if len(r.Hits) != 1 {
		f.t.Fatalf("%s: miss", key)
	}
	return r.Hits[0]
}

func exptime(e int64) func(*protocol.Request) {
	return func(r *protocol.Request) { r.Exptime = e }
}

func withCAS(c uint64) func(*protocol.Request) {
	return func(r *protocol.Request) { r.CAS = c }
}

func TestStorageCommands(t *testing.T) {
	f := newFixture(t)
	r := f.set(protocol.CmdSet, "k", "v1", func(r *protocol.Request) { r.Flags = 42 })
	f.status(r, protocol.StatusOK)
	h := f.hit("k")
	if string(h.Value) != "v1" || h.Flags != 42 || h.CAS != r.CAS || h.CAS == 0 {
		t.Fatalf("hit %+v after set (cas %d)", h, r.CAS)
	}

	f.status(f.set(protocol.CmdAdd, "k", "x", nil), protocol.StatusNotStored)
	f.status(f.set(protocol.CmdAdd, "new", "a", nil), protocol.StatusOK)
	f.status(f.set(protocol.CmdReplace, "missing", "x", nil), protocol.StatusNotStored)
	f.status(f.set(protocol.CmdReplace, "k", "v2", func(r *protocol.Request) { r.Flags = 7 }), protocol.StatusOK)
	if h := f.hit("k"); string(h.Value) != "v2" || h.Flags != 7 {
		t.Fatalf("after replace %+v", h)
	}

	// append/prepend keep flags and exptime, ignore the request's.
	f.set(protocol.CmdSet, "ap", "mid", func(r *protocol.Request) { r.Flags = 3; r.Exptime = 100 })
	f.status(f.set(protocol.CmdAppend, "ap", ">>", func(r *protocol.Request) { r.Flags = 9; r.Exptime = 5 }), protocol.StatusOK)
	f.status(f.set(protocol.CmdPrepend, "ap", "<<", nil), protocol.StatusOK)
	if h := f.hit("ap"); string(h.Value) != "<<mid>>" || h.Flags != 3 || h.Exptime != f.now.Unix()+100 {
		t.Fatalf("after append/prepend %+v", h)
	}
	f.status(f.set(protocol.CmdAppend, "missing", "x", nil), protocol.StatusNotStored)
	f.status(f.set(protocol.CmdPrepend, "missing", "x", nil), protocol.StatusNotStored)
	f.status(f.set(protocol.CmdAppend, "ap", "x", withCAS(1)), protocol.StatusExists)
	f.status(f.set(protocol.CmdAppend, "ap", "!", withCAS(f.hit("ap").CAS)), protocol.StatusOK)

	// Every write gets a new, unique CAS.
	seen := map[uint64]bool{}
	for i := range 10 {
		c := f.set(protocol.CmdSet, "k", strconv.Itoa(i), nil).CAS
		if seen[c] {
			t.Fatalf("CAS %d reused", c)
		}
		seen[c] = true
	}
}

func TestCompareAndSwap(t *testing.T) {
	f := newFixture(t)
	f.status(f.set(protocol.CmdCas, "k", "x", withCAS(1)), protocol.StatusNotFound)
	cas := f.set(protocol.CmdSet, "k", "v", nil).CAS
	f.status(f.set(protocol.CmdCas, "k", "x", withCAS(cas+1)), protocol.StatusExists)
	f.status(f.set(protocol.CmdCas, "k", "x", withCAS(0)), protocol.StatusExists) // text cas with 0 compares too
	r := f.set(protocol.CmdCas, "k", "x", withCAS(cas))
	f.status(r, protocol.StatusOK)
	if r.CAS == cas || f.get("k") != "x" {
		t.Fatalf("cas did not store a new version")
	}
	// A binary set/replace carrying a CAS is a compare-and-swap.
	f.status(f.set(protocol.CmdSet, "k", "y", withCAS(cas)), protocol.StatusExists)
	f.status(f.set(protocol.CmdReplace, "nope", "y", withCAS(5)), protocol.StatusNotFound)
	f.status(f.set(protocol.CmdSet, "k", "y", withCAS(r.CAS)), protocol.StatusOK)
	// Meta E: the client picks the new version.
	r = f.set(protocol.CmdSet, "e", "v", func(r *protocol.Request) { r.NewCAS = 999 })
	if r.CAS != 999 || f.hit("e").CAS != 999 {
		t.Fatalf("NewCAS ignored: %d", r.CAS)
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t)
	f.status(f.do(protocol.CmdDelete, nil, "k"), protocol.StatusNotFound)
	cas := f.set(protocol.CmdSet, "k", "v", nil).CAS
	f.status(f.do(protocol.CmdDelete, withCAS(cas+1), "k"), protocol.StatusExists)
	f.status(f.do(protocol.CmdDelete, withCAS(cas), "k"), protocol.StatusOK)
	if f.get("k") != "<miss>" {
		t.Fatal("delete left the item")
	}
}

func TestTooLarge(t *testing.T) {
	f := newFixture(t) // MaxItemSize 100
	f.set(protocol.CmdSet, "k", "old", nil)
	f.status(f.set(protocol.CmdSet, "k", string(make([]byte, 101)), nil), protocol.StatusTooLarge)
	if f.get("k") != "<miss>" {
		t.Fatal("a too-large set must remove the old item, as memcached does")
	}
	f.set(protocol.CmdSet, "a", string(make([]byte, 60)), nil)
	// memcached cannot allocate the combined item and answers NOT_STORED.
	f.status(f.set(protocol.CmdAppend, "a", string(make([]byte, 41)), nil), protocol.StatusNotStored)
	if len(f.get("a")) != 60 {
		t.Fatal("a failed append changed the item")
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	f.set(protocol.CmdSet, "rel", "v", exptime(10))
	f.set(protocol.CmdSet, "abs", "v", exptime(f.now.Unix()+20))
	f.set(protocol.CmdSet, "never", "v", exptime(0))
	f.status(f.set(protocol.CmdSet, "neg", "v", exptime(-1)), protocol.StatusOK)
	f.status(f.set(protocol.CmdSet, "past", "v", exptime(f.now.Unix()-1)), protocol.StatusOK)
	if f.get("neg") != "<miss>" || f.get("past") != "<miss>" {
		t.Fatal("a write with a past exptime is readable")
	}
	if h := f.hit("rel"); h.Exptime != f.now.Unix()+10 {
		t.Fatalf("relative exptime reported as %d", h.Exptime)
	}
	f.advance(9 * time.Second)
	if f.get("rel") != "v" {
		t.Fatal("expired early")
	}
	f.advance(time.Second) // now == exptime: gone, as in memcached
	if f.get("rel") != "<miss>" || f.get("abs") != "v" {
		t.Fatal("relative expiry wrong")
	}
	f.advance(10 * time.Second)
	if f.get("abs") != "<miss>" || f.get("never") != "v" {
		t.Fatal("absolute expiry wrong")
	}
	// A set with a negative exptime replaces (and so removes) a live item.
	f.set(protocol.CmdSet, "never", "v2", exptime(-1))
	if f.get("never") != "<miss>" {
		t.Fatal("negative exptime set left the old item")
	}
	// 30 days is still relative, one second more is absolute (long past).
	f.set(protocol.CmdSet, "30d", "v", exptime(protocol.MaxRelativeExptime))
	f.set(protocol.CmdSet, "30d+1", "v", exptime(protocol.MaxRelativeExptime+1))
	if f.get("30d") != "v" || f.get("30d+1") != "<miss>" {
		t.Fatal("30-day boundary wrong")
	}
}

func TestTouchAndGat(t *testing.T) {
	f := newFixture(t)
	f.status(f.do(protocol.CmdTouch, exptime(10), "k"), protocol.StatusNotFound)
	cas := f.set(protocol.CmdSet, "k", "v", exptime(5)).CAS
	f.status(f.do(protocol.CmdTouch, exptime(100), "k"), protocol.StatusOK)
	f.advance(50 * time.Second)
	h := f.hit("k")
	if h.CAS != cas || h.Exptime != f.now.Unix()+50 {
		t.Fatalf("touch: %+v (a touch keeps the CAS)", h)
	}
	r := f.do(protocol.CmdGat, exptime(0), "k", "missing")
	if len(r.Hits) != 1 || r.Hits[0].Index != 0 || r.Hits[0].Exptime != 0 {
		t.Fatalf("gat: %+v", r.Hits)
	}
	f.advance(1000 * time.Second)
	if f.get("k") != "v" {
		t.Fatal("gat 0 did not make the item permanent")
	}
	// gat with a past time answers the hit, then the item is gone.
	if r := f.do(protocol.CmdGats, exptime(-1), "k"); len(r.Hits) != 1 {
		t.Fatal("gat -1 missed")
	}
	if f.get("k") != "<miss>" {
		t.Fatal("gat -1 left the item")
	}
	f.set(protocol.CmdSet, "t", "v", nil)
	f.do(protocol.CmdTouch, exptime(-1), "t")
	if f.get("t") != "<miss>" {
		t.Fatal("touch -1 left the item")
	}
}

func TestMultiGetOrderAndMisses(t *testing.T) {
	f := newFixture(t)
	f.set(protocol.CmdSet, "b", "B", nil)
	f.set(protocol.CmdSet, "d", "D", nil)
	r := f.do(protocol.CmdGet, nil, "a", "b", "c", "d", "b")
	var got []string
	for _, h := range r.Hits {
		got = append(got, fmt.Sprintf("%d=%s", h.Index, h.Value))
	}
	if fmt.Sprint(got) != "[1=B 3=D 4=B]" {
		t.Fatalf("hits %v", got)
	}
}

func TestIncrDecr(t *testing.T) {
	f := newFixture(t)
	f.status(f.do(protocol.CmdIncr, func(r *protocol.Request) { r.Delta = 1 }, "n"), protocol.StatusNotFound)
	arith := func(cmd protocol.Command, delta uint64) *protocol.Response {
		return f.do(cmd, func(r *protocol.Request) { r.Delta = delta }, "n")
	}
	cases := []struct {
		start  string
		cmd    protocol.Command
		delta  uint64
		number uint64
		after  string
	}{
		{"5", protocol.CmdIncr, 3, 8, "8"},
		{"99", protocol.CmdIncr, 1, 100, "100"},                        // grows
		{"100", protocol.CmdDecr, 95, 5, "5  "},                        // in place, space padded
		{"10", protocol.CmdDecr, 11, 0, "0 "},                          // floors at 0
		{"18446744073709551615", protocol.CmdIncr, 2, 1, "1" + sp(19)}, // wraps
		{" 7", protocol.CmdIncr, 1, 8, "8 "},                           // leading space
		{"7 junk", protocol.CmdIncr, 1, 8, "8" + sp(5)},                // stops at a space
		{"+7", protocol.CmdIncr, 1, 8, "8 "},
		{"-0", protocol.CmdIncr, 1, 1, "1 "},
	}
	for _, c := range cases {
		cas := f.set(protocol.CmdSet, "n", c.start, func(r *protocol.Request) { r.Flags = 5 }).CAS
		r := arith(c.cmd, c.delta)
		f.status(r, protocol.StatusOK)
		h := f.hit("n")
		if r.Number != c.number || string(h.Value) != c.after || h.Flags != 5 || r.CAS == cas || h.CAS != r.CAS {
			t.Errorf("%q %v %d: number %d value %q flags %d cas %d->%d, want %d %q",
				c.start, c.cmd, c.delta, r.Number, h.Value, h.Flags, cas, r.CAS, c.number, c.after)
		}
	}
	for _, bad := range []string{"", "   ", "abc", "12abc", "-5", "18446744073709551616", "1.5"} {
		f.set(protocol.CmdSet, "n", bad, nil)
		f.status(arith(protocol.CmdIncr, 1), protocol.StatusNonNumeric)
		f.status(arith(protocol.CmdDecr, 1), protocol.StatusNonNumeric)
	}
	// CAS precondition (binary incr with a CAS).
	cas := f.set(protocol.CmdSet, "n", "1", nil).CAS
	f.status(f.do(protocol.CmdIncr, func(r *protocol.Request) { r.Delta = 1; r.CAS = cas + 1 }, "n"), protocol.StatusExists)
	f.status(f.do(protocol.CmdIncr, func(r *protocol.Request) { r.Delta = 1; r.CAS = cas }, "n"), protocol.StatusOK)
}

func sp(n int) string { return fmt.Sprintf("%*s", n, "") }

func TestIncrVivifyAndTTL(t *testing.T) {
	f := newFixture(t)
	// Binary incr with an exptime creates the counter with Initial; the
	// delta is not applied.
	binIncr := func(r *protocol.Request) {
		r.Opcode = 0x05
		r.Delta, r.Initial, r.Vivify, r.Exptime, r.HasExptime = 10, 42, true, 100, true
	}
	r := f.do(protocol.CmdIncr, binIncr, "c")
	f.status(r, protocol.StatusOK)
	if h := f.hit("c"); r.Number != 42 || string(h.Value) != "42" || h.Exptime != f.now.Unix()+100 || h.CAS != r.CAS {
		t.Fatalf("vivify: number %d hit %+v", r.Number, h)
	}
	// On a hit the binary exptime does not change the TTL...
	r = f.do(protocol.CmdIncr, func(r *protocol.Request) { binIncr(r); r.Exptime = 5 }, "c")
	if h := f.hit("c"); r.Number != 52 || h.Exptime != f.now.Unix()+100 {
		t.Fatalf("binary incr hit: number %d exptime %d", r.Number, h.Exptime)
	}
	// ...but meta ma T does.
	f.do(protocol.CmdDecr, func(r *protocol.Request) {
		r.Mods.Meta, r.Mods.SetTTL, r.Delta, r.Exptime, r.HasExptime = true, true, 2, 7, true
	}, "c")
	if h := f.hit("c"); string(h.Value) != "50" || h.Exptime != f.now.Unix()+7 {
		t.Fatalf("ma T: %+v", h)
	}
}

func TestFlushAll(t *testing.T) {
	f := newFixture(t)
	f.set(protocol.CmdSet, "a", "v", nil)
	f.status(f.do(protocol.CmdFlushAll, exptime(0)), protocol.StatusOK)
	if f.get("a") != "<miss>" {
		t.Fatal("flush_all left an item")
	}

	// Delayed: items written before the flush time go when it comes,
	// including ones written after the command; later writes survive.
	f.set(protocol.CmdSet, "before", "v", nil)
	f.do(protocol.CmdFlushAll, exptime(10))
	f.advance(5 * time.Second)
	f.set(protocol.CmdSet, "between", "v", nil)
	if f.get("before") != "v" {
		t.Fatal("delayed flush acted early")
	}
	f.advance(5 * time.Second)
	f.set(protocol.CmdSet, "after", "v", nil)
	if f.get("before") != "<miss>" || f.get("between") != "<miss>" || f.get("after") != "v" {
		t.Fatal("delayed flush wrong")
	}
	// An immediate flush cancels a pending delayed one.
	f.do(protocol.CmdFlushAll, exptime(10))
	f.do(protocol.CmdFlushAll, exptime(0))
	f.set(protocol.CmdSet, "x", "v", nil)
	f.advance(20 * time.Second)
	if f.get("x") != "v" {
		t.Fatal("cancelled delayed flush still ran")
	}
}

func TestMetaTokens(t *testing.T) {
	f := newFixture(t)
	mgN := func(r *protocol.Request) {
		r.Mods.Meta, r.Vivify, r.Mods.VivifyExptime, r.Exptime, r.HasExptime = true, true, 30, 30, false
	}
	r := f.do(protocol.CmdGet, mgN, "k")
	if len(r.Hits) != 1 || !r.Hits[0].Win || r.Hits[0].Won || len(r.Hits[0].Value) != 0 ||
		r.Hits[0].Exptime != f.now.Unix()+30 {
		t.Fatalf("mg N miss: %+v", r.Hits)
	}
	r = f.do(protocol.CmdGet, mgN, "k")
	if h := r.Hits[0]; h.Win || !h.Won {
		t.Fatalf("second mg N: %+v, want Z only", h)
	}
	cas := f.set(protocol.CmdSet, "k", "fresh", nil).CAS
	if h := f.mg("k"); h.Win || h.Won || h.Stale {
		t.Fatalf("a set clears the tokens: %+v", h)
	}
	// md I: stale, new CAS; first reader wins, the next sees Z.
	r = f.do(protocol.CmdDelete, func(r *protocol.Request) { r.Invalidate = true }, "k")
	f.status(r, protocol.StatusOK)
	if h := f.mg("k"); !h.Stale || !h.Win || h.Won || h.CAS == cas || string(h.Value) != "fresh" {
		t.Fatalf("first read after md I: %+v", h)
	}
	if h := f.mg("k"); !h.Stale || h.Win || !h.Won {
		t.Fatalf("second read after md I: %+v", h)
	}
	// A classic get serves the stale item without handing out tokens.
	if h := f.hit("k"); h.Win || h.Won || string(h.Value) != "fresh" {
		t.Fatalf("get after md I: %+v", h)
	}
	// ms I with the older CAS stores the value, still stale.
	r = f.set(protocol.CmdCas, "k", "recomputed", func(r *protocol.Request) { r.CAS = cas; r.Invalidate = true })
	f.status(r, protocol.StatusOK)
	if h := f.mg("k"); !h.Stale || string(h.Value) != "recomputed" {
		t.Fatalf("ms I: %+v", h)
	}
	f.status(f.set(protocol.CmdCas, "k", "x", func(r *protocol.Request) { r.CAS = r.CAS + 1<<40; r.Invalidate = true }), protocol.StatusExists)
}

func TestStatsVersionVerbosity(t *testing.T) {
	f := newFixture(t)
	f.set(protocol.CmdSet, "a", "12345", nil)
	f.get("a")
	f.get("zz")
	f.advance(7 * time.Second)
	r := f.do(protocol.CmdStats, nil)
	f.status(r, protocol.StatusOK)
	m := map[string]string{}
	for _, s := range r.Stats {
		m[s.Name] = s.Value
	}
	want := map[string]string{
		"uptime": "7", "time": strconv.FormatInt(f.now.Unix(), 10), "version": DefaultVersion,
		"cmd_get": "2", "get_hits": "1", "get_misses": "1",
		"cmd_set": "1", "curr_items": "1", "total_items": "1", "bytes": "5",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("stat %s = %q, want %q", k, m[k], v)
		}
	}
	if r.Stats[0].Name != "pid" {
		t.Errorf("first stat %q, want pid", r.Stats[0].Name)
	}
	f.do(protocol.CmdStats, func(r *protocol.Request) { r.Args = []byte("reset") })
	r = f.do(protocol.CmdStats, nil)
	for _, s := range r.Stats {
		if s.Name == "cmd_get" && s.Value != "0" {
			t.Errorf("after reset cmd_get = %s", s.Value)
		}
	}
	f.status(f.do(protocol.CmdStats, func(r *protocol.Request) { r.Args = []byte("bogus") }), protocol.StatusNotFound)
	if r := f.do(protocol.CmdVersion, nil); r.Message != DefaultVersion {
		t.Errorf("version %q", r.Message)
	}
	f.status(f.do(protocol.CmdVerbosity, nil), protocol.StatusOK)
}

func TestConcurrentUse(t *testing.T) {
	s := New(Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			req, resp := &protocol.Request{}, &protocol.Response{}
			for i := range 200 {
				req.Reset()
				resp.Reset()
				req.Command = protocol.CmdIncr
				req.AddKey([]byte("ctr"))
				req.Delta, req.Vivify, req.HasExptime = 1, true, true
				if i%2 == 0 {
					req.Command = protocol.CmdSet
					req.Keys[0] = []byte(fmt.Sprintf("k%d", g))
					req.Value = []byte("v")
				}
				s.Handle(context.Background(), req, resp)
			}
		})
	}
	wg.Wait()
	if n := s.Len(); n != 9 {
		t.Fatalf("Len = %d, want 9", n)
	}
}
