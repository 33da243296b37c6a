package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// mgState reads key with mg h (no bump) and returns h and the last access.
func mgState(t *testing.T, s *Store, key string) (bool, int64) {
	t.Helper()
	r := mg(key, func(r *protocol.Request) {
		r.Mods.NoBump = true
		r.Want |= protocol.WantFetched | protocol.WantAccess
	})
	resp := do(t, s, r)
	if len(resp.Hits) != 1 {
		t.Fatalf("mg %s: no hit", key)
	}
	return resp.Hits[0].Fetched, resp.Hits[0].Accessed
}

// TestFetchedSurvivesRestart: an item's first fetch is written (one state
// write per item), for a small item in its record and for a large one in
// a side record that leaves the value's record alone; a new version
// starts over, a delete takes the side record with it.
func TestFetchedSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testOptions(dir))
	big := strings.Repeat("b", sideStateMin+1)
	set(t, s, protocol.CmdSet, "small", "v", 0, 0)
	set(t, s, protocol.CmdSet, "big", big, 0, 0)
	for _, k := range []string{"small", "big"} {
		if f, _ := mgState(t, s, k); f {
			t.Fatalf("%s: fetched before any read", k)
		}
		do(t, s, req(protocol.CmdGet, k))
	}
	sh := s.shardFor(hashKey([]byte("big")))
	it, ok, err := s.lookup(sh, []byte("big"), time.Now())
	if err != nil || !ok || it.h.bits != 0 {
		t.Fatalf("big's record was rewritten for its state: %+v %v %v", it.h, ok, err)
	}
	it.release()
	s.Close()

	s = openTest(t, testOptions(dir))
	for _, k := range []string{"small", "big"} {
		if f, _ := mgState(t, s, k); !f {
			t.Fatalf("%s: the first fetch was not kept across a restart", k)
		}
	}
	set(t, s, protocol.CmdSet, "big", big, 0, 0)
	if f, _ := mgState(t, s, "big"); f {
		t.Fatal("big: a new version kept the old one's fetch")
	}
	do(t, s, req(protocol.CmdGet, "big"))
	do(t, s, req(protocol.CmdDelete, "big"))
	sh = s.shardFor(hashKey([]byte("big")))
	var kb [sideKeyLen]byte
	if _, ok, _ := s.lookup(sh, sideKey(kb[:0], []byte("big")), time.Now()); ok {
		t.Fatal("delete left big's side record")
	}
}

