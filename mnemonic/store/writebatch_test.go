package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// runOf builds a HandleSets/HandleGets call's arguments.
func runOf(reqs ...*protocol.Request) ([]*protocol.Request, []*protocol.Response, []error) {
	resps := make([]*protocol.Response, len(reqs))
	for i := range resps {
		resps[i] = new(protocol.Response)
	}
	return reqs, resps, make([]error, len(reqs))
}

func setReq(key, val string, flags uint32) *protocol.Request {
	r := req(protocol.CmdSet, key)
	r.Value, r.Flags = []byte(val), flags
	return r
}

// A run of sets answers and stores what the same sets one at a time would:
// request order kept (the later set of a key wins and has the larger CAS),
// a cas in the middle sees the sets before it, bad keys and oversized
// values answered as Handle answers them.
func TestHandleSetsOrder(t *testing.T) {
	o := testOptions(t.TempDir())
	o.MaxItemSize = 100
	s := openTest(t, o)
	set(t, s, protocol.CmdSet, "big", "old", 0, 0)
	casReq := req(protocol.CmdCas, "a")
	casReq.Value = []byte("cas-lost")
	casReq.CAS = 1 // stale: a was just rewritten in the run
	reqs, resps, errs := runOf(
		setReq("a", "1", 1), setReq("b", "2", 2), setReq("a", "3", 3),
		casReq,
		setReq("", "x", 0), setReq("big", string(make([]byte, 200)), 0),
		setReq("c", "4", 4), setReq("a", "5", 5),
	)
	s.HandleSets(context.Background(), reqs, resps, errs)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	for _, i := range []int{0, 1, 2, 6, 7} {
		wantStatus(t, resps[i], protocol.StatusOK)
	}
	wantStatus(t, resps[3], protocol.StatusExists)
	if resps[4].Status != protocol.StatusClientError || resps[5].Status == protocol.StatusOK {
		t.Fatalf("bad key %v, too large %v", resps[4].Status, resps[5].Status)
	}
	if resps[0].CAS >= resps[2].CAS || resps[2].CAS >= resps[7].CAS {
		t.Fatalf("CAS not in request order: %d %d %d", resps[0].CAS, resps[2].CAS, resps[7].CAS)
	}
	if h := wantValue(t, s, "a", "5"); h.Flags != 5 || h.CAS != resps[7].CAS {
		t.Fatalf("a: flags %d cas %d, want 5 %d", h.Flags, h.CAS, resps[7].CAS)
	}
	wantValue(t, s, "b", "2")
	wantValue(t, s, "c", "4")
	if get(t, s, "big") != nil {
		t.Fatal("a set too large left the old value (memcached drops it)")
	}
}

