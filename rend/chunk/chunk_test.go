package chunk

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// store is a toy L1: encode value into header + chunk items.
func store(key, value []byte, chunkSize int) (hdr []byte, chunks map[string][]byte, h Header) {
	h = NewHeader(value, 7, 1234, 99, chunkSize)
	hdr = AppendHeader(nil, &h)
	chunks = map[string][]byte{}
	base := KeyBase(key, &h.Token)
	for i := 0; i < h.Chunks; i++ {
		chunks[string(AppendChunkKey(nil, &base, i))] = AppendChunk(nil, &h, value, i)
	}
	return hdr, chunks, h
}

// load reassembles an item the way rend's L1 reader does.
func load(key, hdr []byte, chunks map[string][]byte, max int) ([]byte, error) {
	h, err := Decode(hdr, max)
	if err != nil {
		return nil, err
	}
	if h.Chunks == 0 {
		return h.Inline, nil
	}
	base := KeyBase(key, &h.Token)
	out := make([]byte, 0, h.Length)
	for i := 0; i < h.Chunks; i++ {
		b, ok := chunks[string(AppendChunkKey(nil, &base, i))]
		if !ok {
			return nil, errors.New("missing chunk")
		}
		d, err := CheckChunk(&h, i, b)
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	if len(out) != h.Length {
		return nil, ErrLength
	}
	return out, nil
}

func TestRoundTripSizes(t *testing.T) {
	const cs = 64
	key := []byte("k")
	for _, n := range []int{0, 1, cs - 1, cs, cs + 1, cs + TokenSize - HeaderSize, cs + TokenSize - HeaderSize + 1, 2 * cs, 2*cs + 1, 1000, 1<<20 + 1} {
		v := make([]byte, n)
		for i := range v {
			v[i] = byte(i * 31)
		}
		hdr, chunks, h := store(key, v, cs)
		if want := Inline(n, cs); (h.Chunks == 0) != want {
			t.Fatalf("n=%d inline=%v want %v", n, h.Chunks == 0, want)
		}
		got, err := load(key, hdr, chunks, 2<<20)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("n=%d: err %v equal %v", n, err, bytes.Equal(got, v))
		}
		h2, _ := Decode(hdr, 2<<20)
		if h2.Flags != 7 || h2.Exptime != 1234 || h2.Version != 99 || h2.Token != h.Token || h2.Length != n {
			t.Fatalf("n=%d header %+v", n, h2)
		}
	}
}

func TestMissingOrForeignChunkIsMiss(t *testing.T) {
	key := []byte("key")
	v := bytes.Repeat([]byte("abcdefgh"), 100)
	hdr, chunks, _ := store(key, v, 64)
	// A lost chunk: miss.
	for k := range chunks {
		c := map[string][]byte{}
		for k2, v2 := range chunks {
			if k2 != k {
				c[k2] = v2
			}
		}
		if _, err := load(key, hdr, c, 1<<20); err == nil {
			t.Fatalf("lost chunk %s gave a hit", k)
		}
		break
	}
	// Chunks from another write of the same key cannot be mixed in: the new
	// write's keys differ, and a chunk with a different token is rejected.
	_, chunks2, h2 := store(key, bytes.Repeat([]byte("X"), len(v)), 64)
	base1, _ := Decode(hdr, 1<<20)
	if KeyBase(key, &base1.Token) == KeyBase(key, &h2.Token) {
		t.Fatal("two writes share chunk keys")
	}
	for _, c := range chunks2 {
		if _, err := CheckChunk(&base1, 0, c); !errors.Is(err, ErrToken) {
			t.Fatalf("foreign chunk accepted: %v", err)
		}
		break
	}
	// A truncated chunk: miss.
	for k, c := range chunks {
		chunks[k] = c[:len(c)-1]
		if _, err := load(key, hdr, chunks, 1<<20); err == nil {
			t.Fatal("short chunk gave a hit")
		}
		chunks[k] = c
		break
	}
	// A different key with the same header bytes derives different chunks.
	if _, err := load([]byte("other"), hdr, chunks, 1<<20); err == nil {
		t.Fatal("header under another key found the chunks")
	}
}

