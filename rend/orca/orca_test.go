package orca

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/shared/mcclient"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// These tests drive the orchestrator directly (no client codec) against
// real memcached processes. A second memcached stands in for L2: it speaks
// the same meta protocol with CAS and TTL, which is all orca relies on; the
// end-to-end tests in cmd/rend put a real mnemonic there.

const testChunk = 64 // small chunks make every path multi-chunk cheaply

type rig struct {
	t       *testing.T
	l1mc    *mctest.Memcached
	l1, l2  *mcclient.Client
	raw     *mcclient.Client // meta client to L1, to see memcached's TTLs
	regular *Orca
	batch   *Orca
	stats   *Stats
}

// client connects to addr; classic sets ClassicGets, as rend does for L1.
func client(t *testing.T, addr string, classic ...bool) *mcclient.Client {
	c, err := mcclient.New(mcclient.Config{Addr: addr, RequestTimeout: 5 * time.Second, BackoffMax: 50 * time.Millisecond,
		ClassicGets: len(classic) > 0 && classic[0]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newRig(t *testing.T, withL2 bool) *rig {
	r := &rig{t: t, stats: new(Stats)}
	r.l1mc = mctest.Start(t, "-m", "128")
	r.l1 = client(t, r.l1mc.Addr, true)
	r.raw = client(t, r.l1mc.Addr)
	locks := NewLocks(64)
	cfg := Config{Mode: L1Only, L1: r.l1, Locks: locks, Stats: r.stats, ChunkSize: testChunk}
	if withL2 {
		l2mc := mctest.Start(t, "-m", "128", "-I", "32m")
		r.l2 = client(t, l2mc.Addr)
		cfg.Mode, cfg.L2 = L1L2, r.l2
	}
	var err error
	if r.regular, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if withL2 {
		cfg.Mode = L1L2Batch
		if r.batch, err = New(cfg); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

type op struct {
	cmd     protocol.Command
	keys    []string
	value   string
	flags   uint32
	exptime int64
	cas     uint64
	delta   uint64
}

func do(t *testing.T, h protocol.Handler, o op) *protocol.Response {
	t.Helper()
	req := new(protocol.Request)
	req.Command = o.cmd
	for _, k := range o.keys {
		req.AddKey([]byte(k))
	}
	req.Value = []byte(o.value)
	req.Flags = o.flags
	req.Exptime, req.HasExptime = o.exptime, true
	req.CAS = o.cas
	req.Delta = o.delta
	resp := new(protocol.Response)
	if err := h.Handle(context.Background(), req, resp); err != nil {
		t.Fatalf("%v %v: %v", o.cmd, o.keys, err)
	}
	if o, ok := h.(*Orca); ok {
		// L1 fills and put-backs run behind the reply (fillLater,
		// putBackLater); the tests' next step looks at L1, so let them
		// land first.
		o.WaitFills()
	}
	return resp
}

func status(t *testing.T, resp *protocol.Response, want protocol.Status) {
	t.Helper()
	if resp.Status != want {
		t.Fatalf("status %v (%s), want %v", resp.Status, resp.Message, want)
	}
}

func get1(t *testing.T, h protocol.Handler, key string) (protocol.Hit, bool) {
	t.Helper()
	resp := do(t, h, op{cmd: protocol.CmdGets, keys: []string{key}})
	if len(resp.Hits) == 0 {
		return protocol.Hit{}, false
	}
	return resp.Hits[0], true
}

func value(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i*7%26)
	}
	return string(b)
}

// sizes covers inline, the inline/chunked border and chunk boundaries.
var sizes = []int{0, 1, testChunk - 1, testChunk, testChunk + 1, 2*testChunk + 1, 10000}

func TestL1OnlyCommands(t *testing.T) {
	r := newRig(t, false)
	o := r.regular
	for _, n := range sizes {
		k := fmt.Sprintf("k%d", n)
		v := value(n)
		st := do(t, o, op{cmd: protocol.CmdSet, keys: []string{k}, value: v, flags: 42})
		status(t, st, protocol.StatusOK)
		h, ok := get1(t, o, k)
		if !ok || string(h.Value) != v || h.Flags != 42 || h.CAS != st.CAS || h.CAS == 0 {
			t.Fatalf("n=%d: hit %v flags %d cas %d/%d", n, ok, h.Flags, h.CAS, st.CAS)
		}
	}
	// Multi-get in key order with misses mixed in.
	resp := do(t, o, op{cmd: protocol.CmdGet, keys: []string{"k1", "nope", "k10000", "k0"}})
	if len(resp.Hits) != 3 || resp.Hits[0].Index != 0 || resp.Hits[1].Index != 2 || resp.Hits[2].Index != 3 {
		t.Fatalf("multi-get hits %+v", resp.Hits)
	}
	// add/replace.
	status(t, do(t, o, op{cmd: protocol.CmdAdd, keys: []string{"k1"}, value: "x"}), protocol.StatusNotStored)
	status(t, do(t, o, op{cmd: protocol.CmdAdd, keys: []string{"k1"}, value: value(500)}), protocol.StatusNotStored)
	status(t, do(t, o, op{cmd: protocol.CmdReplace, keys: []string{"new"}, value: value(500)}), protocol.StatusNotStored)
	status(t, do(t, o, op{cmd: protocol.CmdAdd, keys: []string{"new"}, value: value(500)}), protocol.StatusOK)
	status(t, do(t, o, op{cmd: protocol.CmdReplace, keys: []string{"new"}, value: "r"}), protocol.StatusOK)
	// cas.
	h, _ := get1(t, o, "new")
	status(t, do(t, o, op{cmd: protocol.CmdCas, keys: []string{"new"}, value: "c", cas: h.CAS + 1}), protocol.StatusExists)
	status(t, do(t, o, op{cmd: protocol.CmdCas, keys: []string{"missing"}, value: "c", cas: 1}), protocol.StatusNotFound)
	status(t, do(t, o, op{cmd: protocol.CmdCas, keys: []string{"new"}, value: "c", cas: h.CAS}), protocol.StatusOK)
	// append/prepend across the chunk boundary.
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"ap"}, value: value(60), flags: 5})
	status(t, do(t, o, op{cmd: protocol.CmdAppend, keys: []string{"ap"}, value: "TAIL"}), protocol.StatusOK)
	status(t, do(t, o, op{cmd: protocol.CmdPrepend, keys: []string{"ap"}, value: "HEAD"}), protocol.StatusOK)
	status(t, do(t, o, op{cmd: protocol.CmdAppend, keys: []string{"none"}, value: "x"}), protocol.StatusNotStored)
	if h, _ := get1(t, o, "ap"); string(h.Value) != "HEAD"+value(60)+"TAIL" || h.Flags != 5 {
		t.Fatalf("append/prepend: %q", h.Value)
	}
	// incr/decr.
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"n"}, value: "10"})
	if r := do(t, o, op{cmd: protocol.CmdIncr, keys: []string{"n"}, delta: 5}); r.Number != 15 {
		t.Fatalf("incr %d", r.Number)
	}
	if r := do(t, o, op{cmd: protocol.CmdDecr, keys: []string{"n"}, delta: 100}); r.Number != 0 {
		t.Fatalf("decr %d", r.Number)
	}
	status(t, do(t, o, op{cmd: protocol.CmdIncr, keys: []string{"ap"}, delta: 1}), protocol.StatusNonNumeric)
	status(t, do(t, o, op{cmd: protocol.CmdIncr, keys: []string{"nn"}, delta: 1}), protocol.StatusNotFound)
	// touch/gat/delete.
	status(t, do(t, o, op{cmd: protocol.CmdTouch, keys: []string{"k10000"}, exptime: 100}), protocol.StatusOK)
	h, _ = get1(t, o, "k10000")
	if left := h.Exptime - time.Now().Unix(); left < 98 || left > 100 {
		t.Fatalf("touch: %d s left", left)
	}
	resp = do(t, o, op{cmd: protocol.CmdGat, keys: []string{"k10000", "k1"}, exptime: 200})
	if len(resp.Hits) != 2 || string(resp.Hits[0].Value) != value(10000) {
		t.Fatalf("gat hits %d", len(resp.Hits))
	}
	if h, _ := get1(t, o, "k10000"); h.Exptime-time.Now().Unix() < 198 || string(h.Value) != value(10000) {
		t.Fatalf("gat did not set the expiry")
	}
	status(t, do(t, o, op{cmd: protocol.CmdTouch, keys: []string{"nope"}, exptime: 1}), protocol.StatusNotFound)
	status(t, do(t, o, op{cmd: protocol.CmdDelete, keys: []string{"k10000"}}), protocol.StatusOK)
	status(t, do(t, o, op{cmd: protocol.CmdDelete, keys: []string{"k10000"}}), protocol.StatusNotFound)
	// Negative exptime: stored as expired.
	status(t, do(t, o, op{cmd: protocol.CmdSet, keys: []string{"k1"}, value: "x", exptime: -1}), protocol.StatusOK)
	if _, ok := get1(t, o, "k1"); ok {
		t.Fatal("expired set still visible")
	}
	// flush_all.
	status(t, do(t, o, op{cmd: protocol.CmdFlushAll}), protocol.StatusOK)
	if _, ok := get1(t, o, "k0"); ok {
		t.Fatal("flush_all left items")
	}
}