// flushDue writes what is due now, as the flusher does every interval.
func flushDue(t *testing.T, s *Store) {
	t.Helper()
	s.life.RLock()
	defer s.life.RUnlock()
	if err := s.persistState(false, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// manualFlush are test options whose flusher waits an hour: the test
// flushes (flushDue) where it wants the writes.
func manualFlush(dir string) Options {
	o := testOptions(dir)
	o.StateFlushInterval = time.Hour
	return o
}

// TestAccessBoundedWrites: a key read again and again writes its state
// once (the first fetch) and then only when the last access moves by
// item.UpdateInterval; mg l stays exact in between (remembered in memory).
// The writes happen in the flusher, never in the read.
func TestAccessBoundedWrites(t *testing.T) {
	s := openTest(t, manualFlush(t.TempDir()))
	clock := time.Now()
	get := func() *protocol.Response { // a read at clock
		t.Helper()
		var resp protocol.Response
		s.life.RLock()
		defer s.life.RUnlock()
		if err := s.handle(req(protocol.CmdGet, "k"), &resp, clock); err != nil || len(resp.Hits) != 1 {
			t.Fatalf("get: %v %v", err, resp.Hits)
		}
		return &resp
	}
	set(t, s, protocol.CmdSet, "k", "v", 0, 0)
	w0 := s.stats.writeOps.Load()
	get() // first fetch: due
	for i := 0; i < 5; i++ {
		clock = clock.Add(5 * time.Second)
		get()
	}
	if w := s.stats.writeOps.Load() - w0; w != 0 {
		t.Fatalf("reads wrote %d records themselves", w)
	}
	flushDue(t, s)
	if w := s.stats.writeOps.Load() - w0; w != 1 {
		t.Fatalf("%d writes for a first fetch and 5 reads within a minute, want 1", w)
	}
	var resp protocol.Response
	r := mg("k", func(r *protocol.Request) { r.Mods.NoBump, r.Want = true, protocol.WantAccess })
	s.life.RLock()
	err := s.handle(r, &resp, clock)
	s.life.RUnlock()
	if err != nil || len(resp.Hits) != 1 || resp.Hits[0].Accessed != clock.Unix() {
		t.Fatalf("mg l: %v %+v, want last access %d (the last read)", err, resp.Hits, clock.Unix())
	}
	clock = clock.Add(mcitem.UpdateInterval * time.Second)
	get()
	flushDue(t, s)
	if w := s.stats.writeOps.Load() - w0; w != 2 {
		t.Fatalf("%d writes after a read a minute on, want 2", w)
	}
	flushDue(t, s)
	if w := s.stats.writeOps.Load() - w0; w != 2 {
		t.Fatalf("%d writes after a flush with nothing due, want 2", w)
	}
}

// TestDeferredStateVisibleAtOnce: a first fetch writes nothing before the
// reply, yet the next request sees it (mg h1, and a W token still goes to
// one reader only, written before its reply); the flush puts it into the
// record, a small item's and a large one's side record.
func TestDeferredStateVisibleAtOnce(t *testing.T) {
	s := openTest(t, manualFlush(t.TempDir()))
	big := strings.Repeat("b", sideStateMin+1)
	set(t, s, protocol.CmdSet, "k", "v", 0, 0)
	set(t, s, protocol.CmdSet, "big", big, 0, 0)
	w0 := s.stats.writeOps.Load()
	do(t, s, req(protocol.CmdGet, "k", "big"))
	if w := s.stats.writeOps.Load() - w0; w != 0 {
		t.Fatalf("first fetches wrote %d records before replying", w)
	}
	for _, k := range []string{"k", "big"} {
		if f, _ := mgState(t, s, k); !f {
			t.Fatalf("%s: first fetch not seen by the next request", k)
		}
	}
	if n := s.recent.due.Load(); n != 2 {
		t.Fatalf("%d records due, want 2", n)
	}
	// md I then two mg: the first wins W, written before its reply.
	md := req(protocol.CmdDelete, "k")
	md.Invalidate = true
	do(t, s, md)
	w1 := s.stats.writeOps.Load()
	if resp := do(t, s, mg("k", nil)); len(resp.Hits) != 1 || !resp.Hits[0].Win {
		t.Fatalf("first mg after md I: %+v, want W", resp.Hits)
	}
	if s.stats.writeOps.Load() == w1 {
		t.Fatal("a W token was not written before the reply")
	}
	if resp := do(t, s, mg("k", nil)); len(resp.Hits) != 1 || resp.Hits[0].Win || !resp.Hits[0].Won {
		t.Fatalf("second mg after md I: %+v, want Z", resp.Hits)
	}
	flushDue(t, s)
	if n := s.recent.due.Load(); n != 0 {
		t.Fatalf("%d records still due after a flush", n)
	}
	if s.stats.stateWrites.Load() == 0 {
		t.Fatal("the flush wrote nothing")
	}
	// The record now holds it: a fresh table (as after a restart) reads it.
	s.recent.collect(true, nil)
	for _, k := range []string{"k", "big"} {
		if f, _ := mgState(t, s, k); !f {
			t.Fatalf("%s: first fetch not in the record after the flush", k)
		}
	}
}

// TestDeferredStateKeepsLaterWrites: state pending for one version is not
// written over a set, touch or delete that came after it: the new value and
// its own state stay; a touch (same version) keeps its expiry and gains the
// fetch. Also with the flusher racing sets and reads of one key.
func TestDeferredStateKeepsLaterWrites(t *testing.T) {
	s := openTest(t, manualFlush(t.TempDir()))
	set(t, s, protocol.CmdSet, "k", "v1", 0, 0)
	set(t, s, protocol.CmdSet, "t", "v", 0, 0)
	set(t, s, protocol.CmdSet, "d", "v", 0, 0)
	do(t, s, req(protocol.CmdGet, "k", "t", "d")) // first fetches: due
	set(t, s, protocol.CmdSet, "k", "v2", 7, 0)   // a new version
	touch := req(protocol.CmdTouch, "t")
	touch.Exptime, touch.HasExptime = 3600, true
	do(t, s, touch)
	do(t, s, req(protocol.CmdDelete, "d"))
	flushDue(t, s)
	s.recent.collect(true, nil) // forget memory: read the records alone
	if f, _ := mgState(t, s, "k"); f {
		t.Fatal("k: the old version's fetch was written over the new one")
	}
	if h := wantValue(t, s, "k", "v2"); h.Flags != 7 {
		t.Fatalf("k: flags %d, want the new version's 7", h.Flags)
	}
	if resp := do(t, s, req(protocol.CmdGet, "d")); len(resp.Hits) != 0 {
		t.Fatal("d: the flush brought a deleted item back")
	}
	r := mg("t", func(r *protocol.Request) {
		r.Mods.NoBump = true
		r.Want |= protocol.WantFetched | protocol.WantTTL
	})
	if resp := do(t, s, r); len(resp.Hits) != 1 || !resp.Hits[0].Fetched || resp.Hits[0].Exptime == 0 {
		t.Fatalf("t after touch and flush: %+v, want fetched with the touch's expiry", resp.Hits)
	}

	// The race: a writer sets r to 0..n-1, readers fetch it, flushes run
	// meanwhile; the last set's value stays, with its own state.
	const n = 300
	set(t, s, protocol.CmdSet, "r", "start", 0, 0)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var resp protocol.Response
				if err := s.Handle(context.Background(), req(protocol.CmdGet, "r"), &resp); err != nil {
					t.Error(err)
					return
				}
				s.life.RLock()
				s.persistState(false, time.Now())
				s.life.RUnlock()
			}
		}()
	}
	for i := range n {
		set(t, s, protocol.CmdSet, "r", fmt.Sprint(i), 0, 0)
	}
	close(stop)
	wg.Wait()
	wantValue(t, s, "r", fmt.Sprint(n-1))
	flushDue(t, s)
	s.recent.collect(true, nil)
	wantValue(t, s, "r", fmt.Sprint(n-1))
}

