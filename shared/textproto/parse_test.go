package textproto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// reqView is the comparable part of a parsed Request.
type reqView struct {
	Cmd        protocol.Command
	Keys       string // space-joined
	Value      string
	Flags      uint32
	Exptime    int64
	HasExptime bool
	CAS        uint64
	Delta      uint64
	Initial    uint64
	Vivify     bool
	Want       protocol.Want
	Invalidate bool
	Args       string
	Quiet      bool
	Opcode     uint8
	Opaque     string
	Base64     bool
	Mode       byte
	Order      string // meta return flags in order
}

func view(r *protocol.Request) reqView {
	keys := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		keys[i] = string(k)
	}
	var order []byte
	for o := r.Meta.Flags; o != 0; o >>= 4 {
		order = append(order, "?stcflhOk"[o&0xf])
	}
	return reqView{
		Cmd: r.Command, Keys: strings.Join(keys, " "), Value: string(r.Value), Flags: r.Flags,
		Exptime: r.Exptime, HasExptime: r.HasExptime, CAS: r.CAS, Delta: r.Delta,
		Initial: r.Initial, Vivify: r.Vivify, Want: r.Want, Invalidate: r.Invalidate,
		Args: string(r.Args), Quiet: r.Quiet, Opcode: r.Opcode, Opaque: string(r.Meta.Opaque),
		Base64: r.Meta.Base64, Mode: r.Meta.Mode, Order: string(order),
	}
}

// parseOne parses the first request of in and returns it, the error and
// what the codec wrote.
func parseOne(t *testing.T, in string) (reqView, error, string) {
	t.Helper()
	c := newTestCodec()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	c.Reset(bufio.NewReader(strings.NewReader(in)), bw)
	var req protocol.Request
	err := c.ReadRequest(&req)
	bw.Flush()
	return view(&req), err, out.String()
}