func TestLargeValuesAndLongKeys(t *testing.T) {
	r := newRig(t, false)
	o, err := New(Config{Mode: L1Only, L1: r.l1}) // default chunk size
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("L", 250)
	for _, n := range []int{0, 1, chunk.DefaultChunkSize - 1, chunk.DefaultChunkSize, chunk.DefaultChunkSize + 1, 1<<20 + 1, 20 << 20} {
		v := value(n)
		status(t, do(t, o, op{cmd: protocol.CmdSet, keys: []string{long}, value: v}), protocol.StatusOK)
		h, ok := get1(t, o, long)
		if !ok || !bytes.Equal(h.Value, []byte(v)) {
			t.Fatalf("n=%d: hit=%v len=%d", n, ok, len(h.Value))
		}
	}
}

// chunkKeys reads key's header from memcached directly and derives its chunk keys.
func chunkKeys(t *testing.T, l1 *mcclient.Client, key string) []string {
	t.Helper()
	resp := do(t, l1, op{cmd: protocol.CmdGet, keys: []string{key}})
	if len(resp.Hits) == 0 {
		return nil
	}
	h, err := chunk.Decode(resp.Hits[0].Value, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	base := chunk.KeyBase([]byte(key), &h.Token)
	var out []string
	for i := 0; i < h.Chunks; i++ {
		out = append(out, string(chunk.AppendChunkKey(nil, &base, i)))
	}
	return out
}

func TestChunkDeletedBehindBackIsMiss(t *testing.T) {
	r := newRig(t, false)
	o := r.regular
	v := value(1000)
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"big"}, value: v})
	ck := chunkKeys(t, r.l1, "big")
	if len(ck) < 3 {
		t.Fatalf("%d chunks", len(ck))
	}
	status(t, do(t, r.l1, op{cmd: protocol.CmdDelete, keys: []string{ck[len(ck)/2]}}), protocol.StatusOK)
	before := r.stats.ChunkMisses.Load()
	if _, ok := get1(t, o, "big"); ok {
		t.Fatal("item with a lost chunk was a hit")
	}
	if r.stats.ChunkMisses.Load() != before+1 {
		t.Fatal("chunk miss not counted")
	}
	// The broken header was removed, so an add works again.
	status(t, do(t, o, op{cmd: protocol.CmdAdd, keys: []string{"big"}, value: v}), protocol.StatusOK)
	// An item some other client stored under a key: not a header, a miss.
	do(t, r.l1, op{cmd: protocol.CmdSet, keys: []string{"foreign"}, value: "plain memcached value"})
	if _, ok := get1(t, o, "foreign"); ok || r.stats.BadHeaders.Load() != 1 {
		t.Fatalf("foreign item: bad headers %d", r.stats.BadHeaders.Load())
	}
	// A chunk overwritten with foreign data: miss too.
	ck = chunkKeys(t, r.l1, "big")
	do(t, r.l1, op{cmd: protocol.CmdSet, keys: []string{ck[0]}, value: strings.Repeat("z", 16+testChunk)})
	if _, ok := get1(t, o, "big"); ok {
		t.Fatal("item with a foreign chunk was a hit")
	}
}

