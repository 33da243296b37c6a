package textproto

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

func hits(hs ...protocol.Hit) []protocol.Hit { return hs }

func TestEncode(t *testing.T) {
	exp := testNow.Unix() + 42
	v := []byte("val")
	for _, tc := range []struct {
		req  string
		resp protocol.Response
		want string
	}{
		// Classic reads.
		{"get a b\r\n", protocol.Response{}, "END\r\n"},
		{"get a b\r\n", protocol.Response{Hits: hits(protocol.Hit{Index: 1, Value: v, Flags: 7, CAS: 9})}, "VALUE b 7 3\r\nval\r\nEND\r\n"},
		{"gets a b\r\n", protocol.Response{Hits: hits(protocol.Hit{Index: 0, Value: v, CAS: 9}, protocol.Hit{Index: 1, Value: []byte{}, CAS: 10})},
			"VALUE a 0 3 9\r\nval\r\nVALUE b 0 0 10\r\n\r\nEND\r\n"},
		{"gat 1 a\r\n", protocol.Response{Status: protocol.StatusNotFound}, "END\r\n"},
		{"gats 1 a\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v, Flags: 4294967295, CAS: 1<<64 - 1})}, "VALUE a 4294967295 3 18446744073709551615\r\nval\r\nEND\r\n"},
		{"get a\r\n", protocol.Response{Status: protocol.StatusServerError, Message: "backend down"}, "SERVER_ERROR backend down\r\n"},
		{"get a\r\n", protocol.Response{Status: protocol.StatusServerError}, "SERVER_ERROR unknown error\r\n"},
		{"touch a 1\r\n", protocol.Response{}, "TOUCHED\r\n"},
		{"touch a 1\r\n", protocol.Response{Status: protocol.StatusNotFound}, "NOT_FOUND\r\n"},
		{"touch a 1 noreply\r\n", protocol.Response{Status: protocol.StatusNotFound}, ""},

		// Classic writes.
		{"set a 0 0 1\r\nx\r\n", protocol.Response{}, "STORED\r\n"},
		{"add a 0 0 1\r\nx\r\n", protocol.Response{Status: protocol.StatusNotStored}, "NOT_STORED\r\n"},
		{"replace a 0 0 1\r\nx\r\n", protocol.Response{Status: protocol.StatusNotStored}, "NOT_STORED\r\n"},
		{"cas a 0 0 1 5\r\nx\r\n", protocol.Response{Status: protocol.StatusExists}, "EXISTS\r\n"},
		{"cas a 0 0 1 5\r\nx\r\n", protocol.Response{Status: protocol.StatusNotFound}, "NOT_FOUND\r\n"},
		{"append a 0 0 1\r\nx\r\n", protocol.Response{Status: protocol.StatusTooLarge}, "SERVER_ERROR object too large for cache\r\n"},
		{"set a 0 0 1\r\nx\r\n", protocol.Response{Status: protocol.StatusServerError, Message: "out of memory storing object"}, "SERVER_ERROR out of memory storing object\r\n"},
		{"set a 0 0 1\r\nx\r\n", protocol.Response{Status: protocol.StatusClientError, Message: "nope"}, "CLIENT_ERROR nope\r\n"},
		{"set a 0 0 1 noreply\r\nx\r\n", protocol.Response{Status: protocol.StatusServerError, Message: "x"}, ""},
		{"delete a\r\n", protocol.Response{}, "DELETED\r\n"},
		{"delete a\r\n", protocol.Response{Status: protocol.StatusNotFound}, "NOT_FOUND\r\n"},
		{"incr a 1\r\n", protocol.Response{Number: 1<<64 - 1}, "18446744073709551615\r\n"},
		{"decr a 1\r\n", protocol.Response{Status: protocol.StatusNonNumeric}, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
		{"incr a 1\r\n", protocol.Response{Status: protocol.StatusNotFound}, "NOT_FOUND\r\n"},
		{"flush_all\r\n", protocol.Response{}, "OK\r\n"},
		{"verbosity 1\r\n", protocol.Response{}, "OK\r\n"},
		{"version\r\n", protocol.Response{Message: "1.6.18"}, "VERSION 1.6.18\r\n"},
		{"stats\r\n", protocol.Response{Stats: []protocol.Stat{{Name: "pid", Value: "1"}, {Name: "uptime", Value: "2"}}}, "STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n"},
		{"stats items\r\n", protocol.Response{}, "END\r\n"},
		{"stats reset\r\n", protocol.Response{}, "RESET\r\n"},
		{"stats nope\r\n", protocol.Response{Status: protocol.StatusNotFound}, "ERROR\r\n"},
		{"quit\r\n", protocol.Response{}, ""},

		// mg.
		{"mn\r\n", protocol.Response{}, "MN\r\n"},
		{"mg a\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v})}, "HD\r\n"},
		{"mg a\r\n", protocol.Response{Status: protocol.StatusNotFound}, "EN\r\n"},
		{"mg a q\r\n", protocol.Response{Status: protocol.StatusNotFound}, ""},
		{"mg a q\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v})}, "HD\r\n"},
		{"mg a v\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v})}, "VA 3\r\nval\r\n"},
		{"mg a k v O123 s f t c h l\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v, Flags: 5, CAS: 8, Exptime: exp})},
			"VA 3 ka O123 s3 f5 t42 c8 h0 l0\r\nval\r\n"},
		{"mg a t\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v})}, "HD t-1\r\n"},
		{"mg a t\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v, Exptime: testNow.Unix() - 5})}, "HD t0\r\n"},
		{"mg a c v\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v, Win: true, Stale: true, Won: true})}, "VA 3 c0 Z X W\r\nval\r\n"},
		{"mg a k O1 v s c f t\r\n", protocol.Response{Status: protocol.StatusNotFound}, "EN ka O1\r\n"},
		{"mg YWJj b k v\r\n", protocol.Response{Status: protocol.StatusNotFound}, "EN kYWJj b\r\n"},
		{"mg YWJj b k v\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v})}, "VA 3 kYWJj b\r\nval\r\n"},
		{"mg a v q\r\n", protocol.Response{Status: protocol.StatusServerError, Message: "boom"}, "SERVER_ERROR boom\r\n"},

		// ms.
		{"ms a 1\r\nx\r\n", protocol.Response{CAS: 3}, "HD\r\n"},
		{"ms a 1 c k O9\r\nx\r\n", protocol.Response{CAS: 3}, "HD c3 ka O9\r\n"},
		{"ms a 1 q c\r\nx\r\n", protocol.Response{CAS: 3}, ""},
		{"ms a 1 q k\r\nx\r\n", protocol.Response{Status: protocol.StatusNotStored}, "NS ka\r\n"},
		{"ms a 1 ME c\r\nx\r\n", protocol.Response{Status: protocol.StatusNotStored}, "NS c0\r\n"},
		{"ms a 1 C5 O1\r\nx\r\n", protocol.Response{Status: protocol.StatusExists}, "EX O1\r\n"},
		{"ms a 1 C5 q\r\nx\r\n", protocol.Response{Status: protocol.StatusNotFound}, "NF\r\n"},
		{"ms a 1 q\r\nx\r\n", protocol.Response{Status: protocol.StatusTooLarge}, "SERVER_ERROR object too large for cache\r\n"},
		{"ms YQ== 1 b k\r\nx\r\n", protocol.Response{}, "HD kYQ== b\r\n"},
		{"ms a 1 s t v f\r\nx\r\n", protocol.Response{}, "HD\r\n"},

		// md.
		{"md a\r\n", protocol.Response{}, "HD\r\n"},
		{"md a q k\r\n", protocol.Response{}, ""},
		{"md a q k O2\r\n", protocol.Response{Status: protocol.StatusNotFound}, "NF ka O2\r\n"},
		{"md a C1 q\r\n", protocol.Response{Status: protocol.StatusExists}, "EX\r\n"},

		// ma.
		{"ma a\r\n", protocol.Response{Number: 5}, "HD\r\n"},
		{"ma a q\r\n", protocol.Response{Number: 5}, ""},
		{"ma a v\r\n", protocol.Response{Number: 15}, "VA 2\r\n15\r\n"},
		{"ma a v q\r\n", protocol.Response{Number: 15}, ""},
		{"ma a N0 J5 v t c k O1\r\n", protocol.Response{Number: 5, CAS: 65}, "VA 1 t-1 c65 ka O1\r\n5\r\n"},
		{"ma a t\r\n", protocol.Response{Number: 5, Hits: hits(protocol.Hit{Exptime: exp})}, "HD t42\r\n"},
		{"ma a q k\r\n", protocol.Response{Status: protocol.StatusNotFound}, "NF ka\r\n"},
		{"ma a C1 q\r\n", protocol.Response{Status: protocol.StatusExists}, "EX\r\n"},
		{"ma a q\r\n", protocol.Response{Status: protocol.StatusNonNumeric}, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},

		// me.
		{"me a\r\n", protocol.Response{Status: protocol.StatusNotFound}, "EN\r\n"},
		{"me a\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v, CAS: 7})}, "ME a exp=-1 la=0 cas=7 fetch=no cls=1 size=3\r\n"},
		{"me YQ== b\r\n", protocol.Response{Hits: hits(protocol.Hit{Value: v, CAS: 7, Exptime: exp})}, "ME YQ== exp=-42 la=0 cas=7 fetch=no cls=1 size=3\r\n"},
	} {
		c := newTestCodec()
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		c.Reset(bufio.NewReader(strings.NewReader(tc.req)), bw)
		var req protocol.Request
		if err := c.ReadRequest(&req); err != nil {
			t.Errorf("%q: parse: %v", tc.req, err)
			continue
		}
		resp := tc.resp
		if err := c.WriteResponse(&req, &resp); err != nil {
			t.Errorf("%q: write: %v", tc.req, err)
		}
		bw.Flush()
		if out.String() != tc.want {
			t.Errorf("%q with %+v:\n got %q\nwant %q", tc.req, tc.resp, out.String(), tc.want)
		}
	}
}

// errWriter fails every write.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errBoom }

var errBoom = bytes.ErrTooLarge

func TestWriteErrorIsReported(t *testing.T) {
	c := newTestCodec()
	bw := bufio.NewWriterSize(errWriter{}, 16)
	c.Reset(bufio.NewReader(strings.NewReader("get a\r\n")), bw)
	var req protocol.Request
	if err := c.ReadRequest(&req); err != nil {
		t.Fatal(err)
	}
	resp := protocol.Response{Hits: hits(protocol.Hit{Value: bytes.Repeat([]byte("x"), 100)})}
	if err := c.WriteResponse(&req, &resp); err != errBoom {
		t.Fatalf("got %v", err)
	}
}

// With SetValueRef, a get reply of at least protocol.RefMinReply value
// bytes that does not fit in the writer's free space hands its values of at
// least RefMinValue bytes to ref instead of writing them; the buffered bytes
// with the referenced values spliced in where ref was called are exactly
// the reply written without ref. Replies that fit reference nothing.
func TestValuesByReference(t *testing.T) {
	const size = 4 * protocol.RefMinReply // the writer's buffer
	val := func(n int) []byte { return bytes.Repeat([]byte{byte('a' + n%26)}, n) }
	small, mid, big := val(protocol.RefMinValue-1), val(protocol.RefMinValue), val(size)
	for _, tc := range []struct {
		req  string
		hits []protocol.Hit
		refs int // values referenced
	}{
		{"get a b c\r\n", hits(protocol.Hit{Index: 0, Value: small}, protocol.Hit{Index: 1, Value: mid}, protocol.Hit{Index: 2, Value: big}), 2},
		{"gets a b\r\n", hits(protocol.Hit{Index: 0, Value: mid, CAS: 3}, protocol.Hit{Index: 1, Value: val(size / 2)}), 0},
		{"get a a b\r\n", hits(protocol.Hit{Index: 0, Value: big}, protocol.Hit{Index: 2, Value: small}), 2}, // a repeated key: the group path
		{"mg a v f\r\n", hits(protocol.Hit{Value: big, Flags: 5}), 1},
		{"mg a v\r\n", hits(protocol.Hit{Value: val(size - 100)}), 0},
		{"mg a s\r\n", hits(protocol.Hit{Value: big}), 0}, // no value asked for
	} {
		encode := func(withRef bool) (string, int) {
			c := newTestCodec()
			var out bytes.Buffer
			bw := bufio.NewWriterSize(&out, size)
			type ref struct {
				at int
				v  []byte
			}
			var refs []ref
			if withRef {
				c.SetValueRef(func(v []byte) { refs = append(refs, ref{bw.Buffered(), v}) })
			}
			c.Reset(bufio.NewReader(strings.NewReader(tc.req)), bw)
			var req protocol.Request
			if err := c.ReadRequest(&req); err != nil {
				t.Fatalf("%q: %v", tc.req, err)
			}
			resp := protocol.Response{Hits: tc.hits}
			if err := c.WriteResponse(&req, &resp); err != nil {
				t.Fatal(err)
			}
			if withRef && out.Len() != 0 { // ref's offsets are into the unflushed buffer
				t.Fatalf("%q: the writer was flushed", tc.req)
			}
			bw.Flush()
			b := out.Bytes()
			var s strings.Builder
			at := 0
			for _, r := range refs {
				s.Write(b[at:r.at])
				s.Write(r.v)
				at = r.at
			}
			s.Write(b[at:])
			return s.String(), len(refs)
		}
		want, _ := encode(false)
		got, n := encode(true)
		if got != want || n != tc.refs {
			t.Errorf("%q: %d values referenced (want %d); reply equal to the copied one: %v", tc.req, n, tc.refs, got == want)
		}
	}
}
