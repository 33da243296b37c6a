package binproto

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/moneta-cache/moneta/shared/protocol"
)

func parseOne(t *testing.T, pkt []byte, lim protocol.Limits) (*protocol.Request, error, []byte) {
	t.Helper()
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	c := NewServerCodec(lim)
	c.Reset(bufio.NewReader(bytes.NewReader(pkt)), w)
	var req protocol.Request
	err := c.ReadRequest(&req)
	w.Flush()
	return &req, err, out.Bytes()
}

func TestParseEveryOpcode(t *testing.T) {
	const vw = "want=7" // value|flags|cas
	cases := []struct {
		name string
		pkt  []byte
		want string
	}{
		{"get", AppendGet(nil, OpGet, k("key"), 0xa1), `get k="key" flags=0 cas=0 ` + vw + ` q=false op=get opaque=a1`},
		{"getq", AppendGet(nil, OpGetQ, k("key"), 1), `get k="key" flags=0 cas=0 ` + vw + ` q=true op=getq opaque=1`},
		{"getk", AppendGet(nil, OpGetK, k("key"), 1), `get k="key" flags=0 cas=0 want=23 q=false op=getk opaque=1`},
		{"getkq", AppendGet(nil, OpGetKQ, k("key"), 1), `get k="key" flags=0 cas=0 want=23 q=true op=getkq opaque=1`},
		{"set", AppendStore(nil, OpSet, k("k"), k("val"), 0xfeedbeef, 3600, 0, 2), `set k="k" v="val" flags=4276993775 exp=3600 cas=0 want=0 q=false op=set opaque=2`},
		{"setq", AppendStore(nil, OpSetQ, k("k"), nil, 1, 0, 0, 2), `set k="k" v="" flags=1 exp=0 cas=0 want=0 q=true op=setq opaque=2`},
		{"set cas", AppendStore(nil, OpSet, k("k"), k("v"), 0, 0, 99, 2), `cas k="k" v="v" flags=0 exp=0 cas=99 want=0 q=false op=set opaque=2`},
		{"add", AppendStore(nil, OpAdd, k("k"), k("v"), 0, 0xffffffff, 0, 2), `add k="k" v="v" flags=0 exp=4294967295 cas=0 want=0 q=false op=add opaque=2`},
		{"addq cas", AppendStore(nil, OpAddQ, k("k"), k("v"), 0, 0, 5, 2), `cas k="k" v="v" flags=0 exp=0 cas=5 want=0 q=true op=addq opaque=2`},
		{"replace", AppendStore(nil, OpReplace, k("k"), k("v"), 0, 0, 0, 2), `replace k="k" v="v" flags=0 exp=0 cas=0 want=0 q=false op=replace opaque=2`},
		{"replaceq", AppendStore(nil, OpReplaceQ, k("k"), k("v"), 0, 0, 0, 2), `replace k="k" v="v" flags=0 exp=0 cas=0 want=0 q=true op=replaceq opaque=2`},
		{"append", AppendConcat(nil, OpAppend, k("k"), k("tail"), 0, 3), `append k="k" v="tail" flags=0 cas=0 want=0 q=false op=append opaque=3`},
		{"appendq cas", AppendConcat(nil, OpAppendQ, k("k"), k("tail"), 8, 3), `append k="k" v="tail" flags=0 cas=8 want=0 q=true op=appendq opaque=3`},
		{"prepend", AppendConcat(nil, OpPrepend, k("k"), nil, 0, 3), `prepend k="k" v="" flags=0 cas=0 want=0 q=false op=prepend opaque=3`},
		{"prependq", AppendConcat(nil, OpPrependQ, k("k"), k("h"), 0, 3), `prepend k="k" v="h" flags=0 cas=0 want=0 q=true op=prependq opaque=3`},
		{"delete", AppendKeyOnly(nil, OpDelete, k("k"), 0, 4), `delete k="k" flags=0 cas=0 want=0 q=false op=delete opaque=4`},
		{"deleteq cas", AppendKeyOnly(nil, OpDeleteQ, k("k"), 12, 4), `delete k="k" flags=0 cas=12 want=0 q=true op=deleteq opaque=4`},
		{"incr", AppendCounter(nil, OpIncrement, k("n"), 5, 10, 60, 0, 5), `incr k="n" flags=0 exp=60 cas=0 delta=5 init=10 viv=true want=0 q=false op=incr opaque=5`},
		{"incrq novivify", AppendCounter(nil, OpIncrementQ, k("n"), 5, 10, NoVivify, 3, 5), `incr k="n" flags=0 cas=3 delta=5 init=10 viv=false want=0 q=true op=incrq opaque=5`},
		{"decr", AppendCounter(nil, OpDecrement, k("n"), 1<<63, 0, 0, 0, 5), `decr k="n" flags=0 exp=0 cas=0 delta=9223372036854775808 init=0 viv=true want=0 q=false op=decr opaque=5`},
		{"decrq", AppendCounter(nil, OpDecrementQ, k("n"), 1, 0, NoVivify, 0, 5), `decr k="n" flags=0 cas=0 delta=1 init=0 viv=false want=0 q=true op=decrq opaque=5`},
		{"touch", AppendTouch(nil, OpTouch, k("k"), 10, 6), `gat k="k" flags=0 exp=10 cas=0 want=6 q=false op=touch opaque=6`},
		{"gat", AppendTouch(nil, OpGAT, k("k"), 10, 6), `gat k="k" flags=0 exp=10 cas=0 ` + vw + ` q=false op=gat opaque=6`},
		{"gatq", AppendTouch(nil, OpGATQ, k("k"), 10, 6), `gat k="k" flags=0 exp=10 cas=0 ` + vw + ` q=true op=gatq opaque=6`},
		{"gatk", AppendTouch(nil, OpGATK, k("k"), 10, 6), `gat k="k" flags=0 exp=10 cas=0 want=23 q=false op=gatk opaque=6`},
		{"gatkq", AppendTouch(nil, OpGATKQ, k("k"), 10, 6), `gat k="k" flags=0 exp=10 cas=0 want=23 q=true op=gatkq opaque=6`},
		{"flush", AppendFlush(nil, OpFlush, 0, 7), `flush_all flags=0 cas=0 want=0 q=false op=flush opaque=7`},
		{"flushq delay", AppendFlush(nil, OpFlushQ, 30, 7), `flush_all flags=0 exp=30 cas=0 want=0 q=true op=flushq opaque=7`},
		{"stat", AppendStat(nil, nil, 8), `stats flags=0 cas=0 want=0 q=false op=stat opaque=8`},
		{"stat group", AppendStat(nil, k("slabs"), 8), `stats flags=0 cas=0 want=0 args="slabs" q=false op=stat opaque=8`},
		{"noop", AppendSimple(nil, OpNoop, 9), `noop flags=0 cas=0 want=0 q=false op=noop opaque=9`},
		{"version", AppendSimple(nil, OpVersion, 9), `version flags=0 cas=0 want=0 q=false op=version opaque=9`},
		{"quit", AppendSimple(nil, OpQuit, 9), `quit flags=0 cas=0 want=0 q=false op=quit opaque=9`},
		{"quitq", AppendSimple(nil, OpQuitQ, 9), `quit flags=0 cas=0 want=0 q=true op=quitq opaque=9`},
		{"too large set becomes delete", AppendStore(nil, OpSetQ, k("k"), make([]byte, 11), 1, 2, 3, 9), `delete k="k" v="" flags=0 cas=0 want=0 q=false op=setq opaque=9`},
	}
	lim := protocol.Limits{MaxItemSize: 10}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err, out := parseOne(t, c.pkt, lim)
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			if len(out) != 0 {
				t.Errorf("ReadRequest wrote %q", out)
			}
			// A too-large set never reads its value into the request.
			if got := describe(req); strings.Replace(got, ` v=""`, "", 1) != strings.Replace(c.want, ` v=""`, "", 1) && got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name    string
		pkt     []byte
		err     error
		replies string // rendered replies, "" for none
	}{
		{"eof", nil, io.EOF, ""},
		{"short header", AppendSimple(nil, OpNoop, 1)[:10], io.ErrUnexpectedEOF, ""},
		{"short key", AppendGet(nil, OpGet, k("abc"), 1)[:26], io.ErrUnexpectedEOF, ""},
		{"short value", AppendStore(nil, OpSet, k("k"), k("value"), 0, 0, 0, 1)[:35], io.ErrUnexpectedEOF, ""},
		{"bad magic", AppendHeader(nil, Header{Magic: 0x81}), protocol.ErrClose, ""},
		{"key beyond body, key unsent", hdr(OpGet, 3, 0, 2, 1), io.ErrUnexpectedEOF, ""},
		{"key beyond body", append(hdr(OpGet, 3, 0, 2, 1), "abc"...), protocol.ErrClose, "op=get st=0x81 opaque=1 val=\"Unknown command\""},
		{"key too long", AppendGet(nil, OpGet, bytes.Repeat(k("a"), 251), 2), protocol.ErrClose, "op=get st=0x4 opaque=2 val=\"Invalid arguments\""},
		{"bad lengths", AppendRequest(nil, Header{Opcode: OpSet, Opaque: 3}, nil, k("k"), k("v")), protocol.ErrClose, "op=set st=0x4 opaque=3 val=\"Invalid arguments\""},
		{"unknown", AppendRequest(nil, Header{Opcode: 0x99, Opaque: 4}, nil, nil, k("body")), protocol.ErrReplied, "op=op(0x99) st=0x81 opaque=4 val=\"Unknown command\""},
		{"verbosity", AppendRequest(nil, Header{Opcode: OpVerbosity, Opaque: 4}, nil, nil, nil), protocol.ErrReplied, "op=verbosity st=0x81 opaque=4 val=\"Unknown command\""},
		{"too large add", AppendStore(nil, OpAddQ, k("k"), make([]byte, 11), 0, 0, 0, 5), protocol.ErrReplied, "op=addq st=0x3 opaque=5 val=\"Too large.\""},
		{"too large append", AppendConcat(nil, OpAppend, k("k"), make([]byte, 11), 0, 5), protocol.ErrReplied, "op=append st=0x3 opaque=5 val=\"Too large.\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err, out := parseOne(t, c.pkt, protocol.Limits{MaxItemSize: 10})
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if got := renderAll(t, out); got != c.replies {
				t.Errorf("replies %q, want %q", got, c.replies)
			}
		})
	}
}