func TestL1L2FillAndTTL(t *testing.T) {
	r := newRig(t, true)
	o := r.regular
	v := value(300)
	// Write through the regular port: both layers, L1 carrying L2's version.
	st := do(t, o, op{cmd: protocol.CmdSet, keys: []string{"a"}, value: v, flags: 9, exptime: 1000})
	status(t, st, protocol.StatusOK)
	l2hit, ok := get1(t, r.l2, "a")
	if !ok || l2hit.CAS != st.CAS {
		t.Fatalf("L2 version %d, client saw %d", l2hit.CAS, st.CAS)
	}
	if h, ok := get1(t, o, "a"); !ok || h.CAS != st.CAS || string(h.Value) != v || h.Flags != 9 {
		t.Fatalf("L1 hit cas %d want %d", h.CAS, st.CAS)
	}
	// Drop L1's copy: the next get comes from L2 and fills L1 with the
	// remaining TTL.
	do(t, r.l1, op{cmd: protocol.CmdDelete, keys: []string{"a"}})
	do(t, r.l2, op{cmd: protocol.CmdTouch, keys: []string{"b"}})
	if h, ok := get1(t, o, "a"); !ok || string(h.Value) != v || h.CAS != st.CAS {
		t.Fatal("L2 hit not served")
	}
	if r.stats.L1Fills.Load() != 1 {
		t.Fatalf("fills %d", r.stats.L1Fills.Load())
	}
	raw := do(t, r.raw, op{cmd: protocol.CmdGet, keys: []string{"a"}})
	if len(raw.Hits) != 1 {
		t.Fatal("fill not in L1")
	}
	h, _ := chunk.Decode(raw.Hits[0].Value, 1<<20)
	if left := raw.Hits[0].Exptime - time.Now().Unix(); left < 995 || left > 1003 || h.Version != st.CAS {
		t.Fatalf("filled TTL %d version %d", left, h.Version)
	}
	// Multi-get: L1 hits, L2 hits, misses, in order.
	do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{"only2"}, value: "two"})
	resp := do(t, o, op{cmd: protocol.CmdGet, keys: []string{"none", "only2", "a"}})
	if len(resp.Hits) != 2 || resp.Hits[0].Index != 1 || resp.Hits[1].Index != 2 || string(resp.Hits[0].Value) != "two" {
		t.Fatalf("multi-get %+v", resp.Hits)
	}
	// incr through L2, reflected in L1.
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"n"}, value: "1"})
	if ir := do(t, o, op{cmd: protocol.CmdIncr, keys: []string{"n"}, delta: 41}); ir.Number != 42 {
		t.Fatalf("incr %d", ir.Number)
	}
	if h, _ := get1(t, r.l1, "n"); true {
		hd, err := chunk.Decode(h.Value, 1<<20)
		if err != nil || string(hd.Inline) != "42" {
			t.Fatalf("L1 after incr: %q %v", hd.Inline, err)
		}
	}
	// delete removes from both.
	status(t, do(t, o, op{cmd: protocol.CmdDelete, keys: []string{"a"}}), protocol.StatusOK)
	if _, ok := get1(t, r.l1, "a"); ok {
		t.Fatal("delete left L1")
	}
}

