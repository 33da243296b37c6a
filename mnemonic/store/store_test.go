package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linxGnu/grocksdb"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

func testOptions(dir string) Options {
	return Options{Dir: dir, Shards: 2, MaxDiskBytes: 64 << 20, BlockCacheBytes: 8 << 20}
}

func openTest(t *testing.T, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// req builds a request; fields are set by the caller.
func req(cmd protocol.Command, keys ...string) *protocol.Request {
	r := &protocol.Request{Command: cmd, HasExptime: true}
	for _, k := range keys {
		r.AddKey([]byte(k))
	}
	return r
}

func do(t *testing.T, s *Store, r *protocol.Request) *protocol.Response {
	t.Helper()
	var resp protocol.Response
	if err := s.Handle(context.Background(), r, &resp); err != nil {
		t.Fatalf("%s: %v", r.Command, err)
	}
	return &resp
}

func set(t *testing.T, s *Store, cmd protocol.Command, key, val string, flags uint32, exp int64) *protocol.Response {
	t.Helper()
	r := req(cmd, key)
	r.Value, r.Flags, r.Exptime = []byte(val), flags, exp
	return do(t, s, r)
}

func wantStatus(t *testing.T, resp *protocol.Response, st protocol.Status) {
	t.Helper()
	if resp.Status != st {
		t.Fatalf("status %v (%q), want %v", resp.Status, resp.Message, st)
	}
}

// get returns the hit for key, or nil.
func get(t *testing.T, s *Store, key string) *protocol.Hit {
	t.Helper()
	resp := do(t, s, req(protocol.CmdGets, key))
	if len(resp.Hits) == 0 {
		return nil
	}
	h := resp.Hits[0]
	return &h
}

func wantValue(t *testing.T, s *Store, key, val string) *protocol.Hit {
	t.Helper()
	h := get(t, s, key)
	if h == nil {
		t.Fatalf("%s: miss, want %q", key, val)
	}
	if string(h.Value) != val {
		t.Fatalf("%s = %q, want %q", key, h.Value, val)
	}
	return h
}

func wantMiss(t *testing.T, s *Store, key string) {
	t.Helper()
	if h := get(t, s, key); h != nil {
		t.Fatalf("%s: hit %q, want miss", key, h.Value)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	mctest.Eventually(t, d, what, cond)
}

func TestSetGetFlagsCAS(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	r1 := set(t, s, protocol.CmdSet, "k", "v1", 42, 0)
	wantStatus(t, r1, protocol.StatusOK)
	h := wantValue(t, s, "k", "v1")
	if h.Flags != 42 || h.CAS != r1.CAS || h.CAS == 0 || h.Exptime != 0 {
		t.Fatalf("hit %+v, set cas %d", h, r1.CAS)
	}
	r2 := set(t, s, protocol.CmdSet, "k", "v2", 0, 0)
	if r2.CAS <= r1.CAS {
		t.Fatalf("cas went from %d to %d", r1.CAS, r2.CAS)
	}
	// Multi-key get keeps request order and skips misses.
	set(t, s, protocol.CmdSet, "b", "vb", 0, 0)
	resp := do(t, s, req(protocol.CmdGet, "b", "nope", "k"))
	if len(resp.Hits) != 2 || resp.Hits[0].Index != 0 || resp.Hits[1].Index != 2 || string(resp.Hits[1].Value) != "v2" {
		t.Fatalf("hits %+v", resp.Hits)
	}
	// Empty values are values.
	set(t, s, protocol.CmdSet, "empty", "", 0, 0)
	wantValue(t, s, "empty", "")
	// Binary and base64 meta keys may hold any byte.
	set(t, s, protocol.CmdSet, "a key\x00\n", "bin", 0, 0)
	wantValue(t, s, "a key\x00\n", "bin")
	wantStatus(t, set(t, s, protocol.CmdSet, strings.Repeat("k", 251), "v", 0, 0), protocol.StatusClientError)
}

func TestAddReplaceAppendPrepend(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	wantStatus(t, set(t, s, protocol.CmdReplace, "k", "x", 0, 0), protocol.StatusNotStored)
	wantStatus(t, set(t, s, protocol.CmdAppend, "k", "x", 0, 0), protocol.StatusNotStored)
	wantStatus(t, set(t, s, protocol.CmdPrepend, "k", "x", 0, 0), protocol.StatusNotStored)
	wantStatus(t, set(t, s, protocol.CmdAdd, "k", "mid", 7, 1000), protocol.StatusOK)
	wantStatus(t, set(t, s, protocol.CmdAdd, "k", "other", 0, 0), protocol.StatusNotStored)
	wantStatus(t, set(t, s, protocol.CmdAppend, "k", ">", 99, 0), protocol.StatusOK)
	wantStatus(t, set(t, s, protocol.CmdPrepend, "k", "<", 99, 0), protocol.StatusOK)
	h := wantValue(t, s, "k", "<mid>")
	// append and prepend keep the item's flags and expiry.
	if h.Flags != 7 || h.Exptime == 0 {
		t.Fatalf("flags %d exptime %d after append", h.Flags, h.Exptime)
	}
	wantStatus(t, set(t, s, protocol.CmdReplace, "k", "new", 1, 0), protocol.StatusOK)
	wantValue(t, s, "k", "new")
	// Append with a compare value must match.
	r := req(protocol.CmdAppend, "k")
	r.Value, r.CAS = []byte("!"), 12345
	wantStatus(t, do(t, s, r), protocol.StatusExists)
	r.CAS = get(t, s, "k").CAS
	wantStatus(t, do(t, s, r), protocol.StatusOK)
	wantValue(t, s, "k", "new!")
}

func TestCAS(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	r := req(protocol.CmdCas, "k")
	r.Value, r.CAS = []byte("v"), 1
	wantStatus(t, do(t, s, r), protocol.StatusNotFound)
	set(t, s, protocol.CmdSet, "k", "v0", 0, 0)
	cas := get(t, s, "k").CAS
	r.CAS = cas + 1
	wantStatus(t, do(t, s, r), protocol.StatusExists)
	r.CAS = cas
	resp := do(t, s, r)
	wantStatus(t, resp, protocol.StatusOK)
	if h := wantValue(t, s, "k", "v"); h.CAS != resp.CAS || h.CAS == cas {
		t.Fatalf("cas after cas: %d, reply %d, old %d", h.CAS, resp.CAS, cas)
	}
	// The same unique again is stale now.
	wantStatus(t, do(t, s, r), protocol.StatusExists)

	// set/add with a compare value behave as cas (binary protocol, meta ms C).
	r = req(protocol.CmdSet, "k")
	r.Value, r.CAS = []byte("w"), 999
	wantStatus(t, do(t, s, r), protocol.StatusExists)
	r.Command, r.CAS = protocol.CmdAdd, get(t, s, "k").CAS
	wantStatus(t, do(t, s, r), protocol.StatusOK)
	wantValue(t, s, "k", "w")
}

func TestNewCASHonoured(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	r := req(protocol.CmdSet, "k")
	r.Value, r.NewCAS = []byte("v"), 777
	resp := do(t, s, r)
	if resp.CAS != 777 || get(t, s, "k").CAS != 777 {
		t.Fatalf("cas %d / %d, want 777", resp.CAS, get(t, s, "k").CAS)
	}
	// A client-chosen CAS does not take part in flush_all: the item written
	// after the flush survives even though 777 is far below the cutoff.
	do(t, s, req(protocol.CmdFlushAll))
	wantMiss(t, s, "k")
	do(t, s, r)
	wantValue(t, s, "k", "v")
}

func TestDelete(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	wantStatus(t, do(t, s, req(protocol.CmdDelete, "k")), protocol.StatusNotFound)
	set(t, s, protocol.CmdSet, "k", "v", 0, 0)
	r := req(protocol.CmdDelete, "k")
	r.CAS = 1
	wantStatus(t, do(t, s, r), protocol.StatusExists)
	r.CAS = get(t, s, "k").CAS
	wantStatus(t, do(t, s, r), protocol.StatusOK)
	wantMiss(t, s, "k")
	wantStatus(t, do(t, s, req(protocol.CmdDelete, "k")), protocol.StatusNotFound)
}

func incr(t *testing.T, s *Store, cmd protocol.Command, key string, delta uint64) *protocol.Response {
	t.Helper()
	r := req(cmd, key)
	r.Delta = delta
	return do(t, s, r)
}

func TestIncrDecr(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	wantStatus(t, incr(t, s, protocol.CmdIncr, "n", 1), protocol.StatusNotFound)
	set(t, s, protocol.CmdSet, "n", "10", 5, 0)
	if r := incr(t, s, protocol.CmdIncr, "n", 5); r.Number != 15 || r.CAS == 0 {
		t.Fatalf("incr: %+v", r)
	}
	// A number that gets shorter is padded with spaces, like memcached.
	if r := incr(t, s, protocol.CmdDecr, "n", 6); r.Number != 9 {
		t.Fatalf("decr: %+v", r)
	}
	if h := wantValue(t, s, "n", "9 "); h.Flags != 5 {
		t.Fatalf("flags %d", h.Flags)
	}
	if r := incr(t, s, protocol.CmdIncr, "n", 1); r.Number != 10 {
		t.Fatalf("incr of padded: %+v", r)
	}
	wantValue(t, s, "n", "10")
	if r := incr(t, s, protocol.CmdDecr, "n", 100); r.Number != 0 {
		t.Fatalf("decr below zero: %+v", r)
	}
	set(t, s, protocol.CmdSet, "n", "18446744073709551615", 0, 0)
	if r := incr(t, s, protocol.CmdIncr, "n", 2); r.Number != 1 {
		t.Fatalf("wrap: %+v", r)
	}
	wantValue(t, s, "n", "1                   ")
	for _, v := range []string{"abc", "", "12a", "-1", "18446744073709551616", " "} {
		set(t, s, protocol.CmdSet, "n", v, 0, 0)
		r := incr(t, s, protocol.CmdIncr, "n", 1)
		wantStatus(t, r, protocol.StatusNonNumeric)
		if r.Message != "cannot increment or decrement non-numeric value" {
			t.Fatalf("message %q", r.Message)
		}
	}
	// Vivify creates the item with the initial value.
	r := req(protocol.CmdIncr, "v")
	r.Delta, r.Initial, r.Vivify = 3, 40, true
	if resp := do(t, s, r); resp.Number != 40 {
		t.Fatalf("vivify: %+v", resp)
	}
	if resp := do(t, s, r); resp.Number != 43 {
		t.Fatalf("after vivify: %+v", resp)
	}
}

func TestExpiryAndTouch(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	now := time.Now().Unix()
	set(t, s, protocol.CmdSet, "ttl", "v", 0, 100)
	h := wantValue(t, s, "ttl", "v")
	if h.Exptime < now+99 || h.Exptime > now+101 {
		t.Fatalf("exptime %d, now %d", h.Exptime, now)
	}
	if ttl := protocol.RemainingTTL(h.Exptime, time.Now()); ttl < 98 || ttl > 100 {
		t.Fatalf("ttl %d", ttl)
	}
	// Born expired: STORED, and the old value is gone.
	wantStatus(t, set(t, s, protocol.CmdSet, "ttl", "v", 0, -1), protocol.StatusOK)
	wantMiss(t, s, "ttl")
	wantStatus(t, set(t, s, protocol.CmdSet, "abs", "v", 0, now-10), protocol.StatusOK)
	wantMiss(t, s, "abs")

	set(t, s, protocol.CmdSet, "short", "v", 0, 1)
	wantValue(t, s, "short", "v")
	eventually(t, 3*time.Second, "1s item to expire", func() bool { return get(t, s, "short") == nil })
	wantStatus(t, do(t, s, req(protocol.CmdTouch, "short")), protocol.StatusNotFound)

	set(t, s, protocol.CmdSet, "t", "v", 0, 0)
	cas := get(t, s, "t").CAS
	tr := req(protocol.CmdTouch, "t")
	tr.Exptime = 500
	wantStatus(t, do(t, s, tr), protocol.StatusOK)
	if h := wantValue(t, s, "t", "v"); h.CAS != cas || h.Exptime < now+499 {
		t.Fatalf("after touch: %+v (cas was %d)", h, cas)
	}
	// gat returns the value and sets the new expiry; gat without
	// HasExptime (mg without T) leaves it alone.
	g := req(protocol.CmdGat, "t", "missing")
	g.Exptime = 0
	resp := do(t, s, g)
	if len(resp.Hits) != 1 || resp.Hits[0].Exptime != 0 || string(resp.Hits[0].Value) != "v" {
		t.Fatalf("gat: %+v", resp.Hits)
	}
	if h := wantValue(t, s, "t", "v"); h.Exptime != 0 || h.CAS != cas {
		t.Fatalf("after gat: %+v", h)
	}
	g = req(protocol.CmdGat, "t")
	g.Exptime = -1
	if resp := do(t, s, g); len(resp.Hits) != 1 {
		t.Fatalf("gat -1: %+v", resp.Hits)
	}
	wantMiss(t, s, "t")
}

func TestFlushAll(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testOptions(dir))
	set(t, s, protocol.CmdSet, "a", "1", 0, 0)
	wantStatus(t, do(t, s, req(protocol.CmdFlushAll)), protocol.StatusOK)
	wantMiss(t, s, "a")
	set(t, s, protocol.CmdSet, "b", "2", 0, 0)
	wantValue(t, s, "b", "2")
	// add succeeds over a flushed item.
	wantStatus(t, set(t, s, protocol.CmdAdd, "a", "3", 0, 0), protocol.StatusOK)
	set(t, s, protocol.CmdSet, "gone", "x", 0, 0)
	do(t, s, req(protocol.CmdFlushAll))

	// The flush survives a restart.
	s.Close()
	s = openTest(t, testOptions(dir))
	wantMiss(t, s, "gone")
	set(t, s, protocol.CmdSet, "later", "x", 0, 0)
	wantValue(t, s, "later", "x")

	// Delayed: visible now, gone once the delay has passed.
	f := req(protocol.CmdFlushAll)
	f.Exptime = 2
	do(t, s, f)
	wantValue(t, s, "later", "x")
	eventually(t, 4*time.Second, "delayed flush", func() bool { return get(t, s, "later") == nil })
}

// TestDelayedFlushKeepsLaterWrites is issue 10 item 1: a delayed flush_all
// covers what was written before its moment and nothing written after it,
// also after a restart that reloads the persisted flush. Before the fix the
// cutoff (wall-clock ns) was compared with stamps of a counter that lagged
// the clock, so every later write stayed hidden.
func TestDelayedFlushKeepsLaterWrites(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testOptions(dir))
	set(t, s, protocol.CmdSet, "before", "x", 0, 0)
	f := req(protocol.CmdFlushAll)
	f.Exptime = 2
	wantStatus(t, do(t, s, f), protocol.StatusOK)
	// Written after the command but before its moment: flushed too.
	set(t, s, protocol.CmdSet, "between", "x", 0, 0)
	eventually(t, 4*time.Second, "delayed flush", func() bool { return get(t, s, "before") == nil })
	wantMiss(t, s, "between")
	// Once the flush second has passed, writes live. (memcached flushes
	// writes of the flush second itself, so poll rather than assert at once.)
	eventually(t, 3*time.Second, "a write after the flush moment to stay", func() bool {
		set(t, s, protocol.CmdSet, "after", "y", 0, 0)
		return get(t, s, "after") != nil
	})
	wantStatus(t, set(t, s, protocol.CmdAppend, "after", "z", 0, 0), protocol.StatusOK)
	wantValue(t, s, "after", "yz")

	// The persisted flush still covers "before", not "after" or new writes.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, testOptions(dir))
	wantMiss(t, s, "before")
	wantValue(t, s, "after", "yz")
	set(t, s, protocol.CmdSet, "restarted", "r", 0, 0)
	wantValue(t, s, "restarted", "r")
}

