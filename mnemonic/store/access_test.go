package store

import (
	"strings"
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

// TestAccessBoundedWrites: a key read again and again writes its state
// once (the first fetch) and then only when the last access moves by
// item.UpdateInterval; mg l stays exact in between (remembered in memory).
func TestAccessBoundedWrites(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
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
	get() // first fetch: written
	for i := 0; i < 5; i++ {
		clock = clock.Add(5 * time.Second)
		get()
	}
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
	if w := s.stats.writeOps.Load() - w0; w != 2 {
		t.Fatalf("%d writes after a read a minute on, want 2", w)
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