func TestBatchPort(t *testing.T) {
	r := newRig(t, true)
	b := r.batch
	// Cold key through the batch port: L2 only.
	status(t, do(t, b, op{cmd: protocol.CmdSet, keys: []string{"cold"}, value: value(500)}), protocol.StatusOK)
	if _, ok := get1(t, r.l1, "cold"); ok {
		t.Fatal("batch write of a cold key reached L1")
	}
	// Batch reads never fill.
	if _, ok := get1(t, b, "cold"); !ok {
		t.Fatal("batch get missed")
	}
	if _, ok := get1(t, r.l1, "cold"); ok {
		t.Fatal("batch get filled L1")
	}
	// Hot key (in L1 via the regular port): the batch write updates it.
	do(t, r.regular, op{cmd: protocol.CmdSet, keys: []string{"hot"}, value: "old"})
	st := do(t, b, op{cmd: protocol.CmdSet, keys: []string{"hot"}, value: value(500)})
	if h, ok := get1(t, r.regular, "hot"); !ok || string(h.Value) != value(500) || h.CAS != st.CAS {
		t.Fatal("batch write did not update the hot key")
	}
	if r.stats.L2Hits.Load() != 1 {
		t.Fatalf("hot key read went to L2 (%d L2 hits)", r.stats.L2Hits.Load())
	}
	// gat on the batch port gives L1's copy the new TTL.
	do(t, b, op{cmd: protocol.CmdGat, keys: []string{"hot"}, exptime: 300})
	raw := do(t, r.raw, op{cmd: protocol.CmdGet, keys: []string{"hot"}})
	if len(raw.Hits) != 1 || raw.Hits[0].Exptime == 0 {
		t.Fatal("batch gat left L1 immortal")
	}
}

func TestConcurrentWritersConverge(t *testing.T) {
	r := newRig(t, true)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				o := r.regular
				if (w+i)%3 == 0 {
					o = r.batch
				}
				v := fmt.Sprintf("w%d-%d-%s", w, i, value(i*10))
				do(t, o, op{cmd: protocol.CmdSet, keys: []string{"hotkey"}, value: v})
				if i%5 == 0 {
					do(t, r.regular, op{cmd: protocol.CmdDelete, keys: []string{"hotkey"}})
				}
				get1(t, r.regular, "hotkey")
			}
		}()
	}
	wg.Wait()
	h2, ok2 := get1(t, r.l2, "hotkey")
	h1, ok1 := get1(t, r.regular, "hotkey")
	raw := do(t, r.raw, op{cmd: protocol.CmdGet, keys: []string{"hotkey"}})
	if ok2 != ok1 || (ok1 && (string(h1.Value) != string(h2.Value) || h1.CAS != h2.CAS)) {
		t.Fatalf("L1 %v %q != L2 %v %q", ok1, h1.Value, ok2, h2.Value)
	}
	if len(raw.Hits) == 1 {
		hd, _ := chunk.Decode(raw.Hits[0].Value, 1<<20)
		if hd.Version != h2.CAS {
			t.Fatalf("L1 version %d, L2 %d", hd.Version, h2.CAS)
		}
	}
}