// Runs over overlapping keys in different orders (their stripes taken in
// ascending order) do not deadlock, and concurrent single writes (incr)
// lose nothing: the counters end at the number of increments made.
func TestHandleSetsConcurrent(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	const keys, runs, workers = 20, 50, 4
	for k := range keys {
		set(t, s, protocol.CmdSet, fmt.Sprint("n", k), "0", 0, 0)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range runs {
				var rs []*protocol.Request
				for _, k := range rng.Perm(keys)[:10] {
					rs = append(rs, setReq(fmt.Sprint("s", k), fmt.Sprint(w), 0))
				}
				reqs, resps, errs := runOf(rs...)
				s.HandleSets(context.Background(), reqs, resps, errs)
				for i := range errs {
					if errs[i] != nil || resps[i].Status != protocol.StatusOK {
						t.Errorf("set: %v %v", errs[i], resps[i].Status)
						return
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := range runs {
				r := req(protocol.CmdIncr, fmt.Sprint("n", i%keys))
				r.Delta = 1
				var resp protocol.Response
				if err := s.Handle(context.Background(), r, &resp); err != nil {
					t.Error(err)
					return
				}
				if resp.Status != protocol.StatusOK {
					t.Errorf("incr: %v", resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for k := range keys {
		h := get(t, s, fmt.Sprint("n", k))
		if h == nil {
			continue
		}
		var n int
		fmt.Sscan(string(h.Value), &n)
		total += n
	}
	if total != workers*runs {
		t.Fatalf("increments stored %d, made %d", total, workers*runs)
	}
}

// HandleGets answers each request as Handle does (mg flags, misses, bad
// keys), with one lookup for the whole run.
func TestHandleGetsMatchesHandle(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	for i := range 10 {
		set(t, s, protocol.CmdSet, fmt.Sprint("k", i), fmt.Sprint("v", i), uint32(i), 0)
	}
	mk := func() []*protocol.Request {
		mg := req(protocol.CmdGet, "k3")
		mg.Mods.Meta = true
		return []*protocol.Request{req(protocol.CmdGet, "k1"), req(protocol.CmdGets, "k2", "nope", "k2"), mg,
			req(protocol.CmdGet, string(make([]byte, 300))), req(protocol.CmdGet, "k9", "k0")}
	}
	reqs, resps, errs := runOf(mk()...)
	s.HandleGets(context.Background(), reqs, resps, errs)
	for i, r := range mk() {
		want := do(t, s, r)
		got := resps[i]
		if errs[i] != nil || got.Status != want.Status || len(got.Hits) != len(want.Hits) {
			t.Fatalf("request %d: %v %v %d hits, Handle: %v %d hits", i, errs[i], got.Status, len(got.Hits), want.Status, len(want.Hits))
		}
		for j := range got.Hits {
			g, w := got.Hits[j], want.Hits[j]
			if g.Index != w.Index || string(g.Value) != string(w.Value) || g.Flags != w.Flags || g.CAS != w.CAS {
				t.Fatalf("request %d hit %d: %+v, Handle %+v", i, j, g, w)
			}
		}
	}
}

// Warm runs allocate nothing in the store: neither a run of 16 sets nor a
// run of 16 one-key gets.
func TestRunAllocs(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	var sets, gets []*protocol.Request
	for i := range 16 {
		sets = append(sets, setReq(fmt.Sprint("k", i), string(make([]byte, 1024)), 0))
		gets = append(gets, req(protocol.CmdGet, fmt.Sprint("k", i)))
	}
	sreqs, sresps, serrs := runOf(sets...)
	greqs, gresps, gerrs := runOf(gets...)
	ctx := context.Background()
	if n := testing.AllocsPerRun(50, func() {
		for _, r := range sresps {
			r.Reset()
		}
		s.HandleSets(ctx, sreqs, sresps, serrs)
	}); n > 0 {
		t.Errorf("HandleSets: %.1f allocations per run of 16", n)
	}
	if n := testing.AllocsPerRun(50, func() {
		for _, r := range gresps {
			r.Reset()
		}
		s.HandleGets(ctx, greqs, gresps, gerrs)
	}); n > 0 {
		t.Errorf("HandleGets: %.1f allocations per run of 16", n)
	}
	for i, r := range gresps {
		if gerrs[i] != nil || len(r.Hits) != 1 {
			t.Fatalf("get %d: %v, %d hits", i, gerrs[i], len(r.Hits))
		}
	}
}

// Single sets from concurrent goroutines (as from many connections) are
// committed in groups (committer): every set is stored, each with its own
// CAS, and the last write of each key wins.
// With WriteNice, the same through each shard's write thread.
func TestGroupCommitConcurrentSets(t *testing.T) {
	for _, nice := range []int{-1, 5} {
		t.Run(fmt.Sprintf("write_nice=%d", nice), func(t *testing.T) {
			o := testOptions(t.TempDir())
			o.WriteNice = nice
			testGroupCommit(t, o)
		})
	}
}

func testGroupCommit(t *testing.T, o Options) {
	s := openTest(t, o)
	const workers, per = 8, 200
	cas := make([][]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				r := setReq(fmt.Sprintf("w%d-%d", w, i%50), fmt.Sprint(i), uint32(w))
				var resp protocol.Response
				if err := s.Handle(context.Background(), r, &resp); err != nil || resp.Status != protocol.StatusOK {
					t.Errorf("set: %v %v", err, resp.Status)
					return
				}
				cas[w] = append(cas[w], resp.CAS)
			}
		}()
	}
	wg.Wait()
	// Counted before the reads below, which may write state (first fetch).
	commits, ops := s.stats.writeCommits.Load(), s.stats.writeOps.Load()
	if ops != workers*per {
		t.Fatalf("%d operations written, want %d", ops, workers*per)
	}
	t.Logf("%d sets in %d RocksDB writes", ops, commits)
	seen := map[uint64]bool{}
	for w := range workers {
		for _, c := range cas[w] {
			if seen[c] {
				t.Fatalf("CAS %d given twice", c)
			}
			seen[c] = true
		}
		for k := range 50 {
			wantValue(t, s, fmt.Sprintf("w%d-%d", w, k), fmt.Sprint(per-50+k))
		}
	}
}

// The write thread runs at the raised nice value, and a Close writes what
// is acknowledged, stops the threads, and the data is there after a reopen.
func TestWriteThreadNiceAndClose(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir)
	o.WriteNice = 7
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	var resp protocol.Response
	if err := s.Handle(context.Background(), setReq("k", "v1", 0), &resp); err != nil || resp.Status != protocol.StatusOK {
		t.Fatalf("set: %v %v", err, resp.Status)
	}
	if runtime.GOOS == "linux" {
		// Some thread of the process has nice 7 (the test process runs
		// at 0; the tasks' stat field 19 is the nice value).
		found := false
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, e := range tasks {
			b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
			if len(f) > 16 && f[16] == "7" {
				found = true
			}
		}
		if !found {
			t.Error("no thread runs at nice 7")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, sh := range s.shards {
		if sh.commit.thread {
			t.Fatal("a write thread still runs after Close")
		}
	}
	s = openTest(t, testOptions(dir))
	wantValue(t, s, "k", "v1")
}