// TestOldRecordsStayReadable: records written by the previous version of the
// store carry stamps (and CAS values) of a counter that lagged the clock.
// They stay readable, new CAS values are above theirs, and flushes cover them.
func TestOldRecordsStayReadable(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testOptions(dir))
	// The old counter started at the process start in ns and added one per
	// write: a record written now carries a stamp from minutes ago.
	old := uint64(time.Now().Add(-10*time.Minute).UnixNano()) + 7
	key := []byte("legacy")
	if err := s.put(s.shardFor(hashKey(key)), key, header{cas: old, stamp: old, flags: 3}, []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, testOptions(dir))
	if h := wantValue(t, s, "legacy", "v"); h.CAS != old || h.Flags != 3 {
		t.Fatalf("legacy record: cas %d flags %d", h.CAS, h.Flags)
	}
	if c := set(t, s, protocol.CmdSet, "new", "n", 0, 0).CAS; c <= old {
		t.Fatalf("new cas %d <= legacy %d", c, old)
	}
	do(t, s, req(protocol.CmdFlushAll))
	wantMiss(t, s, "legacy")
	wantMiss(t, s, "new")
}

// TestVersionsFollowClock: versions track wall time (what a delayed flush
// compares with), never repeat, and stay ahead of a durable reservation.
func TestVersionsFollowClock(t *testing.T) {
	v, err := openVersions(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	later := time.Now().Add(5 * time.Second)
	n, err := v.next(later)
	if err != nil {
		t.Fatal(err)
	}
	if n < uint64(later.UnixNano()) {
		t.Fatalf("version %d behind the clock %d", n, later.UnixNano())
	}
	if n > v.reserved.Load() {
		t.Fatalf("version %d above the reservation %d", n, v.reserved.Load())
	}
	// The same instant again (or an earlier one) still gives a larger value.
	if m, _ := v.next(later); m <= n {
		t.Fatalf("repeated %d after %d", m, n)
	}
}

func TestItemSizeLimit(t *testing.T) {
	o := testOptions(t.TempDir())
	o.MaxItemSize = 1 << 20
	s := openTest(t, o)
	big := strings.Repeat("x", 1<<20)
	wantStatus(t, set(t, s, protocol.CmdSet, "big", big, 0, 0), protocol.StatusOK)
	wantValue(t, s, "big", big)
	wantStatus(t, set(t, s, protocol.CmdSet, "big2", big+"y", 0, 0), protocol.StatusTooLarge)
	wantMiss(t, s, "big2")
	// memcached cannot allocate the combined item and answers NOT_STORED.
	wantStatus(t, set(t, s, protocol.CmdAppend, "big", "y", 0, 0), protocol.StatusNotStored)
	wantValue(t, s, "big", big)
}

func TestRestartKeepsDataAndCASGrows(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testOptions(dir))
	var last uint64
	for i := 0; i < 100; i++ {
		last = set(t, s, protocol.CmdSet, fmt.Sprint("k", i), fmt.Sprint("v", i), uint32(i), 0).CAS
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, testOptions(dir))
	for i := 0; i < 100; i++ {
		if h := wantValue(t, s, fmt.Sprint("k", i), fmt.Sprint("v", i)); h.Flags != uint32(i) {
			t.Fatalf("flags %d", h.Flags)
		}
	}
	if c := set(t, s, protocol.CmdSet, "k0", "x", 0, 0).CAS; c <= last {
		t.Fatalf("cas after restart %d <= %d", c, last)
	}
}