// counting wraps a Backend and counts pipelined calls (round trips).
type counting struct {
	Backend
	calls atomic.Int64
}

func (c *counting) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	c.calls.Add(1)
	return c.Backend.Handle(ctx, req, resp)
}

func (c *counting) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	c.calls.Add(1)
	return c.Backend.Do(ctx, reqs, resps)
}

// TestMultiGetRoundTrips: a multi-get costs one L1 round trip for the
// headers and one for all chunks, however many keys and chunks; L2 misses
// cost one L2 round trip.
func TestMultiGetRoundTrips(t *testing.T) {
	r := newRig(t, true)
	l1 := &counting{Backend: r.l1}
	l2 := &counting{Backend: r.l2}
	o, err := New(Config{Mode: L1L2, L1: l1, L2: l2, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := 0; i < 100; i++ {
		k := fmt.Sprintf("rt%d", i)
		keys = append(keys, k)
		do(t, o, op{cmd: protocol.CmdSet, keys: []string{k}, value: value(i * 13)})
	}
	l1.calls.Store(0)
	l2.calls.Store(0)
	resp := do(t, o, op{cmd: protocol.CmdGet, keys: keys})
	if len(resp.Hits) != 100 || l1.calls.Load() != 2 || l2.calls.Load() != 0 {
		t.Fatalf("%d hits in %d L1 and %d L2 round trips", len(resp.Hits), l1.calls.Load(), l2.calls.Load())
	}
	// All inline: one round trip.
	l1.calls.Store(0)
	do(t, o, op{cmd: protocol.CmdGet, keys: keys[:3]})
	if l1.calls.Load() != 1 {
		t.Fatalf("inline multi-get: %d L1 round trips", l1.calls.Load())
	}
	// Misses go to L2 in one batch.
	l1.calls.Store(0)
	do(t, o, op{cmd: protocol.CmdGet, keys: []string{"m1", "m2", "m3", "rt1"}})
	if l2.calls.Load() != 1 || l1.calls.Load() != 1 {
		t.Fatalf("misses: %d L2, %d L1 round trips", l2.calls.Load(), l1.calls.Load())
	}
	// A cold multi-get: all 100 keys miss L1, one L2 read, and the fills
	// of all 100 L2 hits are one L1 write (plus one header read, since
	// these adds are chunked: StoreMany).
	for _, k := range keys {
		do(t, r.l1, op{cmd: protocol.CmdDelete, keys: []string{k}})
	}
	fills := o.Stats().L1Fills.Load()
	l1.calls.Store(0)
	l2.calls.Store(0)
	resp = do(t, o, op{cmd: protocol.CmdGet, keys: keys}) // do waits for the fills
	if len(resp.Hits) != 100 || l2.calls.Load() != 1 || l1.calls.Load() != 1+2 {
		t.Fatalf("cold multi-get: %d hits, %d L2 and %d L1 round trips (headers, fill)", len(resp.Hits), l2.calls.Load(), l1.calls.Load())
	}
	if n := o.Stats().L1Fills.Load() - fills; n != 100 {
		t.Fatalf("%d fills, want 100", n)
	}
	l1.calls.Store(0)
	resp = do(t, o, op{cmd: protocol.CmdGet, keys: keys})
	if len(resp.Hits) != 100 || l1.calls.Load() != 2 {
		t.Fatalf("after the fills: %d hits in %d L1 round trips", len(resp.Hits), l1.calls.Load())
	}
	for i, h := range resp.Hits {
		if string(h.Value) != value(i*13) {
			t.Fatalf("%s: filled value differs", keys[i])
		}
	}
	// A 100-key gat: one L1 take-out batch (with the copies' state), one
	// L2 burst of touches for the copies only L1 saw fetched (all of them,
	// read just above: see takeOutKeysKeepingFetches), one L2 gat, one
	// put-back batch; every item back in L1 with its new expiry.
	l1.calls.Store(0)
	l2.calls.Store(0)
	resp = do(t, o, op{cmd: protocol.CmdGat, keys: keys, exptime: 3600})
	if len(resp.Hits) != 100 || l1.calls.Load() != 2 || l2.calls.Load() != 2 {
		t.Fatalf("gat: %d hits in %d L1 and %d L2 round trips", len(resp.Hits), l1.calls.Load(), l2.calls.Load())
	}
	l1.calls.Store(0)
	l2.calls.Store(0)
	resp = do(t, o, op{cmd: protocol.CmdGet, keys: keys})
	if len(resp.Hits) != 100 || l2.calls.Load() != 0 || resp.Hits[1].Exptime < time.Now().Unix()+3000 {
		t.Fatalf("after the gat: %d hits, %d L2 round trips, expiry %d", len(resp.Hits), l2.calls.Load(), resp.Hits[1].Exptime)
	}
}

// faulty fails every call while down is set, like an L1 that stopped
// answering without restarting (so it keeps its old items).
type faulty struct {
	Backend
	down atomic.Bool
}

func (f *faulty) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if f.down.Load() {
		return fmt.Errorf("injected L1 failure")
	}
	return f.Backend.Handle(ctx, req, resp)
}

func (f *faulty) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	if f.down.Load() {
		return fmt.Errorf("injected L1 failure")
	}
	return f.Backend.Do(ctx, reqs, resps)
}

