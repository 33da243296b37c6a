package binproto

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// loopReader serves the same bytes forever, so a benchmark can parse one
// packet per iteration from a real bufio.Reader.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func newLoopCodec(pkt []byte) *ServerCodec {
	c := NewServerCodec(protocol.Limits{})
	c.Reset(bufio.NewReaderSize(&loopReader{data: pkt}, 4096), bufio.NewWriterSize(io.Discard, 4096))
	return c
}

func getHitResponse() *protocol.Response {
	var resp protocol.Response
	resp.AppendHit(0, bytes.Repeat([]byte("v"), 100), 42, 12345, 0)
	return &resp
}

// The get path must not allocate in steady state: parsing, encoding the hit,
// and the client's encoder and decoder.
func TestZeroAllocs(t *testing.T) {
	key := []byte("user:1234567890:profile")
	checks := []struct {
		name string
		fn   func() func()
	}{
		{"parse get", func() func() {
			c := newLoopCodec(AppendGet(nil, OpGet, key, 1))
			var req protocol.Request
			return func() { c.ReadRequest(&req) }
		}},
		{"parse getkq", func() func() {
			c := newLoopCodec(AppendGet(nil, OpGetKQ, key, 1))
			var req protocol.Request
			return func() { c.ReadRequest(&req) }
		}},
		{"parse set", func() func() {
			c := newLoopCodec(AppendStore(nil, OpSet, key, bytes.Repeat([]byte("v"), 100), 1, 0, 0, 1))
			var req protocol.Request
			return func() { c.ReadRequest(&req) }
		}},
		{"write get hit", func() func() {
			c := newLoopCodec(AppendGet(nil, OpGetK, key, 1))
			var req protocol.Request
			c.ReadRequest(&req)
			resp := getHitResponse()
			return func() { c.WriteResponse(&req, resp) }
		}},
		{"write getk miss", func() func() {
			c := newLoopCodec(AppendGet(nil, OpGetK, key, 1))
			var req protocol.Request
			c.ReadRequest(&req)
			resp := &protocol.Response{Status: protocol.StatusNotFound}
			return func() { c.WriteResponse(&req, resp) }
		}},
		{"write stats", func() func() {
			c := newLoopCodec(AppendStat(nil, nil, 1))
			var req protocol.Request
			c.ReadRequest(&req)
			resp := &protocol.Response{Stats: []protocol.Stat{{Name: "pid", Value: "1"}}}
			return func() { c.WriteResponse(&req, resp) }
		}},
		{"client encode get", func() func() {
			buf := make([]byte, 0, 256)
			return func() { buf = AppendGet(buf[:0], OpGetKQ, key, 1) }
		}},
		{"client encode set", func() func() {
			buf := make([]byte, 0, 256)
			val := bytes.Repeat([]byte("v"), 100)
			return func() { buf = AppendStore(buf[:0], OpSetQ, key, val, 1, 2, 0, 3) }
		}},
		{"client decode get hit", func() func() {
			pkt := hitPacket(key)
			r := bufio.NewReaderSize(&loopReader{data: pkt}, 4096)
			buf := make([]byte, 0, 256)
			return func() {
				resp, err := ReadResponse(r, buf)
				if err != nil {
					panic(err)
				}
				buf = resp.Body[:0]
			}
		}},
	}
	for _, c := range checks {
		fn := c.fn()
		if n := testing.AllocsPerRun(200, fn); n != 0 {
			t.Errorf("%s: %v allocs per op, want 0", c.name, n)
		}
	}
}

// hitPacket is what the codec answers a getk hit with a 100-byte value.
func hitPacket(key []byte) []byte {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	c := NewServerCodec(protocol.Limits{})
	c.Reset(bufio.NewReader(bytes.NewReader(AppendGet(nil, OpGetK, key, 1))), w)
	var req protocol.Request
	c.ReadRequest(&req)
	c.WriteResponse(&req, getHitResponse())
	w.Flush()
	return out.Bytes()
}

func BenchmarkParseGet(b *testing.B) {
	c := newLoopCodec(AppendGet(nil, OpGet, []byte("user:1234567890:profile"), 1))
	var req protocol.Request
	b.ReportAllocs()
	for b.Loop() {
		if err := c.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSet(b *testing.B) {
	c := newLoopCodec(AppendStore(nil, OpSet, []byte("user:1234567890:profile"), bytes.Repeat([]byte("v"), 100), 1, 0, 0, 1))
	var req protocol.Request
	b.ReportAllocs()
	for b.Loop() {
		if err := c.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteGetHit(b *testing.B) {
	c := newLoopCodec(AppendGet(nil, OpGetK, []byte("user:1234567890:profile"), 1))
	var req protocol.Request
	c.ReadRequest(&req)
	resp := getHitResponse()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteResponse(&req, resp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClientEncodeGet(b *testing.B) {
	buf := make([]byte, 0, 256)
	key := []byte("user:1234567890:profile")
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendGet(buf[:0], OpGetKQ, key, 1)
	}
}

func BenchmarkClientEncodeSet(b *testing.B) {
	buf := make([]byte, 0, 256)
	key := []byte("user:1234567890:profile")
	val := bytes.Repeat([]byte("v"), 100)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendStore(buf[:0], OpSetQ, key, val, 1, 0, 0, 1)
	}
}

func BenchmarkClientDecodeGetHit(b *testing.B) {
	r := bufio.NewReaderSize(&loopReader{data: hitPacket([]byte("user:1234567890:profile"))}, 4096)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := ReadResponse(r, buf)
		if err != nil {
			b.Fatal(err)
		}
		buf = resp.Body[:0]
	}
}