func TestVersionsSurviveClockStepBack(t *testing.T) {
	dir := t.TempDir()
	v, err := openVersions(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := v.next(time.Now())
	// A restart with the clock an hour back still continues above a.
	v2, err := openVersions(dir, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := v2.next(time.Now().Add(-time.Hour)); b <= a {
		t.Fatalf("after step back %d <= %d", b, a)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testOptions(dir))
	s.Close()
	o := testOptions(dir)
	o.Shards = 3
	if _, err := Open(o); err == nil || !strings.Contains(err.Error(), "created with 2 shards") {
		t.Fatalf("shard mismatch: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Open(testOptions(file)); err == nil || !strings.HasPrefix(err.Error(), "cannot open RocksDB at "+file) {
		t.Fatalf("file as dir: %v", err)
	}
	// A second store on the same directory is refused by RocksDB's lock.
	s = openTest(t, testOptions(dir))
	if _, err := Open(testOptions(dir)); err == nil || !strings.Contains(err.Error(), "cannot open RocksDB at ") {
		t.Fatalf("second open: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"shards":    func(o *Options) { o.Shards = -1 },
		"style":     func(o *Options) { o.CompactionStyle = "tiered" },
		"budget":    func(o *Options) { o.MaxDiskBytes = 1 << 20 },
		"leveled":   func(o *Options) { o.CompactionStyle = "leveled" },
		"blob-fifo": func(o *Options) { o.BlobFiles = true },
		"compress":  func(o *Options) { o.Compression = "brotli" },
		"item":      func(o *Options) { o.MaxItemSize = -5 },
	} {
		o := Options{Dir: "x", MaxDiskBytes: 1 << 30}
		mod(&o)
		o.EnsureDefaults()
		if err := o.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	o := Options{Dir: "x"}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	o = Options{Dir: "x", CompactionStyle: "leveled", BlobFiles: true}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("leveled+blob: %v", err)
	}
}

// TestCASRace runs concurrent read-modify-write increments through gets+cas;
// the final count must equal the number of successful cas operations.
func TestCASRace(t *testing.T) {
	o := testOptions(t.TempDir())
	o.WriteConcurrency = 2 // also exercises the write slots
	s := openTest(t, o)
	set(t, s, protocol.CmdSet, "c", "0", 0, 0)
	const workers, tries = 8, 200
	var mu sync.Mutex
	wins := 0
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < tries; i++ {
				var resp protocol.Response
				g := req(protocol.CmdGets, "c")
				if err := s.Handle(context.Background(), g, &resp); err != nil || len(resp.Hits) != 1 {
					t.Error("gets failed")
					return
				}
				var n int
				fmt.Sscan(string(resp.Hits[0].Value), &n)
				c := req(protocol.CmdCas, "c")
				c.CAS, c.Value = resp.Hits[0].CAS, []byte(fmt.Sprint(n+1))
				resp.Reset()
				if err := s.Handle(context.Background(), c, &resp); err != nil {
					t.Error(err)
					return
				}
				if resp.Status == protocol.StatusOK {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	h := get(t, s, "c")
	if string(h.Value) != fmt.Sprint(wins) || wins == 0 {
		t.Fatalf("value %q, wins %d", h.Value, wins)
	}
}

// countRecords counts the raw records in all shards, visible or not.
func countRecords(s *Store) int {
	n := 0
	ro := grocksdb.NewDefaultReadOptions()
	defer ro.Destroy()
	for _, sh := range s.shards {
		it := sh.db.NewIterator(ro)
		for it.SeekToFirst(); it.Valid(); it.Next() {
			n++
		}
		it.Close()
	}
	return n
}

func TestCompactionFilterDropsExpired(t *testing.T) {
	o := testOptions(t.TempDir())
	o.CompactionStyle, o.MaxDiskBytes = CompactionLeveled, 0
	s := openTest(t, o)
	for i := 0; i < 50; i++ {
		set(t, s, protocol.CmdSet, fmt.Sprint("short", i), "v", 0, 1)
		set(t, s, protocol.CmdSet, fmt.Sprint("long", i), "v", 0, 0)
	}
	set(t, s, protocol.CmdSet, "flushed", "v", 0, 0)
	if err := s.FlushMemtables(); err != nil {
		t.Fatal(err)
	}
	// short49, set last, expires last (the sets may straddle a second).
	eventually(t, 3*time.Second, "items to expire", func() bool { return get(t, s, "short49") == nil })
	if n := countRecords(s); n != 101 {
		t.Fatalf("%d records before compaction", n)
	}
	if err := s.CompactAll(); err != nil {
		t.Fatal(err)
	}
	if n := countRecords(s); n != 51 {
		t.Fatalf("%d records after compaction, want 51", n)
	}
	wantValue(t, s, "long7", "v")
}

// TestDiskBudget writes far more than the budget and checks that the disk
// use stays near it, that the newest data is there and the oldest gone.
func TestDiskBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 48 MiB")
	}
	o := testOptions(t.TempDir())
	o.MaxDiskBytes = 16 << 20
	o.Compression = "none"
	s := openTest(t, o)
	val := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB
	const n = 48 << 10                                  // 48 MiB of values
	r := req(protocol.CmdSet, "")
	var peak int64
	for i := 0; i < n; i++ {
		r.Keys[0] = []byte(fmt.Sprintf("key-%06d", i))
		r.Value = val
		var resp protocol.Response
		if err := s.Handle(context.Background(), r, &resp); err != nil {
			t.Fatal(err)
		}
		if i%4096 == 0 {
			peak = max(peak, s.DiskBytes())
		}
	}
	s.FlushMemtables()
	eventually(t, 10*time.Second, "disk use within budget", func() bool {
		return s.DiskBytes() <= o.MaxDiskBytes
	})
	t.Logf("peak disk use while writing %d, budget %d", peak, o.MaxDiskBytes)
	// LOG files and a file being written may overshoot briefly; the
	// steady state must not.
	if peak > o.MaxDiskBytes*5/4 {
		t.Errorf("peak disk use %d, budget %d", peak, o.MaxDiskBytes)
	}
	wantMiss(t, s, "key-000000")
	wantValue(t, s, fmt.Sprintf("key-%06d", n-1), string(val))
}

func TestShardStats(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	for i := 0; i < 100; i++ {
		set(t, s, protocol.CmdSet, fmt.Sprint("k", i), "v", 0, 0)
	}
	if err := s.FlushMemtables(); err != nil {
		t.Fatal(err)
	}
	var keys, l0 uint64
	for _, st := range s.ShardStats() {
		keys += st.Keys
		l0 += st.L0Files
		if st.DiskBytes <= 0 || st.LiveDataBytes == 0 {
			t.Fatalf("shard stats %+v", st)
		}
	}
	if keys != 100 || l0 != 2 {
		t.Fatalf("keys %d, l0 files %d", keys, l0)
	}
	resp := do(t, s, req(protocol.CmdStats))
	names := map[string]bool{}
	for _, st := range resp.Stats {
		names[st.Name] = true
	}
	for _, n := range []string{"pid", "uptime", "curr_items", "cmd_get", "shard_1_l0_files", "shard_0_pending_compaction_bytes", "shard_0_disk_bytes", "shard_0_keys"} {
		if !names[n] {
			t.Errorf("stats lack %s", n)
		}
	}
	r := req(protocol.CmdStats)
	r.Args = []byte("nonsense")
	wantStatus(t, do(t, s, r), protocol.StatusNotFound)
	r.Args = []byte("reset")
	wantStatus(t, do(t, s, r), protocol.StatusOK)
	if s.stats.cmdSet.Load() != 0 {
		t.Fatal("stats reset left cmd_set")
	}
}

func TestSyncWrites(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	o.SyncWrites = true
	s := openTest(t, o)
	for i := 0; i < 20; i++ {
		wantStatus(t, set(t, s, protocol.CmdSet, fmt.Sprint("k", i), "v", 0, 0), protocol.StatusOK)
	}
	s.Close()
	s = openTest(t, o)
	wantValue(t, s, "k19", "v")
}

// TestShardStatsAndObserver: every RocksDB call is reported with its
// shard, and the per-shard figures (stall time parsed from dbstats
// included) can be read.
func TestShardStatsAndObserver(t *testing.T) {
	var mu sync.Mutex
	seen := map[ShardOp]map[int]int{}
	o := Options{Dir: t.TempDir(), Shards: 2, MaxDiskBytes: 64 << 20, BlockCacheBytes: 1 << 20,
		ObserveShard: func(shard int, op ShardOp, d time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			if seen[op] == nil {
				seen[op] = map[int]int{}
			}
			seen[op][shard]++
		}}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		k := []byte(fmt.Sprintf("k%d", i))
		s.Handle(ctx, &protocol.Request{Command: protocol.CmdSet, Keys: [][]byte{k}, Value: []byte("v")}, &protocol.Response{})
		s.Handle(ctx, &protocol.Request{Command: protocol.CmdDelete, Keys: [][]byte{k}}, &protocol.Response{})
	}
	mu.Lock()
	for _, op := range []ShardOp{ShardGet, ShardPut, ShardDelete} {
		if len(seen[op]) != 2 {
			t.Errorf("%v seen on shards %v, want both", op, seen[op])
		}
	}
	mu.Unlock()
	st := s.ShardStats()
	if len(st) != 2 || st[0].MemtableBytes == 0 || st[0].WriteStopped {
		t.Fatalf("shard stats %+v", st)
	}
	if db := s.shards[0].db.GetProperty("rocksdb.dbstats"); !strings.Contains(db, "Cumulative stall: 00:00:0.000 H:M:S") {
		t.Errorf("dbstats has no stall line in the parsed format:\n%s", db)
	} else if got := parseStall(db); got != 0 {
		t.Errorf("idle shard stalled %v s", got)
	}
	if got := parseStall("x\nCumulative stall: 01:02:3.500 H:M:S, 0.1 percent\n"); got != 3723.5 {
		t.Errorf("parseStall = %v", got)
	}
}