// TestDeferredStateManyKeys: first fetches of many keys while the flusher
// runs (woken by the pending count) are all written: after a clean restart
// every key reads h1, and the writes are one per key.
func TestDeferredStateManyKeys(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	o.StateFlushPending = 100
	s := openTest(t, o)
	const n = 3000
	for i := range n {
		set(t, s, protocol.CmdSet, fmt.Sprint("k", i), "v", 0, 0)
	}
	w0 := s.stats.writeOps.Load()
	for i := range n {
		do(t, s, req(protocol.CmdGet, fmt.Sprint("k", i)))
	}
	flushDue(t, s)
	if w := s.stats.writeOps.Load() - w0; w != n {
		t.Fatalf("%d state writes for %d first fetches", w, n)
	}
	s.Close()
	s = openTest(t, testOptions(dir))
	for i := range n {
		if f, _ := mgState(t, s, fmt.Sprint("k", i)); !f {
			t.Fatalf("k%d: first fetch lost across a clean restart", i)
		}
	}
}

// TestPendingBound: a table stripe holds at most accessPerStripe keys.
// Remembered moves give way to due state; a stripe full of due state
// refuses more, so the read writes its record itself (settle says so).
func TestPendingBound(t *testing.T) {
	r := &recentAccess{deferOK: true, flushAt: 1 << 40}
	hk := func(i int) uint64 { return uint64(i) * accessStripes } // all in stripe 0
	key := func(i int) []byte { return []byte(fmt.Sprint("k", i)) }
	for i := range accessPerStripe {
		if !r.note(hk(i), key(i), 1, 1, 100, mcitem.Fetched, i%2 == 0) {
			t.Fatalf("note %d refused below the bound", i)
		}
	}
	// Full, half due: a new due entry drops the moves and gets in.
	if !r.note(hk(-1), []byte("new"), 1, 1, 100, mcitem.Fetched, true) {
		t.Fatal("a due entry was refused while moves could make room")
	}
	if n := len(r.stripes[0].m); n != accessPerStripe/2+1 {
		t.Fatalf("%d entries after eviction, want %d", n, accessPerStripe/2+1)
	}
	for i := 1; len(r.stripes[0].m) < accessPerStripe; i += 2 {
		r.note(hk(i), key(i), 1, 1, 100, mcitem.Fetched, true)
	}
	if r.note(hk(-2), []byte("over"), 1, 1, 100, mcitem.Fetched, true) {
		t.Fatal("a stripe full of due state took more")
	}
	if !r.note(hk(-2), []byte("over"), 1, 1, 100, 0, false) {
		t.Fatal("a mere move must be accepted (and forgotten) when full")
	}
	if n := r.due.Load(); n != accessPerStripe {
		t.Fatalf("due count %d, want %d", n, accessPerStripe)
	}
	// Through settle: the read is told to write itself.
	cur := mcitem.Item{Value: []byte("v"), CAS: 1, Access: 50}
	o := mcitem.Read(req(protocol.CmdGet, "over"), &cur, 100)
	if !r.settle(hk(-2), []byte("over"), &o, &cur, cur.Access, 1) {
		t.Fatal("settle deferred a first fetch into a full stripe")
	}
	// A flush makes them not due: room again.
	if got := len(r.collect(false, nil)); got != accessPerStripe {
		t.Fatalf("collected %d, want %d", got, accessPerStripe)
	}
	if r.settle(hk(-2), []byte("over"), &o, &cur, cur.Access, 1) {
		t.Fatal("settle did not defer once the stripe had room")
	}
}