func TestDecodeRejects(t *testing.T) {
	h := NewHeader(make([]byte, 500), 0, 0, 1, 64)
	good := AppendHeader(nil, &h)
	cases := map[string]func(b []byte) []byte{
		"short":      func(b []byte) []byte { return b[:HeaderSize-1] },
		"magic":      func(b []byte) []byte { b[0] = 'x'; return b },
		"version":    func(b []byte) []byte { b[2] = 9; return b },
		"kind":       func(b []byte) []byte { b[3] = 5; return b },
		"count":      func(b []byte) []byte { b[19]++; return b },
		"size0":      func(b []byte) []byte { b[12], b[13], b[14], b[15] = 0, 0, 0, 0; return b },
		"trailing":   func(b []byte) []byte { return append(b, 'x') },
		"toolarge":   func(b []byte) []byte { b[8] = 0x7f; return b },
		"negexpiry":  func(b []byte) []byte { b[20] = 0x80; return b },
		"inlinesize": func(b []byte) []byte { b[3] = kindInline; b[16], b[17], b[18], b[19] = 0, 0, 0, 0; return b },
	}
	for name, mut := range cases {
		b := mut(append([]byte(nil), good...))
		if _, err := Decode(b, 1<<20); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := Decode(good, 1<<20); err != nil {
		t.Fatal(err)
	}
}

func TestChunkKeysBounded(t *testing.T) {
	long := []byte(strings.Repeat("k", protocol.DefaultMaxKeyLen))
	tok := NewToken()
	b := KeyBase(long, &tok)
	for _, i := range []int{0, 1, 35, 36, 20479, 1 << 30} {
		k := AppendChunkKey(nil, &b, i)
		if len(k) > MaxChunkKeyLen || !protocol.ValidKey(k, protocol.DefaultMaxKeyLen) {
			t.Fatalf("chunk key %q invalid", k)
		}
	}
	// Derived keys never alias the caller's buffers.
	dst := make([]byte, 0, 64)
	k1 := AppendChunkKey(dst, &b, 1)
	k2 := AppendChunkKey(nil, &b, 2)
	if bytes.Equal(k1, k2) {
		t.Fatal("distinct chunks share a key")
	}
}

func TestAllocs(t *testing.T) {
	v := make([]byte, 4000)
	h := NewHeader(v, 0, 0, 1, 1024)
	buf := make([]byte, 0, 2048)
	base := KeyBase([]byte("key"), &h.Token)
	n := testing.AllocsPerRun(100, func() {
		buf = AppendHeader(buf[:0], &h)
		buf = AppendChunk(buf[:0], &h, v, 1)
		buf = AppendChunkKey(buf[:0], &base, 3)
		if _, err := Decode(AppendHeader(buf[:0], &h), 1<<20); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// FuzzDecode: arbitrary header bytes never panic, never claim more than the
// limit, and a decoded chunked header always has a count consistent with its
// length.
func FuzzDecode(f *testing.F) {
	h := NewHeader([]byte("hello"), 1, 2, 3, 64)
	f.Add(AppendHeader(nil, &h)) // inline
	h = NewHeader(make([]byte, 300), 1, 2, 3, 64)
	f.Add(AppendHeader(nil, &h)) // chunked
	f.Add([]byte("RC\x01"))      // truncated
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Decode(b, 1<<20)
		if err != nil {
			return
		}
		if h.Length > 1<<20 {
			t.Fatal("length above limit")
		}
		if h.Chunks == 0 && len(h.Inline) != h.Length {
			t.Fatal("inline length")
		}
		if h.Chunks > 0 && (h.ChunkSize <= 0 || h.Chunks != Count(h.Length, h.ChunkSize)) {
			t.Fatal("chunk count inconsistent")
		}
		re := AppendHeader(nil, &h)
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encode differs")
		}
	})
}

// FuzzRoundTrip: any value and chunk size round-trips, and corrupting any one
// stored byte never yields a different value as a hit.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(""), uint16(64), uint32(0))
	f.Add([]byte("x"), uint16(1), uint32(3))
	f.Add(bytes.Repeat([]byte("ab"), 200), uint16(17), uint32(77))
	f.Fuzz(func(t *testing.T, v []byte, cs uint16, pos uint32) {
		size := int(cs)%512 + 1
		key := []byte("fuzz")
		hdr, chunks, _ := store(key, v, size)
		got, err := load(key, hdr, chunks, 1<<20)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("round trip: %v", err)
		}
		// Flip one byte somewhere in the stored items.
		r := rand.New(rand.NewPCG(uint64(pos), 1))
		all := [][]byte{hdr}
		for _, c := range chunks {
			all = append(all, c)
		}
		item := all[r.IntN(len(all))]
		if len(item) == 0 {
			return
		}
		at := r.IntN(len(item))
		item[at] ^= 0xff
		got, err = load(key, hdr, chunks, 1<<20)
		if err == nil && !bytes.Equal(got, v) {
			// Only value bytes may change undetected (no checksum; the
			// token guards against foreign and missing chunks, not bit rot),
			// and then the length and everything else must still match.
			if len(got) != len(v) {
				t.Fatalf("corruption changed the length")
			}
		}
	})
}

// A header with Access is format version 2; one without stays version 1,
// byte for byte as before, so headers written before version 2 decode.
func TestAccessField(t *testing.T) {
	for _, n := range []int{0, 5, 500} {
		h := NewHeader(bytes.Repeat([]byte("v"), n), 3, 0, 42, 64)
		h.State = 5
		v1 := AppendHeader(nil, &h)
		if v1[2] != formatVersion || len(v1) != HeaderSize+len(h.Inline) {
			t.Fatalf("n=%d: v1 header version %d len %d", n, v1[2], len(v1))
		}
		h.Access = 1_700_000_000
		v2 := AppendHeader(nil, &h)
		if v2[2] != formatAccess || len(v2) != len(v1)+accessSize {
			t.Fatalf("n=%d: v2 header version %d len %d", n, v2[2], len(v2))
		}
		for _, b := range [][]byte{v1, v2} {
			d, err := Decode(b, 1<<20)
			if err != nil {
				t.Fatalf("n=%d: %v", n, err)
			}
			want := int64(0)
			if b[2] == formatAccess {
				want = h.Access
			}
			if d.Access != want || d.State != 5 || d.Version != 42 || !bytes.Equal(d.Inline, h.Inline) {
				t.Fatalf("n=%d: decoded %+v", n, d)
			}
		}
		if _, err := Decode(v2[:HeaderSize+accessSize-1], 1<<20); err == nil && n == 0 {
			t.Fatalf("n=%d: short v2 decoded", n)
		}
		bad := append([]byte(nil), v2...)
		clear(bad[HeaderSize : HeaderSize+accessSize])
		if _, err := Decode(bad, 1<<20); err == nil {
			t.Fatalf("n=%d: v2 with access 0 decoded", n)
		}
	}
}