// TestFailedInvalidationNeverServesStale: a write whose L1 update and
// invalidation both fail leaves the old copy in L1; it must not be served,
// and Drain removes it once L1 answers again.
func TestFailedInvalidationNeverServesStale(t *testing.T) {
	r := newRig(t, true)
	l1 := &faulty{Backend: r.l1}
	pending := new(Pending)
	o, err := New(Config{Mode: L1L2, L1: l1, L2: r.l2, ChunkSize: testChunk, Pending: pending})
	if err != nil {
		t.Fatal(err)
	}
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "old"})
	l1.down.Store(true)
	status(t, do(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "new"}), protocol.StatusOK)
	l1.down.Store(false)
	if _, ok := get1(t, r.l1, "k"); !ok {
		t.Fatal("test setup: the old copy should still be in L1")
	}
	if h, ok := get1(t, o, "k"); !ok || string(h.Value) != "new" {
		t.Fatalf("served %q", h.Value)
	}
	if pending.Len() != 1 {
		t.Fatalf("pending %d", pending.Len())
	}
	if left := pending.Drain(context.Background(), l1); left != 0 {
		t.Fatalf("drain left %d", left)
	}
	if h, ok := get1(t, o, "k"); !ok || string(h.Value) != "new" {
		t.Fatal("after drain")
	}
	if h, ok := get1(t, o, "k"); !ok || string(h.Value) != "new" || o.Stats().L1Hits.Load() == 0 {
		t.Fatal("not refilled after drain")
	}

	// Overflow: past Max keys the whole of L1 is suspect until a flush.
	pending.Max = 2
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"other"}, value: "x"})
	l1.down.Store(true)
	for _, k := range []string{"a", "b", "c"} {
		do(t, o, op{cmd: protocol.CmdSet, keys: []string{k}, value: k})
	}
	l1.down.Store(false)
	if pending.Len() != -1 {
		t.Fatalf("pending %d, want flush", pending.Len())
	}
	before := o.Stats().L2Hits.Load()
	if h, ok := get1(t, o, "other"); !ok || string(h.Value) != "x" || o.Stats().L2Hits.Load() != before+1 {
		t.Fatal("L1 hit served while a flush is due")
	}
	if left := pending.Drain(context.Background(), l1); left != 0 {
		t.Fatalf("drain left %d", left)
	}
	if _, ok := get1(t, r.l1, "other"); ok {
		t.Fatal("L1 not flushed")
	}
}

// TestAmbiguousL2WriteHoldsKey: a write whose L2 call fails may still be
// applied by L2 later, so the key is read from L2 and never filled into L1
// until probes show L2 answering again for Settle.
func TestAmbiguousL2WriteHoldsKey(t *testing.T) {
	r := newRig(t, true)
	l2 := &faulty{Backend: r.l2}
	pending := &Pending{Settle: time.Millisecond}
	o, err := New(Config{Mode: L1L2, L1: r.l1, L2: l2, ChunkSize: testChunk, Pending: pending})
	if err != nil {
		t.Fatal(err)
	}
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "old"})
	get1(t, o, "k")
	l2.down.Store(true)
	resp := new(protocol.Response)
	req := &protocol.Request{Command: protocol.CmdSet, Value: []byte("new")}
	req.AddKey([]byte("k"))
	if err := o.Handle(context.Background(), req, resp); err == nil || resp.Status != protocol.StatusServerError {
		t.Fatalf("set with L2 failing: %v %v", err, resp.Status)
	}
	if _, ok := get1(t, r.l1, "k"); ok {
		t.Fatal("L1 kept its copy through an ambiguous write")
	}
	l2.down.Store(false)
	// L2 "applied" the write after all (behind rend's back).
	do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "new"})
	if pending.Len() != 1 {
		t.Fatalf("pending %d", pending.Len())
	}
	for i := 0; i < 2; i++ {
		if h, ok := get1(t, o, "k"); !ok || string(h.Value) != "new" {
			t.Fatalf("held key served %q", h.Value)
		}
	}
	if _, ok := get1(t, r.l1, "k"); ok {
		t.Fatal("held key filled into L1")
	}
	// Probes: the first success starts the clock, a later one releases.
	pending.Probe(context.Background(), l2)
	deadline := time.Now().Add(5 * time.Second)
	for pending.Probe(context.Background(), l2) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("held key never released")
		}
	}
	get1(t, o, "k")
	if h, ok := get1(t, r.l1, "k"); !ok || !strings.Contains(string(h.Value), "new") {
		t.Fatal("released key not filled")
	}
}