// TestAccessPersistedAtClose: a last-access move kept in memory is written
// out by Close, so a clean restart reads it; the version it belongs to
// decides (a key rewritten since keeps its new write's time).
func TestAccessPersistedAtClose(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testOptions(dir))
	clock := time.Now()
	at := func(r *protocol.Request) *protocol.Response { // a request at clock
		t.Helper()
		var resp protocol.Response
		s.life.RLock()
		defer s.life.RUnlock()
		if err := s.handle(r, &resp, clock); err != nil {
			t.Fatal(err)
		}
		return &resp
	}
	set(t, s, protocol.CmdSet, "k", "v", 0, 0)
	set(t, s, protocol.CmdSet, "big", strings.Repeat("b", sideStateMin+1), 0, 0)
	at(req(protocol.CmdGet, "k", "big")) // first fetch: written
	clock = clock.Add(20 * time.Second)
	w0 := s.stats.writeOps.Load()
	at(req(protocol.CmdGet, "k", "big")) // moved 20 s: memory only
	if w := s.stats.writeOps.Load() - w0; w != 0 {
		t.Fatalf("a 20 s move wrote %d records", w)
	}
	s.Close()

	s = openTest(t, testOptions(dir))
	for _, k := range []string{"k", "big"} {
		f, acc := mgState(t, s, k)
		if !f || acc != clock.Unix() {
			t.Fatalf("%s after a clean restart: fetched %v, last access %d, want %d", k, f, acc, clock.Unix())
		}
	}
}

