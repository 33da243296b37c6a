package binproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// The differential test sends the same packets to a real memcached and to the
// codec (with memHandler behind it) and compares the replies byte for byte,
// with CAS values renamed by order of first appearance.

const sentinelOpaque = 0xfeedface

// step builds the bytes to send, given the replies this target has sent so
// far in the case (so a step can use a CAS the target handed out).
type step func(prev []Response) []byte

type diffCase struct {
	name  string
	steps []step
	// closes says the last step ends the connection: no sentinel is
	// sent after it and the reply is read to EOF.
	closes bool
}

func raw(b ...[]byte) step {
	data := bytes.Join(b, nil)
	return func([]Response) []byte { return data }
}

// lastCAS is the newest non-zero CAS among prev.
func lastCAS(prev []Response) uint64 {
	for i := len(prev) - 1; i >= 0; i-- {
		if prev[i].CAS != 0 {
			return prev[i].CAS
		}
	}
	return 0
}

func k(s string) []byte { return []byte(s) }

func ex4(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// hdr builds a request header with explicit (possibly lying) lengths.
func hdr(op Opcode, keyLen uint16, extLen uint8, bodyLen uint32, opaque uint32) []byte {
	return AppendHeader(nil, Header{Magic: MagicRequest, Opcode: op, KeyLen: keyLen, ExtLen: extLen, BodyLen: bodyLen, Opaque: opaque})
}

func set(op Opcode, key, val string, flags, exp uint32, opaque uint32) []byte {
	return AppendStore(nil, op, k(key), k(val), flags, exp, 0, opaque)
}

func diffCases() []diffCase {
	noop := AppendSimple(nil, OpNoop, 77)
	big := bytes.Repeat([]byte("x"), 2<<20)
	return []diffCase{
		{name: "get misses", steps: []step{raw(
			AppendGet(nil, OpGet, k("m:a"), 1), AppendGet(nil, OpGetK, k("m:a"), 2),
			AppendGet(nil, OpGetQ, k("m:a"), 3), AppendGet(nil, OpGetKQ, k("m:a"), 4))}},
		{name: "get hits", steps: []step{raw(
			set(OpSet, "h:a", "hello", 0xdeadbeef, 0, 1),
			AppendGet(nil, OpGet, k("h:a"), 2), AppendGet(nil, OpGetK, k("h:a"), 3),
			AppendGet(nil, OpGetQ, k("h:a"), 4), AppendGet(nil, OpGetKQ, k("h:a"), 5),
			set(OpSet, "h:empty", "", 0, 0, 6), AppendGet(nil, OpGetK, k("h:empty"), 7))}},
		{name: "getkq pipeline", steps: []step{raw(
			set(OpSetQ, "p:1", "one", 1, 0, 1), set(OpSetQ, "p:3", "three", 3, 0, 2),
			AppendGet(nil, OpGetKQ, k("p:0"), 10), AppendGet(nil, OpGetKQ, k("p:1"), 11),
			AppendGet(nil, OpGetKQ, k("p:2"), 12), AppendGet(nil, OpGetKQ, k("p:3"), 13),
			AppendGet(nil, OpGetKQ, k("p:4"), 14), noop)}},
		{name: "add", steps: []step{raw(
			set(OpAdd, "a:a", "1", 0, 0, 1), set(OpAdd, "a:a", "2", 0, 0, 2),
			set(OpAddQ, "a:b", "1", 0, 0, 3), set(OpAddQ, "a:b", "2", 0, 0, 4),
			AppendGet(nil, OpGet, k("a:a"), 5))}},
		{name: "replace", steps: []step{raw(
			set(OpReplace, "r:a", "1", 0, 0, 1), set(OpReplaceQ, "r:a", "1", 0, 0, 2),
			set(OpSet, "r:a", "1", 0, 0, 3), set(OpReplace, "r:a", "2", 9, 0, 4),
			set(OpReplaceQ, "r:a", "3", 9, 0, 5), AppendGet(nil, OpGet, k("r:a"), 6))}},
		{name: "append prepend", steps: []step{raw(
			AppendConcat(nil, OpAppend, k("ap:a"), k("x"), 0, 1), AppendConcat(nil, OpPrepend, k("ap:a"), k("x"), 0, 2),
			AppendConcat(nil, OpAppendQ, k("ap:a"), k("x"), 0, 3), AppendConcat(nil, OpPrependQ, k("ap:a"), k("x"), 0, 4),
			set(OpSet, "ap:a", "mid", 42, 0, 5),
			AppendConcat(nil, OpAppend, k("ap:a"), k(">"), 0, 6), AppendConcat(nil, OpPrepend, k("ap:a"), k("<"), 0, 7),
			AppendConcat(nil, OpAppendQ, k("ap:a"), k("]"), 0, 8), AppendConcat(nil, OpPrependQ, k("ap:a"), k("["), 0, 9),
			AppendConcat(nil, OpAppend, k("ap:a"), nil, 0, 10),
			AppendConcat(nil, OpAppend, k("ap:a"), k("!"), 12345, 11),
			AppendGet(nil, OpGetK, k("ap:a"), 12))}},
		{name: "cas", steps: []step{
			raw(set(OpSet, "c:a", "v1", 0, 0, 1)),
			func(prev []Response) []byte {
				cas := lastCAS(prev)
				return bytes.Join([][]byte{
					AppendStore(nil, OpSet, k("c:a"), k("bad"), 0, 0, cas+1000, 2),
					AppendStore(nil, OpSet, k("c:a"), k("v2"), 0, 0, cas, 3),
					AppendStore(nil, OpSet, k("c:a"), k("stale"), 0, 0, cas, 4),
					AppendStore(nil, OpSet, k("c:missing"), k("v"), 0, 0, cas, 5),
					AppendStore(nil, OpAdd, k("c:missing"), k("v"), 0, 0, cas, 6),
					AppendGet(nil, OpGet, k("c:a"), 7),
				}, nil)
			},
			func(prev []Response) []byte {
				cas := lastCAS(prev)
				return bytes.Join([][]byte{
					AppendStore(nil, OpAdd, k("c:a"), k("v3"), 0, 0, cas, 8),
					AppendStore(nil, OpReplaceQ, k("c:a"), k("v4"), 0, 0, cas, 9),
					AppendStore(nil, OpSetQ, k("c:a"), k("v5"), 0, 0, cas+5, 10),
					AppendGet(nil, OpGet, k("c:a"), 11),
				}, nil)
			},
			func(prev []Response) []byte {
				cas := lastCAS(prev)
				return bytes.Join([][]byte{
					AppendConcat(nil, OpAppend, k("c:a"), k("+"), cas+1, 12),
					AppendConcat(nil, OpAppend, k("c:a"), k("+"), cas, 13),
					AppendGet(nil, OpGet, k("c:a"), 14),
				}, nil)
			},
		}},
		{name: "delete", steps: []step{
			raw(AppendKeyOnly(nil, OpDelete, k("d:a"), 0, 1), AppendKeyOnly(nil, OpDeleteQ, k("d:a"), 0, 2),
				set(OpSet, "d:a", "v", 0, 0, 3), set(OpSet, "d:b", "v", 0, 0, 4)),
			func(prev []Response) []byte {
				cas := lastCAS(prev)
				return bytes.Join([][]byte{
					AppendKeyOnly(nil, OpDelete, k("d:b"), cas+1, 5),
					AppendKeyOnly(nil, OpDelete, k("d:b"), cas, 6),
					AppendKeyOnly(nil, OpDeleteQ, k("d:a"), 0, 7),
					AppendGet(nil, OpGet, k("d:a"), 8),
				}, nil)
			},
		}},
		{name: "incr decr", steps: []step{
			raw(AppendCounter(nil, OpIncrement, k("n:a"), 1, 0, NoVivify, 0, 1),
				AppendCounter(nil, OpDecrementQ, k("n:a"), 1, 0, NoVivify, 0, 2),
				AppendCounter(nil, OpIncrement, k("n:a"), 1, 100, 0, 0, 3),
				AppendCounter(nil, OpIncrement, k("n:a"), 5, 100, 0, 0, 4),
				AppendCounter(nil, OpDecrement, k("n:a"), 1000, 0, 0, 0, 5),
				AppendGet(nil, OpGet, k("n:a"), 6),
				AppendCounter(nil, OpIncrementQ, k("n:a"), 12345, 0, 0, 0, 7),
				AppendCounter(nil, OpDecrementQ, k("n:a"), 45, 0, 0, 0, 8),
				AppendGet(nil, OpGet, k("n:a"), 9),
				set(OpSet, "n:max", "18446744073709551615", 0, 0, 10),
				AppendCounter(nil, OpIncrement, k("n:max"), 2, 0, 0, 0, 11),
				set(OpSet, "n:text", "abc", 0, 0, 12),
				AppendCounter(nil, OpIncrement, k("n:text"), 1, 0, 0, 0, 13),
				AppendCounter(nil, OpDecrementQ, k("n:text"), 1, 0, 0, 0, 14),
				AppendCounter(nil, OpIncrementQ, k("n:viv"), 1, 7, 0, 0, 15),
				AppendGet(nil, OpGetK, k("n:viv"), 16)),
			func(prev []Response) []byte {
				cas := lastCAS(prev)
				return bytes.Join([][]byte{
					AppendCounter(nil, OpIncrement, k("n:viv"), 1, 0, 0, cas+9, 17),
					AppendCounter(nil, OpIncrement, k("n:viv"), 1, 0, 0, cas, 18),
				}, nil)
			},
		}},
		{name: "touch gat", steps: []step{raw(
			AppendTouch(nil, OpTouch, k("t:a"), 100, 1), AppendTouch(nil, OpGAT, k("t:a"), 100, 2),
			AppendTouch(nil, OpGATK, k("t:a"), 100, 3), AppendTouch(nil, OpGATQ, k("t:a"), 100, 4),
			AppendTouch(nil, OpGATKQ, k("t:a"), 100, 5),
			set(OpSet, "t:a", "val", 7, 0, 6),
			AppendTouch(nil, OpTouch, k("t:a"), 100, 7), AppendTouch(nil, OpGAT, k("t:a"), 100, 8),
			AppendTouch(nil, OpGATK, k("t:a"), 100, 9), AppendTouch(nil, OpGATQ, k("t:a"), 0, 10),
			AppendTouch(nil, OpGATKQ, k("t:a"), 0, 11),
			// An absolute time in the past expires the item.
			AppendTouch(nil, OpTouch, k("t:a"), 1000000000, 12), AppendGet(nil, OpGet, k("t:a"), 13))}},
		{name: "expired on set", steps: []step{raw(
			set(OpSet, "e:a", "v", 0, 1000000000, 1), AppendGet(nil, OpGet, k("e:a"), 2),
			set(OpSet, "e:b", "v", 0, 3600, 3), AppendGet(nil, OpGet, k("e:b"), 4))}},
		{name: "binary keys", steps: []step{raw(
			set(OpSet, "sp ace\x01\x7f", "v", 0, 0, 1), AppendGet(nil, OpGetK, k("sp ace\x01\x7f"), 2),
			set(OpSet, strings.Repeat("L", 250), "v", 0, 0, 3), AppendGet(nil, OpGetK, k(strings.Repeat("L", 250)), 4))}},
		{name: "noop version", steps: []step{raw(AppendSimple(nil, OpNoop, 1), AppendSimple(nil, OpVersion, 2))}},
		{name: "stat groups", steps: []step{raw(AppendStat(nil, k("reset"), 1), AppendStat(nil, k("bogus"), 2),
			AppendStat(nil, k("detail bogus"), 3))}},
		{name: "ignored header fields", steps: []step{raw(
			AppendRequest(nil, Header{Opcode: OpNoop, DataType: 1, Status: 5, Opaque: 1}, nil, nil, nil),
			AppendRequest(nil, Header{Opcode: OpGet, DataType: 9, Status: 0xffff, Opaque: 2, CAS: 77}, nil, k("i:a"), nil))}},
		{name: "body beyond key stays in stream", steps: []step{raw(
			hdr(OpTouch, 3, 4, 7+24, 1), ex4(0), k("s:a"), AppendSimple(nil, OpNoop, 2),
			hdr(OpStat, 5, 0, 5+24, 3), k("reset"), AppendSimple(nil, OpNoop, 4))}},
		{name: "unknown opcodes", steps: []step{raw(
			AppendRequest(nil, Header{Opcode: 0x50, Opaque: 1}, nil, nil, nil),
			AppendRequest(nil, Header{Opcode: 0xff, Opaque: 2}, nil, nil, k("body")),
			// memcached skips the body length after the key: 3 more bytes.
			AppendRequest(nil, Header{Opcode: 0x40, Opaque: 3}, nil, k("abc"), nil), k("XYZ"),
			AppendRequest(nil, Header{Opcode: OpVerbosity, Opaque: 4}, ex4(1), nil, nil), k("JUNK"),
			AppendRequest(nil, Header{Opcode: OpVerbosity, Opaque: 5}, nil, nil, nil),
			AppendRequest(nil, Header{Opcode: 0x1f, Opaque: 6}, k("12345678"), k("kk"), k("vv")), k("0123456789"),
			// A body length that is negative as a C int skips nothing.
			hdr(0x60, 0, 0, 0xffffffff, 7),
			AppendSimple(nil, OpSASLList, 8),
			AppendRequest(nil, Header{Opcode: OpSASLAuth, Opaque: 9}, nil, k("PLAIN"), k("\x00u\x00p")),
			AppendRequest(nil, Header{Opcode: OpSASLStep, Opaque: 10}, nil, k("PLAIN"), nil))}},
		{name: "too large set removes old", steps: []step{raw(
			set(OpSet, "b:a", "old", 0, 0, 1), AppendStore(nil, OpSet, k("b:a"), big, 0, 0, 0, 2),
			AppendGet(nil, OpGet, k("b:a"), 3),
			set(OpSet, "b:a", "old", 0, 0, 4), AppendStore(nil, OpSetQ, k("b:a"), big, 0, 0, 0, 5),
			AppendGet(nil, OpGet, k("b:a"), 6),
			set(OpSet, "b:a", "old", 0, 0, 7), AppendStore(nil, OpSet, k("b:a"), big, 0, 0, 99, 8),
			AppendGet(nil, OpGet, k("b:a"), 9))}},
		{name: "too large others keep old", steps: []step{raw(
			set(OpSet, "b:b", "old", 0, 0, 1),
			AppendStore(nil, OpAdd, k("b:b"), big, 0, 0, 0, 2), AppendStore(nil, OpAddQ, k("b:c"), big, 0, 0, 0, 3),
			AppendStore(nil, OpReplace, k("b:b"), big, 0, 0, 0, 4), AppendStore(nil, OpReplaceQ, k("b:b"), big, 0, 0, 0, 5),
			AppendConcat(nil, OpAppend, k("b:b"), big, 0, 6), AppendConcat(nil, OpPrependQ, k("b:b"), big, 0, 7),
			AppendGet(nil, OpGet, k("b:b"), 8))}},
		{name: "flush", steps: []step{raw(
			set(OpSet, "f:a", "v", 0, 0, 1), AppendFlush(nil, OpFlush, 0, 2), AppendGet(nil, OpGet, k("f:a"), 3),
			set(OpSet, "f:a", "v", 0, 0, 4), AppendFlush(nil, OpFlushQ, 0, 5), AppendGet(nil, OpGet, k("f:a"), 6),
			set(OpSet, "f:a", "v", 0, 0, 7),
			AppendRequest(nil, Header{Opcode: OpFlush, Opaque: 8}, ex4(0), nil, nil), AppendGet(nil, OpGet, k("f:a"), 9))}},
		{name: "quit", closes: true, steps: []step{raw(AppendSimple(nil, OpNoop, 1), AppendSimple(nil, OpQuit, 2), noop)}},
		{name: "quitq", closes: true, steps: []step{raw(AppendSimple(nil, OpNoop, 1), AppendSimple(nil, OpQuitQ, 2), noop)}},
		{name: "bad magic", closes: true, steps: []step{raw(AppendSimple(nil, OpNoop, 1),
			AppendHeader(nil, Header{Magic: 0x81, Opcode: OpNoop}), noop)}},
		{name: "bad magic zero", closes: true, steps: []step{raw(AppendSimple(nil, OpNoop, 1),
			AppendHeader(nil, Header{Magic: 0x00, Opcode: OpNoop}), noop)}},
		{name: "key beyond body", closes: true, steps: []step{raw(hdr(OpGet, 3, 0, 2, 1), k("abc"), noop)}},
		{name: "key and extras beyond body", closes: true, steps: []step{raw(hdr(OpSet, 3, 8, 10, 1), k("12345678abc"), noop)}},
		{name: "key too long", closes: true, steps: []step{raw(AppendGet(nil, OpGet, k(strings.Repeat("a", 251)), 1), noop)}},
		{name: "key too long unknown op", closes: true, steps: []step{raw(AppendGet(nil, 0x70, k(strings.Repeat("a", 300)), 1), noop)}},
		{name: "key beyond read buffer", closes: true, steps: []step{raw(AppendGet(nil, OpGet, k(strings.Repeat("a", 16361)), 1), noop)}},
		{name: "get empty key", closes: true, steps: []step{raw(AppendGet(nil, OpGetK, nil, 1), noop)}},
		{name: "get with extras", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpGetQ, Opaque: 1}, ex4(0), k("x"), nil), noop)}},
		{name: "get with value", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpGet, Opaque: 1}, nil, k("x"), k("v")), noop)}},
		{name: "set short extras", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpSetQ, Opaque: 1}, ex4(0), k("x"), k("v")), noop)}},
		{name: "set empty key", closes: true, steps: []step{raw(AppendStore(nil, OpSet, nil, k("v"), 0, 0, 0, 1), noop)}},
		{name: "append with extras", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpAppend, Opaque: 1}, ex4(0), k("x"), k("v")), noop)}},
		{name: "delete with extras", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpDelete, Opaque: 1}, ex4(0), k("x"), nil), noop)}},
		{name: "incr with value", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpIncrement, Opaque: 1}, make([]byte, 20), k("x"), k("1")), noop)}},
		{name: "incr short extras", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpDecrementQ, Opaque: 1}, make([]byte, 8), k("x"), nil), noop)}},
		{name: "touch no extras", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpTouch, Opaque: 1}, nil, k("x"), nil), noop)}},
		{name: "gatkq no key", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpGATKQ, Opaque: 1}, ex4(0), nil, nil), noop)}},
		{name: "noop with body", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpNoop, Opaque: 1}, nil, nil, k("v")), noop)}},
		{name: "version with key", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpVersion, Opaque: 1}, nil, k("x"), nil), noop)}},
		{name: "quitq with extras", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpQuitQ, Opaque: 1}, ex4(0), nil, nil), noop)}},
		{name: "flush extras 2", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpFlush, Opaque: 1}, []byte{0, 0}, nil, nil), noop)}},
		{name: "flush with value", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpFlushQ, Opaque: 1}, nil, nil, k("abcd")), noop)}},
		{name: "stat with extras", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpStat, Opaque: 1}, ex4(0), nil, nil), noop)}},
		{name: "sasl auth without key", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpSASLAuth, Opaque: 1}, nil, nil, k("x")), noop)}},
		{name: "sasl list with body", closes: true, steps: []step{raw(AppendRequest(nil, Header{Opcode: OpSASLList, Opaque: 1}, nil, nil, k("x")), noop)}},
	}
}