// gate blocks L1 adds (fills) until open is closed, and counts them.
type gate struct {
	Backend
	open chan struct{}
	adds atomic.Int32
}

func (g *gate) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	if reqs[len(reqs)-1].Command == protocol.CmdAdd {
		g.adds.Add(1)
		<-g.open
	}
	return g.Backend.Do(ctx, reqs, resps)
}

// gatedOrca is an L1+L2 orchestrator over the rig's memcacheds whose L1
// adds (the fills) wait at g until the test closes g.open.
func gatedOrca(t *testing.T) (*rig, *gate, *Orca) {
	t.Helper()
	r := newRig(t, true)
	g := &gate{Backend: r.l1, open: make(chan struct{})}
	o, err := New(Config{Mode: L1L2, L1: g, L2: r.l2, Locks: NewLocks(64), ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	return r, g, o
}

// TestFillAfterReply: a get that misses L1 and hits L2 is answered before
// its L1 fill is done (issue 13 item 3), and the fill still holds the
// key's stripe: a write of the key waits for it and then wins, so L1 ends
// with the written value, not the filled one.
func TestFillAfterReply(t *testing.T) {
	r, g, o := gatedOrca(t)
	do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "from-l2"})
	resp := new(protocol.Response)
	req := new(protocol.Request)
	req.Command = protocol.CmdGet
	req.AddKey([]byte("k"))
	if err := o.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) != 1 || string(resp.Hits[0].Value) != "from-l2" {
		t.Fatalf("get: %v %+v", err, resp.Hits)
	}
	// Answered before the fill's add (which the gate holds) could finish.
	mctest.Eventually(t, 5*time.Second, "the fill to start", func() bool { return g.adds.Load() == 1 })
	wrote := make(chan *protocol.Response)
	go func() {
		set := new(protocol.Request)
		set.Command = protocol.CmdSet
		set.AddKey([]byte("k"))
		set.Value = []byte("written")
		resp := new(protocol.Response)
		o.Handle(context.Background(), set, resp)
		wrote <- resp
	}()
	select {
	case <-wrote:
		t.Fatal("write did not wait for the fill holding the key's stripe")
	case <-time.After(50 * time.Millisecond):
		// Not a synchronisation: the write must still be blocked after
		// any amount of waiting; 50 ms only bounds how long we look.
	}
	close(g.open)
	if st := <-wrote; st.Status != protocol.StatusOK {
		t.Fatalf("set: %v", st.Status)
	}
	o.WaitFills()
	if h, ok := get1(t, o, "k"); !ok || string(h.Value) != "written" {
		t.Fatalf("after the fill and the write: %q %v", h.Value, ok)
	}
	if raw, ok := get1(t, r.l1, "k"); !ok {
		t.Fatal("L1 has no copy")
	} else if hd, err := chunk.Decode(raw.Value, 1<<20); err != nil || string(hd.Inline) != "written" {
		t.Fatalf("L1 holds %q (%v), want the written value", hd.Inline, err)
	}
}