// TestDeferredStateFromHeldRecord: a flush writes a read's state from the
// record the read kept (no second lookup) when no write reached the key's
// stripe since, keeping value, flags, expiry and CAS; after a write to
// another key of that stripe it reads the record again, with the same
// result.
func TestDeferredStateFromHeldRecord(t *testing.T) {
	s := openTest(t, manualFlush(t.TempDir()))
	r := req(protocol.CmdSet, "h")
	r.Value, r.Flags, r.Exptime, r.HasExptime = []byte("held"), 5, 3600, true
	do(t, s, r)
	set(t, s, protocol.CmdSet, "h2", "v2", 6, 0)
	cas := get(t, s, "h").CAS // the first fetch: due, the record held
	get(t, s, "h2")
	// A write to another key of h2's stripe: h2's held record may be stale.
	stripe := (hashKey([]byte("h2")) >> 32) % lockStripes
	for i := 0; ; i++ {
		k := fmt.Sprint("other", i)
		if (hashKey([]byte(k))>>32)%lockStripes == stripe {
			set(t, s, protocol.CmdSet, k, "x", 0, 0)
			break
		}
	}
	keys0, held0 := s.stats.readKeys.Load(), s.stats.stateHeld.Load()
	flushDue(t, s)
	if n := s.stats.stateHeld.Load() - held0; n != 1 {
		t.Fatalf("%d records written from a held copy, want 1 (h)", n)
	}
	if n := s.stats.readKeys.Load() - keys0; n != 1 {
		t.Fatalf("the flush looked up %d keys, want 1 (h2)", n)
	}
	s.recent.collect(true, nil) // forget memory: read the records alone
	for _, k := range []string{"h", "h2"} {
		if f, _ := mgState(t, s, k); !f {
			t.Fatalf("%s: first fetch not in the record after the flush", k)
		}
	}
	hit := wantValue(t, s, "h", "held")
	if hit.Flags != 5 || hit.CAS != cas {
		t.Fatalf("h: flags %d CAS %d, want 5 and %d", hit.Flags, hit.CAS, cas)
	}
	ttl := mg("h", func(r *protocol.Request) { r.Want |= protocol.WantTTL })
	if resp := do(t, s, ttl); len(resp.Hits) != 1 || resp.Hits[0].Exptime == 0 {
		t.Fatalf("h: %+v, want its expiry kept", resp.Hits)
	}
	if hit := wantValue(t, s, "h2", "v2"); hit.Flags != 6 {
		t.Fatalf("h2: flags %d, want 6", hit.Flags)
	}
	if n := s.recent.held.Load(); n != 0 {
		t.Fatalf("%d bytes still held after the flush", n)
	}
}

// TestConcurrentFirstFetches: of reads racing for an item never fetched,
// exactly one answers h0 (memcached's item lock gives the same), also while
// its fetch is only remembered in memory (the state is deferred).
func TestConcurrentFirstFetches(t *testing.T) {
	s := openTest(t, manualFlush(t.TempDir()))
	const keys, readers = 200, 8
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		set(t, s, protocol.CmdSet, k, "v", 0, 0)
		var wg sync.WaitGroup
		var firsts atomic.Int32
		start := make(chan struct{})
		for range readers {
			wg.Go(func() {
				r := mg(k, func(r *protocol.Request) { r.Want |= protocol.WantFetched })
				<-start
				resp := new(protocol.Response)
				if err := s.Handle(context.Background(), r, resp); err != nil || len(resp.Hits) != 1 {
					t.Errorf("mg %s: %v %+v", k, err, resp.Hits)
					return
				}
				if !resp.Hits[0].Fetched {
					firsts.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := firsts.Load(); n != 1 {
			t.Fatalf("%s: %d of %d concurrent reads answered h0, want 1", k, n, readers)
		}
	}
}