// transcript runs c against addr and renders every reply, CAS renamed.
func transcript(t *testing.T, addr string, c diffCase) []string {
	t.Helper()
	conn := dial(t, addr)
	defer conn.Close()
	r := bufio.NewReader(conn)
	cas := map[uint64]int{}
	var prev []Response
	var out []string
	for i, st := range c.steps {
		data := st(prev)
		last := i == len(c.steps)-1
		if !(last && c.closes) {
			data = AppendSimple(data, OpNoop, sentinelOpaque)
		}
		werr := make(chan error, 1)
		go func() {
			_, err := conn.Write(data)
			werr <- err
		}()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			resp, err := ReadResponse(r, nil)
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
					out = append(out, "<closed>")
					<-werr
					return out
				}
				t.Fatalf("step %d: reading reply: %v (so far %q)", i, err, out)
			}
			if resp.Opcode == OpNoop && resp.Opaque == sentinelOpaque {
				break
			}
			prev = append(prev, resp)
			out = append(out, render(resp, cas))
		}
		if err := <-werr; err != nil {
			t.Fatalf("step %d: write: %v", i, err)
		}
	}
	if c.closes {
		t.Fatalf("connection not closed; replies %q", out)
	}
	return out
}

func render(r Response, cas map[uint64]int) string {
	c := "0"
	if r.CAS != 0 {
		n, ok := cas[r.CAS]
		if !ok {
			n = len(cas) + 1
			cas[r.CAS] = n
		}
		c = fmt.Sprintf("#%d", n)
	}
	return fmt.Sprintf("m=%#x op=%v st=%#x dt=%d opaque=%d cas=%s ext=%x key=%q val=%q",
		r.Magic, r.Opcode, uint16(r.Status), r.DataType, r.Opaque, c, r.Extras, r.Key, r.Value)
}

func TestDifferentialMemcached(t *testing.T) {
	mc := mctest.Start(t)
	ours := startOurs(t, newMemHandler(), protocol.Limits{})
	for _, c := range diffCases() {
		t.Run(c.name, func(t *testing.T) {
			want := transcript(t, mc.Addr, c)
			got := transcript(t, ours, c)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("replies differ\nmemcached:\n  %s\nours:\n  %s", strings.Join(want, "\n  "), strings.Join(got, "\n  "))
			}
		})
	}
}