// TestFillsShareOneWrite: the fills of misses answered while an earlier
// fill's L1 write is out wait in the fill queue and then go to L1
// together, in one write, each still holding its key's stripe until then.
func TestFillsShareOneWrite(t *testing.T) {
	r, g, o := gatedOrca(t)
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	for _, k := range keys {
		do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{k}, value: "v-" + k})
	}
	for i, k := range keys {
		req := &protocol.Request{Command: protocol.CmdGet}
		req.AddKey([]byte(k))
		resp := new(protocol.Response)
		if err := o.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) != 1 || string(resp.Hits[0].Value) != "v-"+k {
			t.Fatalf("get %s: %v %+v", k, err, resp.Hits)
		}
		if i == 0 {
			// Its fill is out (held at the gate): the others queue.
			mctest.Eventually(t, 5*time.Second, "the first fill's write", func() bool { return g.adds.Load() == 1 })
		}
	}
	// A write of a queued key waits for its fill.
	wrote := make(chan struct{})
	go func() {
		set := &protocol.Request{Command: protocol.CmdSet, Value: []byte("written")}
		set.AddKey([]byte("k3"))
		o.Handle(context.Background(), set, new(protocol.Response))
		close(wrote)
	}()
	select {
	case <-wrote:
		t.Fatal("a write of k3 did not wait for its queued fill")
	case <-time.After(50 * time.Millisecond): // only bounds how long we look
	}
	close(g.open)
	o.WaitFills()
	if b, a := o.Stats().L1FillBatches.Load(), g.adds.Load(); b != 2 || a != 2 {
		t.Errorf("%d fill batches in %d L1 writes, want 2 and 2 (the first fill, then the five queued behind it)", b, a)
	}
	if f := o.Stats().L1Fills.Load(); f != uint64(len(keys)) {
		t.Errorf("%d fills, want %d", f, len(keys))
	}
	<-wrote
	for _, k := range keys {
		if _, ok := get1(t, r.l1, k); !ok && k != "k3" {
			t.Errorf("L1 has no copy of %s", k)
		}
	}
	if h, ok := get1(t, o, "k3"); !ok || string(h.Value) != "written" {
		t.Errorf("k3 after the fill and the write: %q %v", h.Value, ok)
	}
}

// TestFlushWaitsForFills: a flush_all that arrives while a get's fill is
// still on its way to L1 (behind the get's reply) waits for it and
// removes it: the client's next get misses. Without that the fill landed
// after the flush and served the flushed value.
func TestFlushWaitsForFills(t *testing.T) {
	r, g, o := gatedOrca(t)
	do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "flushed"})
	getBehind(t, o, "k", "flushed")
	mctest.Eventually(t, 5*time.Second, "the fill's write", func() bool { return g.adds.Load() == 1 })
	flushed := make(chan error, 1)
	go func() {
		resp := new(protocol.Response)
		err := o.Handle(context.Background(), &protocol.Request{Command: protocol.CmdFlushAll}, resp)
		if err == nil && resp.Status != protocol.StatusOK {
			err = fmt.Errorf("flush_all: status %v", resp.Status)
		}
		flushed <- err
	}()
	select {
	case err := <-flushed:
		t.Fatalf("flush_all returned (%v) while a fill of a flushed value was on its way to L1", err)
	case <-time.After(50 * time.Millisecond): // only bounds how long we look
	}
	close(g.open)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if h, ok := get1(t, o, "k"); ok {
		t.Errorf("get after flush_all: %q", h.Value)
	}
	if h, ok := get1(t, r.l1, "k"); ok {
		t.Errorf("L1 after flush_all: %q", h.Value)
	}
}

// TestDelayedFlushFollowUp: a get between a delayed flush_all and its
// moment reads the value from L2; its fill lands in L1 after the moment
// (when L1's own flush is past, so L1 keeps it). rend's follow-up L1
// flush, once the moment passed, removes it.
func TestDelayedFlushFollowUp(t *testing.T) {
	r, g, o := gatedOrca(t)
	do(t, r.l2, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "flushed"})
	resp := new(protocol.Response)
	flush := &protocol.Request{Command: protocol.CmdFlushAll, Exptime: 2, HasExptime: true}
	if err := o.Handle(context.Background(), flush, resp); err != nil || resp.Status != protocol.StatusOK {
		t.Fatalf("flush_all 2: %v %v", err, resp.Status)
	}
	getBehind(t, o, "k", "flushed") // before the moment: L2 still has it
	mctest.Eventually(t, 5*time.Second, "the fill's write", func() bool { return g.adds.Load() == 1 })
	// Past the moment in both layers, then the fill lands in L1.
	mctest.Eventually(t, 10*time.Second, "L2 to apply the delayed flush", func() bool {
		_, ok := get1(t, r.l2, "k")
		return !ok
	})
	time.Sleep(1100 * time.Millisecond) // memcached's clock ticks in seconds
	close(g.open)
	o.WaitFills()
	mctest.Eventually(t, 10*time.Second, "the follow-up L1 flush", func() bool {
		_, ok := get1(t, o, "k")
		return !ok
	})
}

// getBehind gets key through o, which misses L1 and answers want from L2,
// without waiting for the fill behind the reply (get1 does).
func getBehind(t *testing.T, o *Orca, key, want string) {
	t.Helper()
	req := &protocol.Request{Command: protocol.CmdGet}
	req.AddKey([]byte(key))
	resp := new(protocol.Response)
	if err := o.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) != 1 || string(resp.Hits[0].Value) != want {
		t.Fatalf("get %s: %v %+v", key, err, resp.Hits)
	}
}
