package store

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// TestRecordExtension: the meta state extension round-trips, a record
// without it (every record written before it existed) decodes with no
// state and byte for byte as before, and a truncated extension is corrupt.
func TestRecordExtension(t *testing.T) {
	plain := header{cas: 5, stamp: 1 << 60, flags: 7, expiry: 9}
	rec := appendRecord(nil, plain, []byte("v"))
	if len(rec) != headerLen+1 {
		t.Fatalf("a record without state grew to %d bytes", len(rec))
	}
	h, data, ok := decodeRecord(rec)
	if !ok || h != plain || !bytes.Equal(data, []byte("v")) {
		t.Fatalf("plain record: %+v %q %v", h, data, ok)
	}
	ext := header{cas: 5, stamp: 1 << 60, flags: 7, expiry: 9, bits: 3, access: 1_700_000_000}
	rec = appendRecord(nil, ext, []byte("v"))
	h, data, ok = decodeRecord(rec)
	if !ok || h != ext || !bytes.Equal(data, []byte("v")) {
		t.Fatalf("extended record: %+v %q %v", h, data, ok)
	}
	if _, _, ok := decodeRecord(rec[:headerLen+4]); ok {
		t.Fatal("a truncated extension decoded")
	}
}

func mg(key string, mod func(*protocol.Request)) *protocol.Request {
	r := req(protocol.CmdGet, key)
	r.Mods.Meta = true
	if mod != nil {
		mod(r)
	}
	return r
}

// TestMetaStateSurvivesRestart: the W token, the stale mark and the
// fetched bit are part of the record.
func TestMetaStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, testOptions(dir))
	vivify := func(r *protocol.Request) { r.Vivify, r.Mods.VivifyExptime = true, 100 }
	if h := do(t, s, mg("k", vivify)).Hits; len(h) != 1 || !h[0].Win {
		t.Fatalf("mg N on a miss: %+v", h)
	}
	set(t, s, protocol.CmdSet, "st", "v", 0, 0)
	d := req(protocol.CmdDelete, "st")
	d.Invalidate = true
	wantStatus(t, do(t, s, d), protocol.StatusOK)
	s.Close()
	s = openTest(t, testOptions(dir))
	if h := do(t, s, mg("k", vivify)).Hits; len(h) != 1 || h[0].Win || !h[0].Won || !h[0].Fetched {
		t.Fatalf("mg N after restart: %+v", h)
	}
	// A classic get serves the stale item and hands out nothing...
	if h := get(t, s, "st"); h.Win || h.Stale {
		t.Fatalf("get of a stale item: %+v", h)
	}
	// ...the first mg wins, the next sees Z.
	if h := do(t, s, mg("st", nil)).Hits; len(h) != 1 || !h[0].Win || !h[0].Stale {
		t.Fatalf("first mg of a stale item: %+v", h)
	}
	if h := do(t, s, mg("st", nil)).Hits; len(h) != 1 || h[0].Win || !h[0].Won || !h[0].Stale {
		t.Fatalf("second mg of a stale item: %+v", h)
	}
}

// TestOneWinner: readers racing on a missing key with mg N, or on a stale
// item, get exactly one W between them (the read re-decides under the
// key's stripe before it writes the token).
func TestOneWinner(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	set(t, s, protocol.CmdSet, "st", "v", 0, 0)
	d := req(protocol.CmdDelete, "st")
	d.Invalidate = true
	wantStatus(t, do(t, s, d), protocol.StatusOK)
	for _, key := range []string{"new", "st"} {
		const readers = 8
		wins := make(chan bool, readers)
		var wg sync.WaitGroup
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := mg(key, func(r *protocol.Request) { r.Vivify, r.Mods.VivifyExptime = true, 100 })
				resp := new(protocol.Response)
				if err := s.Handle(context.Background(), r, resp); err != nil || len(resp.Hits) != 1 {
					t.Errorf("%s: %v %+v", key, err, resp)
					return
				}
				wins <- resp.Hits[0].Win
			}()
		}
		wg.Wait()
		close(wins)
		n := 0
		for w := range wins {
			if w {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d readers won, want 1", key, n)
		}
	}
}

// TestRequestValueNotRetained: the store never keeps (and later writes
// into) a request's value buffer. A large set once put the request's buffer
// into the record pool, and the next write's record overwrote the caller's
// bytes: rend then filled L1 with a record header where the value was.
func TestRequestValueNotRetained(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	want := bytes.Repeat([]byte("v"), 5000)
	r := req(protocol.CmdSet, "big")
	r.Value = bytes.Clone(want)
	wantStatus(t, do(t, s, r), protocol.StatusOK)
	for i := range 20 {
		set(t, s, protocol.CmdSet, "k", string(bytes.Repeat([]byte{'a' + byte(i)}, 6000)), 0, 0)
	}
	if !bytes.Equal(r.Value, want) {
		t.Fatal("the store wrote into a request's value buffer")
	}
	wantValue(t, s, "big", string(want))
}