const (
	wGet  = protocol.WantValue | protocol.WantFlags
	wGets = wGet | protocol.WantCAS
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want reqView
	}{
		// Classic reads.
		{"get a\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Want: wGet}},
		{"get a b  c\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a b c", Want: wGet}},
		{"get a\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Want: wGet}},
		{"get a\r\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a\r", Want: wGet}},
		{"get a\x00b\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Want: wGet}},
		{"bget a\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Want: wGet}},
		{"gets a b\r\n", reqView{Cmd: protocol.CmdGets, Keys: "a b", Want: wGets}},
		{"gat 10 a b\r\n", reqView{Cmd: protocol.CmdGat, Keys: "a b", Want: wGet, Exptime: 10, HasExptime: true}},
		{"gats -1 a\r\n", reqView{Cmd: protocol.CmdGats, Keys: "a", Want: wGets, Exptime: -1, HasExptime: true}},
		{"touch a 5\r\n", reqView{Cmd: protocol.CmdTouch, Keys: "a", Exptime: 5, HasExptime: true}},
		{"touch a 5 noreply\r\n", reqView{Cmd: protocol.CmdTouch, Keys: "a", Exptime: 5, HasExptime: true, Quiet: true}},

		// Classic writes.
		{"set k 3 60 2\r\nhi\r\n", reqView{Cmd: protocol.CmdSet, Keys: "k", Value: "hi", Flags: 3, Exptime: 60, HasExptime: true}},
		{"add k 0 0 0\r\n\r\n", reqView{Cmd: protocol.CmdAdd, Keys: "k", HasExptime: true}},
		{"replace k 0 0 1 noreply\r\nx\r\n", reqView{Cmd: protocol.CmdReplace, Keys: "k", Value: "x", HasExptime: true, Quiet: true}},
		{"append k 0 0 1\r\nx\r\n", reqView{Cmd: protocol.CmdAppend, Keys: "k", Value: "x", HasExptime: true}},
		{"prepend k 0 0 1\r\nx\r\n", reqView{Cmd: protocol.CmdPrepend, Keys: "k", Value: "x", HasExptime: true}},
		{"cas k 1 2 1 99\r\nx\r\n", reqView{Cmd: protocol.CmdCas, Keys: "k", Value: "x", Flags: 1, Exptime: 2, HasExptime: true, CAS: 99}},
		{"set k 4294967297 -5 1\r\nx\r\n", reqView{Cmd: protocol.CmdSet, Keys: "k", Value: "x", Flags: 1, Exptime: -5, HasExptime: true}},
		{"set k 0 99999999999 1\r\nx\r\n", reqView{Cmd: protocol.CmdSet, Keys: "k", Value: "x", Exptime: 1215752191, HasExptime: true}},
		{"set k 0 0 1\tjunk\r\nx\r\n", reqView{Cmd: protocol.CmdSet, Keys: "k", Value: "x", HasExptime: true}},
		{"set k\t 0 0 1\r\nx\r\n", reqView{Cmd: protocol.CmdSet, Keys: "k\t", Value: "x", HasExptime: true}},

		// Others.
		{"delete k\r\n", reqView{Cmd: protocol.CmdDelete, Keys: "k"}},
		{"delete k 0\r\n", reqView{Cmd: protocol.CmdDelete, Keys: "k"}},
		{"delete k noreply\r\n", reqView{Cmd: protocol.CmdDelete, Keys: "k", Quiet: true}},
		{"delete k 0 noreply\r\n", reqView{Cmd: protocol.CmdDelete, Keys: "k", Quiet: true}},
		{"incr k 18446744073709551615\r\n", reqView{Cmd: protocol.CmdIncr, Keys: "k", Delta: 1<<64 - 1}},
		{"decr k 2 noreply\r\n", reqView{Cmd: protocol.CmdDecr, Keys: "k", Delta: 2, Quiet: true}},
		{"flush_all\r\n", reqView{Cmd: protocol.CmdFlushAll, HasExptime: true}},
		{"flush_all 30 noreply\r\n", reqView{Cmd: protocol.CmdFlushAll, Exptime: 30, HasExptime: true, Quiet: true}},
		{"flush_all noreply\r\n", reqView{Cmd: protocol.CmdFlushAll, HasExptime: true, Quiet: true}},
		{"stats\r\n", reqView{Cmd: protocol.CmdStats}},
		{"stats  detail   on\r\n", reqView{Cmd: protocol.CmdStats, Args: "detail on"}},
		{"version\r\n", reqView{Cmd: protocol.CmdVersion}},
		{"verbosity 1 noreply\r\n", reqView{Cmd: protocol.CmdVerbosity, Args: "1", Quiet: true}},
		{"quit\r\n", reqView{Cmd: protocol.CmdQuit}},

		// Meta.
		{"mn\r\n", reqView{Cmd: protocol.CmdNoop, Opcode: 'n'}},
		{"mg a\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Opcode: 'g'}},
		{"mg a v f c t s k Oxy q h l u\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Opcode: 'g', Quiet: true, Opaque: "Oxy",
			Want: wGets | protocol.WantTTL | protocol.WantSize | protocol.WantKey | protocol.WantFetched | protocol.WantAccess, Order: "fctskOhl"}},
		{"mg a T30 v\r\n", reqView{Cmd: protocol.CmdGat, Keys: "a", Opcode: 'g', Want: protocol.WantValue, Exptime: 30, HasExptime: true}},
		{"mg a N30\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Opcode: 'g', Vivify: true, Exptime: 30}},
		{"mg a N30 T5\r\n", reqView{Cmd: protocol.CmdGat, Keys: "a", Opcode: 'g', Vivify: true, Exptime: 5, HasExptime: true}},
		{"mg YWJj b k\r\n", reqView{Cmd: protocol.CmdGet, Keys: "abc", Opcode: 'g', Base64: true, Want: protocol.WantKey, Order: "k"}},
		{"mg Y!WJj b\r\n", reqView{Cmd: protocol.CmdGet, Keys: "abc", Opcode: 'g', Base64: true}},
		{"ms a 2 F5 T9 c k O1\r\nhi\r\n", reqView{Cmd: protocol.CmdSet, Keys: "a", Value: "hi", Flags: 5, Exptime: 9, HasExptime: true,
			Opcode: 's', Opaque: "O1", Want: protocol.WantCAS | protocol.WantKey, Order: "ckO"}},
		{"ms a 1 ME\r\nx\r\n", reqView{Cmd: protocol.CmdAdd, Keys: "a", Value: "x", HasExptime: true, Opcode: 's', Mode: 'E'}},
		{"ms a 1 ME C5\r\nx\r\n", reqView{Cmd: protocol.CmdAdd, Keys: "a", Value: "x", HasExptime: true, Opcode: 's', Mode: 'E'}},
		{"ms a 1 MA C5\r\nx\r\n", reqView{Cmd: protocol.CmdAppend, Keys: "a", Value: "x", HasExptime: true, Opcode: 's', Mode: 'A', CAS: 5}},
		{"ms a 1 MP\r\nx\r\n", reqView{Cmd: protocol.CmdPrepend, Keys: "a", Value: "x", HasExptime: true, Opcode: 's', Mode: 'P'}},
		{"ms a 1 MR\r\nx\r\n", reqView{Cmd: protocol.CmdReplace, Keys: "a", Value: "x", HasExptime: true, Opcode: 's', Mode: 'R'}},
		{"ms a 1 MR C7 I\r\nx\r\n", reqView{Cmd: protocol.CmdCas, Keys: "a", Value: "x", HasExptime: true, Opcode: 's', Mode: 'R', CAS: 7, Invalidate: true}},
		{"ms a 1 C7 q\r\nx\r\n", reqView{Cmd: protocol.CmdCas, Keys: "a", Value: "x", HasExptime: true, Opcode: 's', CAS: 7, Quiet: true}},
		{"md a C3 I T30 q k\r\n", reqView{Cmd: protocol.CmdDelete, Keys: "a", Opcode: 'd', CAS: 3, Invalidate: true, Exptime: 30, HasExptime: true,
			Quiet: true, Want: protocol.WantKey, Order: "k"}},
		{"ma a\r\n", reqView{Cmd: protocol.CmdIncr, Keys: "a", Opcode: 'a', Delta: 1}},
		{"ma a MD D5 J9 N0 v t c\r\n", reqView{Cmd: protocol.CmdDecr, Keys: "a", Opcode: 'a', Delta: 5, Initial: 9, Vivify: true, Mode: 'D',
			Want: protocol.WantValue | protocol.WantTTL | protocol.WantCAS, Order: "tc"}},
		{"ma a M+ T60\r\n", reqView{Cmd: protocol.CmdIncr, Keys: "a", Opcode: 'a', Delta: 1, Mode: '+', Exptime: 60, HasExptime: true}},
		{"me a\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Opcode: 'e', Want: wGets | protocol.WantTTL}},
		{"me YQ== b\r\n", reqView{Cmd: protocol.CmdGet, Keys: "a", Opcode: 'e', Want: wGets | protocol.WantTTL, Base64: true}},
	} {
		got, err, out := parseOne(t, tc.in)
		if err != nil || out != "" {
			t.Errorf("%q: err %v, wrote %q", tc.in, err, out)
			continue
		}
		if got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

// TestParseErrors checks what the codec answers by itself, and that it
// says ErrReplied (stream in sync) or ErrClose.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		close   bool
	}{
		{"\r\n", "ERROR\r\n", false},
		{"foo\r\n", "ERROR\r\n", false},
		{"get\r\n", "ERROR\r\n", false},
		{"gat 5\r\n", "END\r\n", false},
		{"get " + k251 + "\r\n", "CLIENT_ERROR bad command line format\r\n", false},
		{"set a 0 0 x\r\n", "CLIENT_ERROR bad command line format\r\n", false},
		{"set a 0 0 x noreply\r\n", "", false},
		{"set a 0 0 1\r\nxx\r\n", "CLIENT_ERROR bad data chunk\r\n", false},
		{"add a 0 0 1048577\r\n" + strings.Repeat("x", 1048577) + "\r\n", "SERVER_ERROR object too large for cache\r\n", false},
		{"incr a x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n", false},
		{"touch a x\r\n", "CLIENT_ERROR invalid exptime argument\r\n", false},
		{"delete a 5\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n", false},
		{"mg a v v\r\n", "CLIENT_ERROR duplicate flag\r\n", false},
		{"mg a q z\r\n", "CLIENT_ERROR invalid flag\r\n", false},
		{"ms a 1 MX q\r\nx\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n", false},
		{"ms a 1 q\r\nxx\r\n", "CLIENT_ERROR bad data chunk\r\n", false},
		{"md a Tx\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n", false},
		{"ma a MX\r\n", "CLIENT_ERROR invalid mode for ma M token\r\n", false},
		{strings.Repeat("x", readBufferSize+1) + "\r\n", "", true},
		{"get " + strings.Repeat("k ", protocol.DefaultMaxLineLen/2), "", true},
	} {
		_, err, out := parseOne(t, tc.in)
		wantErr := protocol.ErrReplied
		if tc.close {
			wantErr = protocol.ErrClose
		}
		if !errors.Is(err, wantErr) || out != tc.out {
			t.Errorf("%q: got %v %q, want %v %q", clip(tc.in), err, out, wantErr, tc.out)
		}
	}
}

// A too-large set is swallowed and becomes a delete of the key (memcached
// unlinks the old item), answered with the too-large error.
func TestTooLargeSetDeletes(t *testing.T) {
	in := "set a 0 0 1048577\r\n" + strings.Repeat("x", 1048577) + "\r\n"
	got, err, out := parseOne(t, in)
	if err != nil || out != "" || got.Cmd != protocol.CmdDelete || got.Keys != "a" {
		t.Fatalf("got %+v %v %q", got, err, out)
	}
	out, _ = run("set a 0 0 1\r\nx\r\n" + in + "get a\r\nms a 1048577 q\r\n" + strings.Repeat("x", 1048577) + "\r\n")
	if want := "STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\nSERVER_ERROR object too large for cache\r\n"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestMaxKeys(t *testing.T) {
	c := NewServerCodec(protocol.Limits{MaxKeys: 3})
	in := "get a b c\r\nget a b c d\r\n"
	out, _ := serve(c, newMemHandler(), strings.NewReader(in), 4096)
	if want := "END\r\nSERVER_ERROR out of memory writing get response\r\n"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestMaxKeyLenLimit(t *testing.T) {
	c := NewServerCodec(protocol.Limits{MaxKeyLen: 4})
	out, _ := serve(c, newMemHandler(), strings.NewReader("get abcd\r\nget abcde\r\nmg abcde v\r\n"), 4096)
	if want := "END\r\nCLIENT_ERROR bad command line format\r\nCLIENT_ERROR bad command line format\r\n"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

// A huge length must not allocate: it is refused before any buffer exists.
func TestHugeLengthDoesNotAllocate(t *testing.T) {
	c := newTestCodec()
	c.Reset(bufio.NewReader(strings.NewReader("set a 0 0 2147483645\r\n")), bufio.NewWriter(&bytes.Buffer{}))
	var req protocol.Request
	err := c.ReadRequest(&req)
	if err == nil || cap(req.Value) != 0 {
		t.Fatalf("err %v, cap %d", err, cap(req.Value))
	}
}

func TestNumbers(t *testing.T) {
	for _, tc := range []struct {
		in      string
		l       int32
		lok     bool
		ul      uint32
		ulok    bool
		ull     uint64
		ullok   bool
		comment string
	}{
		{"0", 0, true, 0, true, 0, true, ""},
		{"+5", 5, true, 5, true, 5, true, "sign"},
		{"-0", 0, true, 0, true, 0, true, "negative zero passes the unsigned check"},
		{"-1", -1, true, 0, false, 0, false, ""},
		{"\t7", 7, true, 7, true, 7, true, "strtol skips leading space"},
		{"7\t", 7, true, 7, true, 7, true, "space may follow"},
		{"7\rx", 7, true, 7, true, 7, true, ""},
		{"7x", 0, false, 0, false, 0, false, ""},
		{"", 0, false, 0, false, 0, false, ""},
		{"-", 0, false, 0, false, 0, false, ""},
		{"4294967297", 1, true, 1, true, 4294967297, true, "int32/uint32 truncation"},
		{"2147483648", -2147483648, true, 2147483648, true, 2147483648, true, ""},
		{"9223372036854775808", 0, false, 0, true, 1 << 63, true, "long overflow; unsigned fine"},
		{"-9223372036854775808", 0, true, 0, false, 0, false, "LONG_MIN truncates to 0"},
		{"18446744073709551615", 0, false, 0xffffffff, true, 1<<64 - 1, true, ""},
		{"18446744073709551616", 0, false, 0, false, 0, false, "ERANGE"},
		{"-18446744073709551615", 0, false, 1, true, 1, true, "wraps to 1, which is not negative"},
	} {
		l, lok := safeStrtol([]byte(tc.in))
		ul, ulok := safeStrtoul([]byte(tc.in))
		ull, ullok := safeStrtoull([]byte(tc.in))
		got := fmt.Sprint(l, lok, ul, ulok, ull, ullok)
		want := fmt.Sprint(tc.l, tc.lok, tc.ul, tc.ulok, tc.ull, tc.ullok)
		if got != want {
			t.Errorf("%q (%s): got %s want %s", tc.in, tc.comment, got, want)
		}
	}
}

func TestDecodeKey(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"YQ==", "a", true},
		{"YWI=", "ab", true},
		{"YWJj", "abc", true},
		{"Y!WJj", "abc", true},     // non-alphabet bytes are skipped
		{"YWI=YQ==", "ab", true},   // decoding stops after padding
		{"A=AA", "\x00\x00", true}, // padding counted anywhere in the quantum
		{"YQ=", "", false},
		{"a", "", false},
		{"====", "", false},
		{"A===", "", false},
		{"", "", false},
		{"!!!!", "", false},
	} {
		out, ok := decodeKey(nil, []byte(tc.in))
		if ok != tc.ok || (ok && string(out) != tc.out) {
			t.Errorf("%q: got %q %v, want %q %v", tc.in, out, ok, tc.out, tc.ok)
		}
	}
}

// mg's G (a classic read that takes no W token) is mnemonic's, accepted
// only with Limits.PeerFlags: everywhere else it is the invalid flag
// memcached says it is.
func TestPeerFlagG(t *testing.T) {
	if _, err, out := parseOne(t, "mg a v G\r\n"); !errors.Is(err, protocol.ErrReplied) || out != "CLIENT_ERROR invalid flag\r\n" {
		t.Fatalf("without PeerFlags: %v %q", err, out)
	}
	c := NewServerCodec(protocol.Limits{PeerFlags: true})
	c.Reset(bufio.NewReader(strings.NewReader("mg a v f c t G u\r\nmg b v\r\n")), bufio.NewWriter(new(bytes.Buffer)))
	var req protocol.Request
	if err := c.ReadRequest(&req); err != nil || !req.Mods.ClassicRead || !req.Mods.NoBump {
		t.Fatalf("with PeerFlags: %v, mods %+v", err, req.Mods)
	}
	req.Reset()
	if err := c.ReadRequest(&req); err != nil || req.Mods.ClassicRead {
		t.Fatalf("a later mg without G: %v, mods %+v", err, req.Mods)
	}
}

// mg's A (the last access rend's L1 copy saw) is mnemonic's too: only with
// Limits.PeerFlags, and a bad value is a bad token.
func TestPeerFlagA(t *testing.T) {
	if _, err, out := parseOne(t, "mg a u A1700000000\r\n"); !errors.Is(err, protocol.ErrReplied) || out != "CLIENT_ERROR invalid flag\r\n" {
		t.Fatalf("without PeerFlags: %v %q", err, out)
	}
	c := NewServerCodec(protocol.Limits{PeerFlags: true})
	var wb bytes.Buffer
	w := bufio.NewWriter(&wb)
	c.Reset(bufio.NewReader(strings.NewReader("mg a G u A1700000000\r\nmg b v\r\nmg c u Ax\r\n")), w)
	var req protocol.Request
	if err := c.ReadRequest(&req); err != nil || req.Mods.PeerAccess != 1700000000 || !req.Mods.NoBump {
		t.Fatalf("with PeerFlags: %v, mods %+v", err, req.Mods)
	}
	req.Reset()
	if err := c.ReadRequest(&req); err != nil || req.Mods.PeerAccess != 0 {
		t.Fatalf("a later mg without A: %v, mods %+v", err, req.Mods)
	}
	req.Reset()
	err := c.ReadRequest(&req)
	w.Flush()
	if !errors.Is(err, protocol.ErrReplied) || wb.String() != "CLIENT_ERROR bad token in command line format\r\n" {
		t.Fatalf("A with a bad value: %v %q", err, wb.String())
	}
}
