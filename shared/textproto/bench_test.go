package textproto

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// repeatReader yields data over and over, so a benchmark parses a stream
// of identical requests that straddle buffer boundaries as real ones do.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func parser(req string) *ServerCodec {
	c := newTestCodec()
	c.Reset(bufio.NewReader(&repeatReader{data: []byte(req)}), bufio.NewWriter(io.Discard))
	return c
}

// writer returns a codec and the request it will answer.
func writer(tb testing.TB, req string) (*ServerCodec, *protocol.Request) {
	c := newTestCodec()
	c.Reset(bufio.NewReader(strings.NewReader(req)), bufio.NewWriter(io.Discard))
	r := new(protocol.Request)
	if err := c.ReadRequest(r); err != nil {
		tb.Fatal(err)
	}
	return c, r
}

func hitResponse() *protocol.Response {
	resp := new(protocol.Response)
	resp.AppendHit(0, []byte(strings.Repeat("v", 100)), 5, 12345, testNow.Unix()+60)
	return resp
}

var (
	getReq   = "get user:12345678\r\n"
	mgReq    = "mg user:12345678 v f t c k\r\n"
	setReq   = "set user:12345678 5 0 100\r\n" + strings.Repeat("v", 100) + "\r\n"
	msReq    = "ms user:12345678 100 F5 T0\r\n" + strings.Repeat("v", 100) + "\r\n"
	multiReq = "get k:0 k:1 k:2 k:3 k:4 k:5 k:6 k:7 k:8 k:9\r\n"
)

func benchParse(b *testing.B, in string) {
	c := parser(in)
	var req protocol.Request
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if err := c.ReadRequest(&req); err != nil {
			b.Fatal(err)
		}
	}
}

func benchWrite(b *testing.B, in string) {
	c, req := writer(b, in)
	resp := hitResponse()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteResponse(req, resp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseGet(b *testing.B)      { benchParse(b, getReq) }
func BenchmarkParseMultiGet(b *testing.B) { benchParse(b, multiReq) }
func BenchmarkParseSet(b *testing.B)      { benchParse(b, setReq) }
func BenchmarkParseMetaGet(b *testing.B)  { benchParse(b, mgReq) }
func BenchmarkParseMetaSet(b *testing.B)  { benchParse(b, msReq) }
func BenchmarkWriteGetHit(b *testing.B)   { benchWrite(b, getReq) }
func BenchmarkWriteMetaGetHit(b *testing.B) {
	benchWrite(b, mgReq)
}

// TestZeroAllocs pins the allocation-free paths: parsing reads and writes
// (once the request's buffers have grown) and encoding hits.
func TestZeroAllocs(t *testing.T) {
	for _, in := range []string{getReq, multiReq, mgReq, setReq, msReq} {
		c := parser(in)
		var req protocol.Request
		if n := testing.AllocsPerRun(1000, func() {
			if err := c.ReadRequest(&req); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("parse %q: %v allocs/op", in, n)
		}
	}
	for _, in := range []string{getReq, mgReq, "gets a\r\n", "mg YWJj b k v s\r\n"} {
		c, req := writer(t, in)
		resp := hitResponse()
		if n := testing.AllocsPerRun(1000, func() {
			if err := c.WriteResponse(req, resp); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("write %q: %v allocs/op", in, n)
		}
	}
}