// renderAll renders a reply stream compactly (no magic, extras or key when
// empty).
func renderAll(t *testing.T, out []byte) string {
	t.Helper()
	resps, err := decodeAll(out)
	if err != nil {
		t.Fatalf("decoding replies %q: %v", out, err)
	}
	var lines []string
	for _, r := range resps {
		s := fmt.Sprintf("op=%v st=%#x opaque=%d", r.Opcode, uint16(r.Status), r.Opaque)
		if r.Magic != MagicResponse || r.DataType != 0 {
			s += fmt.Sprintf(" magic=%#x dt=%d", r.Magic, r.DataType)
		}
		if r.CAS != 0 {
			s += fmt.Sprintf(" cas=%d", r.CAS)
		}
		if len(r.Extras) > 0 {
			s += fmt.Sprintf(" ext=%x", r.Extras)
		}
		if len(r.Key) > 0 {
			s += fmt.Sprintf(" key=%q", r.Key)
		}
		if len(r.Value) > 0 {
			s += fmt.Sprintf(" val=%q", r.Value)
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n")
}

func TestEncodeEveryOpcode(t *testing.T) {
	hit := func(r *protocol.Response) { r.AppendHit(0, k("value"), 0xa0b0c0d0, 42, 0) }
	ok := func(cas uint64) func(*protocol.Response) { return func(r *protocol.Response) { r.CAS = cas } }
	st := func(s protocol.Status) func(*protocol.Response) { return func(r *protocol.Response) { r.Status = s } }
	miss := st(protocol.StatusNotFound)
	none := func(*protocol.Response) {}
	cases := []struct {
		name string
		pkt  []byte
		resp func(*protocol.Response)
		want string
	}{
		{"get hit", AppendGet(nil, OpGet, k("kk"), 1), hit, `op=get st=0x0 opaque=1 cas=42 ext=a0b0c0d0 val="value"`},
		{"get miss", AppendGet(nil, OpGet, k("kk"), 1), miss, `op=get st=0x1 opaque=1 val="Not found"`},
		{"get miss as empty OK", AppendGet(nil, OpGet, k("kk"), 1), none, `op=get st=0x1 opaque=1 val="Not found"`},
		{"getq hit", AppendGet(nil, OpGetQ, k("kk"), 1), hit, `op=getq st=0x0 opaque=1 cas=42 ext=a0b0c0d0 val="value"`},
		{"getq miss", AppendGet(nil, OpGetQ, k("kk"), 1), miss, ``},
		{"getk hit", AppendGet(nil, OpGetK, k("kk"), 1), hit, `op=getk st=0x0 opaque=1 cas=42 ext=a0b0c0d0 key="kk" val="value"`},
		{"getk miss", AppendGet(nil, OpGetK, k("kk"), 1), miss, `op=getk st=0x1 opaque=1 key="kk"`},
		{"getkq hit", AppendGet(nil, OpGetKQ, k("kk"), 1), hit, `op=getkq st=0x0 opaque=1 cas=42 ext=a0b0c0d0 key="kk" val="value"`},
		{"getkq miss", AppendGet(nil, OpGetKQ, k("kk"), 1), miss, ``},
		{"get server error", AppendGet(nil, OpGetKQ, k("kk"), 1), func(r *protocol.Response) { r.ServerError("backend down") }, `op=getkq st=0x82 opaque=1 val="backend down"`},
		{"touch hit", AppendTouch(nil, OpTouch, k("kk"), 5, 1), hit, `op=touch st=0x0 opaque=1 cas=42 ext=a0b0c0d0`},
		{"touch miss", AppendTouch(nil, OpTouch, k("kk"), 5, 1), miss, `op=touch st=0x1 opaque=1 val="Not found"`},
		{"gat hit", AppendTouch(nil, OpGAT, k("kk"), 5, 1), hit, `op=gat st=0x0 opaque=1 cas=42 ext=a0b0c0d0 val="value"`},
		{"gatq miss", AppendTouch(nil, OpGATQ, k("kk"), 5, 1), miss, ``},
		{"gatk hit", AppendTouch(nil, OpGATK, k("kk"), 5, 1), hit, `op=gatk st=0x0 opaque=1 cas=42 ext=a0b0c0d0 key="kk" val="value"`},
		{"gatk miss", AppendTouch(nil, OpGATK, k("kk"), 5, 1), miss, `op=gatk st=0x1 opaque=1 key="kk"`},
		{"gatkq hit", AppendTouch(nil, OpGATKQ, k("kk"), 5, 1), hit, `op=gatkq st=0x0 opaque=1 cas=42 ext=a0b0c0d0 key="kk" val="value"`},
		{"set ok", AppendStore(nil, OpSet, k("k"), k("v"), 0, 0, 0, 2), ok(7), `op=set st=0x0 opaque=2 cas=7`},
		{"setq ok", AppendStore(nil, OpSetQ, k("k"), k("v"), 0, 0, 0, 2), ok(7), ``},
		{"cas exists", AppendStore(nil, OpSetQ, k("k"), k("v"), 0, 0, 3, 2), st(protocol.StatusExists), `op=setq st=0x2 opaque=2 val="Data exists for key."`},
		{"cas not found", AppendStore(nil, OpSet, k("k"), k("v"), 0, 0, 3, 2), miss, `op=set st=0x1 opaque=2 val="Not found"`},
		{"add not stored", AppendStore(nil, OpAdd, k("k"), k("v"), 0, 0, 0, 2), st(protocol.StatusNotStored), `op=add st=0x2 opaque=2 val="Data exists for key."`},
		{"replaceq not stored", AppendStore(nil, OpReplaceQ, k("k"), k("v"), 0, 0, 0, 2), st(protocol.StatusNotStored), `op=replaceq st=0x1 opaque=2 val="Not found"`},
		{"append not stored", AppendConcat(nil, OpAppend, k("k"), k("v"), 0, 2), st(protocol.StatusNotStored), `op=append st=0x5 opaque=2 val="Not stored."`},
		{"prependq ok", AppendConcat(nil, OpPrependQ, k("k"), k("v"), 0, 2), ok(9), ``},
		{"append too large result", AppendConcat(nil, OpAppend, k("k"), k("v"), 0, 2), st(protocol.StatusTooLarge), `op=append st=0x5 opaque=2 val="Not stored."`},
		{"set too large by handler", AppendStore(nil, OpSet, k("k"), k("v"), 0, 0, 0, 2), st(protocol.StatusTooLarge), `op=set st=0x3 opaque=2 val="Too large."`},
		{"set client error", AppendStore(nil, OpSet, k("k"), k("v"), 0, 0, 0, 2), func(r *protocol.Response) { r.ClientError("bad data chunk") }, `op=set st=0x4 opaque=2 val="Invalid arguments"`},
		{"setq server error", AppendStore(nil, OpSetQ, k("k"), k("v"), 0, 0, 0, 2), st(protocol.StatusServerError), `op=setq st=0x82 opaque=2 val="Out of memory"`},
		{"delete ok", AppendKeyOnly(nil, OpDelete, k("k"), 0, 3), ok(5), `op=delete st=0x0 opaque=3`},
		{"deleteq ok", AppendKeyOnly(nil, OpDeleteQ, k("k"), 0, 3), none, ``},
		{"deleteq miss", AppendKeyOnly(nil, OpDeleteQ, k("k"), 0, 3), miss, `op=deleteq st=0x1 opaque=3 val="Not found"`},
		{"incr ok", AppendCounter(nil, OpIncrement, k("n"), 1, 0, 0, 0, 4), func(r *protocol.Response) { r.Number, r.CAS = 0x0102030405060708, 11 }, `op=incr st=0x0 opaque=4 cas=11 val="\x01\x02\x03\x04\x05\x06\a\b"`},
		{"incrq ok", AppendCounter(nil, OpIncrementQ, k("n"), 1, 0, 0, 0, 4), ok(1), ``},
		{"decr non-numeric", AppendCounter(nil, OpDecrementQ, k("n"), 1, 0, 0, 0, 4), st(protocol.StatusNonNumeric), `op=decrq st=0x6 opaque=4 val="Non-numeric server-side value for incr or decr"`},
		{"flush", AppendFlush(nil, OpFlush, 0, 5), none, `op=flush st=0x0 opaque=5`},
		{"flushq", AppendFlush(nil, OpFlushQ, 0, 5), none, ``},
		{"stat", AppendStat(nil, nil, 6), func(r *protocol.Response) {
			r.Stats = append(r.Stats, protocol.Stat{Name: "pid", Value: "12"}, protocol.Stat{Name: "uptime", Value: ""})
		}, "op=stat st=0x0 opaque=6 key=\"pid\" val=\"12\"\nop=stat st=0x0 opaque=6 key=\"uptime\"\nop=stat st=0x0 opaque=6"},
		{"stat bad group", AppendStat(nil, k("x"), 6), miss, `op=stat st=0x1 opaque=6 val="Not found"`},
		{"stat bad group as client error", AppendStat(nil, k("x"), 6), func(r *protocol.Response) { r.ClientError("bad command line format") }, `op=stat st=0x1 opaque=6 val="Not found"`},
		{"noop", AppendSimple(nil, OpNoop, 7), none, `op=noop st=0x0 opaque=7`},
		{"version", AppendSimple(nil, OpVersion, 7), func(r *protocol.Response) { r.Message = "1.6.18" }, `op=version st=0x0 opaque=7 val="1.6.18"`},
		{"quit", AppendSimple(nil, OpQuit, 7), none, `op=quit st=0x0 opaque=7`},
		{"quitq", AppendSimple(nil, OpQuitQ, 7), none, ``},
		{"too large set", AppendStore(nil, OpSetQ, k("k"), make([]byte, 11), 0, 0, 0, 8), miss, `op=setq st=0x3 opaque=8 val="Too large."`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			codec := NewServerCodec(protocol.Limits{MaxItemSize: 10})
			codec.Reset(bufio.NewReader(bytes.NewReader(c.pkt)), w)
			var req protocol.Request
			if err := codec.ReadRequest(&req); err != nil {
				t.Fatal(err)
			}
			var resp protocol.Response
			c.resp(&resp)
			if err := codec.WriteResponse(&req, &resp); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if got := renderAll(t, out.Bytes()); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

// A pipeline of getkq for hits and misses closed by a noop answers only the
// hits, in order, then the noop; cut into single bytes it answers the same.
func TestQuietPipeline(t *testing.T) {
	var in []byte
	in = AppendStore(in, OpSetQ, k("a"), k("A"), 1, 0, 0, 1)
	in = AppendStore(in, OpSetQ, k("c"), k("C"), 3, 0, 0, 2)
	in = AppendStore(in, OpAddQ, k("c"), k("x"), 0, 0, 0, 3) // fails: answered
	for i, key := range []string{"a", "b", "c", "d"} {
		in = AppendGet(in, OpGetKQ, k(key), uint32(10+i))
	}
	in = AppendKeyOnly(in, OpDeleteQ, k("a"), 0, 20)
	in = AppendGet(in, OpGetQ, k("a"), 21)
	in = AppendSimple(in, OpNoop, 99)
	want := strings.Join([]string{
		`op=addq st=0x2 opaque=3 val="Data exists for key."`,
		`op=getkq st=0x0 opaque=10 cas=1 ext=00000001 key="a" val="A"`,
		`op=getkq st=0x0 opaque=12 cas=2 ext=00000003 key="c" val="C"`,
		`op=noop st=0x0 opaque=99`,
	}, "\n")
	for _, tc := range []struct {
		name    string
		wrap    func(io.Reader) io.Reader
		bufSize int
	}{
		{"whole", nil, 4096},
		{"one byte reads", iotest.OneByteReader, 4096},
		{"one byte reads, tiny buffer", iotest.OneByteReader, 16},
		{"half reads", iotest.HalfReader, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, reqs := runCodec(in, newMemHandler(), protocol.Limits{}, tc.wrap, tc.bufSize)
			if got := renderAll(t, out); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			if last := reqs[len(reqs)-1]; last != "<EOF>" {
				t.Errorf("ended with %s, want EOF", last)
			}
		})
	}
}

// The same stream must parse to the same requests and replies however it is
// cut, including across the malformed and skipped parts.
func TestChunkingInvariance(t *testing.T) {
	var in []byte
	for _, c := range diffCases() {
		if c.closes || strings.HasPrefix(c.name, "too large") {
			continue // the closing ones end the stream; see below for too large
		}
		for _, st := range c.steps {
			in = append(in, st(nil)...)
		}
	}
	in = AppendStore(in, OpSet, k("big"), bytes.Repeat(k("v"), 65), 0, 0, 0, 1)
	in = AppendConcat(in, OpAppendQ, k("big"), bytes.Repeat(k("v"), 65), 0, 1)
	in = AppendGet(in, OpGet, bytes.Repeat(k("z"), 300), 1) // closes
	lim := protocol.Limits{MaxItemSize: 64}
	wantOut, wantReqs := runCodec(in, newMemHandler(), lim, nil, 64<<10)
	if last := wantReqs[len(wantReqs)-1]; last != "<protocol: connection must close>" {
		t.Fatalf("whole stream ended with %s", last)
	}
	for _, tc := range []struct {
		name    string
		wrap    func(io.Reader) io.Reader
		bufSize int
	}{
		{"one byte", iotest.OneByteReader, 16},
		{"half", iotest.HalfReader, 100},
		{"data err", iotest.DataErrReader, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, reqs := runCodec(in, newMemHandler(), lim, tc.wrap, tc.bufSize)
			if !bytes.Equal(out, wantOut) || strings.Join(reqs, "\n") != strings.Join(wantReqs, "\n") {
				t.Errorf("chunked parse differs: %d vs %d requests, %d vs %d reply bytes", len(reqs), len(wantReqs), len(out), len(wantOut))
			}
		})
	}
}
