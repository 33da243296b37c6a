package binproto

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// checkingHandler asserts what the codec promises every parsed request, then
// passes it on.
type checkingHandler struct {
	t   *testing.T
	lim protocol.Limits
	h   protocol.Handler
}

func (c checkingHandler) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if cap(req.Value) > c.lim.MaxItemSize {
		c.t.Fatalf("value buffer of %d bytes beyond MaxItemSize %d", cap(req.Value), c.lim.MaxItemSize)
	}
	for _, k := range req.Keys {
		if len(k) == 0 || len(k) > c.lim.MaxKeyLen {
			c.t.Fatalf("key of %d bytes", len(k))
		}
	}
	if len(req.Keys) > 1 {
		c.t.Fatalf("%d keys in one binary request", len(req.Keys))
	}
	return c.h.Handle(ctx, req, resp)
}

func FuzzBinaryParse(f *testing.F) {
	// Well-formed requests of every kind.
	f.Add(AppendGet(nil, OpGet, k("key"), 1))
	f.Add(AppendGet(AppendGet(nil, OpGetKQ, k("a"), 1), OpGetK, k("b"), 2))
	f.Add(AppendStore(nil, OpSet, k("k"), k("value"), 7, 60, 0, 1))
	f.Add(AppendStore(nil, OpAddQ, k("k"), k("v"), 0, 0, 99, 1)) // add with CAS: a cas
	f.Add(AppendConcat(nil, OpPrepend, k("k"), k("v"), 0, 1))
	f.Add(AppendCounter(nil, OpIncrement, k("n"), 1, 5, 0, 0, 1))
	f.Add(AppendCounter(nil, OpDecrementQ, k("n"), 1, 5, NoVivify, 0, 1))
	f.Add(AppendTouch(nil, OpGATKQ, k("k"), 10, 1))
	f.Add(AppendFlush(nil, OpFlushQ, 5, 1))
	f.Add(AppendStat(nil, k("items"), 1))
	f.Add(AppendSimple(AppendSimple(nil, OpVersion, 1), OpQuitQ, 2))
	// A set then a quiet pipeline closed by noop.
	f.Add(bytes.Join([][]byte{AppendStore(nil, OpSetQ, k("a"), k("1"), 0, 0, 0, 1),
		AppendGet(nil, OpGetKQ, k("a"), 2), AppendGet(nil, OpGetKQ, k("b"), 3), AppendSimple(nil, OpNoop, 4)}, nil))
	// Malformed: bad magic, key beyond body, key too long, wrong extras.
	f.Add(AppendHeader(nil, Header{Magic: 0x81}))
	f.Add(append(hdr(OpGet, 3, 0, 2, 1), "abc"...))
	f.Add(AppendGet(nil, OpGet, bytes.Repeat(k("k"), 251), 1))
	f.Add(AppendRequest(nil, Header{Opcode: OpSet}, nil, k("k"), k("v")))
	// Unknown opcode whose body skip eats the next packet; verbosity.
	f.Add(append(AppendRequest(nil, Header{Opcode: 0x50}, nil, k("abc"), nil), AppendSimple(nil, OpNoop, 1)...))
	f.Add(AppendRequest(nil, Header{Opcode: OpVerbosity}, ex4(1), nil, nil))
	// Huge lengths that must not be allocated: value far beyond the limit,
	// body length negative as an int32.
	f.Add(hdr(OpSet, 1, 8, 0x7fffffff, 1))
	f.Add(hdr(OpAppendQ, 1, 0, 0xffffffff, 1))
	f.Add(hdr(0x99, 0, 0, 0xffffffff, 1))
	f.Add(hdr(OpGet, 0xffff, 0xff, 0xffffffff, 1))
	// A set whose value the budget refuses (and unlinks), an append too.
	f.Add(bytes.Join([][]byte{AppendStore(nil, OpSet, k("a"), k("1"), 0, 0, 0, 1),
		AppendStore(nil, OpSet, k("a"), bytes.Repeat(k("v"), 2000), 0, 0, 0, 2),
		AppendConcat(nil, OpAppendQ, k("a"), bytes.Repeat(k("v"), 2000), 0, 3),
		AppendGet(nil, OpGetK, k("a"), 4)}, nil))
	// Body length 2^32-1 on a set: "Too large." without swallowing, the
	// next packet is read as a packet.
	f.Add(append(append(hdr(OpSet, 1, 8, 0xffffffff, 1), "\x00\x00\x00\x00\x00\x00\x00\x00k"...), AppendSimple(nil, OpNoop, 2)...))
	// Touch whose body runs into the next packet.
	f.Add(append(append(hdr(OpTouch, 1, 4, 5+24, 1), "\x00\x00\x00\x00k"...), AppendSimple(nil, OpNoop, 2)...))

	lim := protocol.Limits{MaxItemSize: 4096}
	lim.EnsureDefaults()
	f.Fuzz(func(t *testing.T, in []byte) {
		run := func(wrap bool) ([]byte, []string) {
			mh := newMemHandler()
			// A fixed clock: two runs must not straddle a second.
			mh.now = func() time.Time { return time.Unix(1700000000, 0) }
			h := checkingHandler{t: t, lim: lim, h: mh}
			if wrap {
				return runCodec(in, h, lim, iotest.OneByteReader, 16)
			}
			return runCodec(in, h, lim, nil, 4096)
		}
		out, reqs := run(false)
		out2, reqs2 := run(true)
		if !bytes.Equal(out, out2) || strings.Join(reqs, "\n") != strings.Join(reqs2, "\n") {
			t.Fatalf("one-byte reads parse differently:\n%q\n%q", reqs, reqs2)
		}
		// Whatever came in, what went out is well-formed reply packets.
		resps, err := decodeAll(out)
		if err != nil {
			t.Fatalf("reply stream malformed: %v", err)
		}
		for _, r := range resps {
			if r.Magic != MagicResponse || r.DataType != 0 {
				t.Fatalf("bad reply header %+v", r.Header)
			}
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	f.Add(AppendHeader(nil, Header{Magic: MagicResponse, Opcode: OpGet, ExtLen: 4, KeyLen: 1, BodyLen: 6}))
	f.Add(append(AppendHeader(nil, Header{Magic: MagicResponse, ExtLen: 4, KeyLen: 1, BodyLen: 6}), "\x00\x00\x00\x01kv"...))
	f.Add(AppendHeader(nil, Header{Magic: MagicResponse, ExtLen: 4, KeyLen: 9, BodyLen: 6}))
	f.Add(AppendHeader(nil, Header{Magic: MagicResponse, BodyLen: 0xffffffff}))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		buf := make([]byte, 0, 64)
		for {
			resp, err := ReadResponseLimit(r, buf, 1<<16)
			if err != nil {
				return
			}
			if len(resp.Extras)+len(resp.Key)+len(resp.Value) != int(resp.BodyLen) {
				t.Fatalf("parts do not add up to the body: %+v", resp.Header)
			}
			buf = resp.Body[:0]
		}
	})
}
