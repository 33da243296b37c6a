package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// TestShimMatchesGrocksdb: gets through mgshim (one cgo call per shard)
// return what grocksdb's own Get reads, in request order, for hits and
// misses across shards, repeated keys, and values larger than the pooled
// buffer (the second-call path).
func TestShimMatchesGrocksdb(t *testing.T) {
	o := testOptions(t.TempDir())
	o.Shards = 3
	s := openTest(t, o)
	var keys []string
	for i := 0; i < 40; i++ {
		v := fmt.Sprintf("v%d", i)
		switch i {
		case 7:
			v = strings.Repeat("x", 10000) // past the 4 KiB first buffer
		case 8:
			v = strings.Repeat("y", 3<<20) // past maxPooledOut
		}
		set(t, s, protocol.CmdSet, fmt.Sprint("k", i), v, uint32(i), 0)
		keys = append(keys, fmt.Sprint("k", i))
		if i%5 == 0 {
			keys = append(keys, fmt.Sprint("missing", i), fmt.Sprint("k", i)) // a miss and a repeat
		}
	}
	r := req(protocol.CmdGets, keys...)
	resp := do(t, s, r)
	hit := 0
	for i, k := range keys {
		sl, err := s.shardFor(hashKey([]byte(k))).db.Get(s.ro, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if !sl.Exists() {
			sl.Free()
			continue
		}
		h, data, _ := decodeRecord(sl.Data())
		got := resp.Hits[hit]
		if got.Index != i || string(got.Value) != string(data) || got.Flags != h.flags || got.CAS != h.cas {
			t.Fatalf("key %s: hit %d index %d flags %d cas %d len %d; grocksdb: flags %d cas %d len %d",
				k, hit, got.Index, got.Flags, got.CAS, len(got.Value), h.flags, h.cas, len(data))
		}
		sl.Free()
		hit++
	}
	if hit != len(resp.Hits) || hit != 40+8 {
		t.Fatalf("%d hits, grocksdb found %d", len(resp.Hits), hit)
	}
}

// TestGetAllocs: a warm multi-key get allocates nothing per request in the
// store (the response's arena and hit slice are reused by the server).
func TestGetAllocs(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	var keys []string
	for i := 0; i < 16; i++ {
		set(t, s, protocol.CmdSet, fmt.Sprint("k", i), strings.Repeat("v", 1000), 0, 0)
		keys = append(keys, fmt.Sprint("k", i))
	}
	for _, n := range []int{1, 16} {
		r := req(protocol.CmdGet, keys[:n]...)
		var resp protocol.Response
		get := func() {
			resp.Reset()
			if err := s.Handle(context.Background(), r, &resp); err != nil || len(resp.Hits) != n {
				t.Fatalf("get: %v, %d hits", err, len(resp.Hits))
			}
		}
		get()
		if a := testing.AllocsPerRun(200, get); a != 0 {
			t.Errorf("get of %d keys: %.1f allocations per request", n, a)
		}
	}
}
