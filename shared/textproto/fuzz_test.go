package textproto

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// fuzzLimits are small so that the bounds are exercised by short inputs.
var fuzzLimits = protocol.Limits{MaxKeyLen: 250, MaxItemSize: 1024, MaxKeys: 16, MaxLineLen: 20000}

// checkedHandler asserts what every parsed request must satisfy, then
// serves it from the test store.
func checkedHandler(t *testing.T) protocol.Handler {
	h := newMemHandler()
	return protocol.HandlerFunc(func(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
		if cap(req.Value) > fuzzLimits.MaxItemSize {
			t.Fatalf("value buffer cap %d beyond MaxItemSize", cap(req.Value))
		}
		if len(req.Keys) > fuzzLimits.MaxKeys {
			t.Fatalf("%d keys beyond MaxKeys", len(req.Keys))
		}
		for _, k := range req.Keys {
			if len(k) == 0 || len(k) > fuzzLimits.MaxKeyLen {
				t.Fatalf("key of %d bytes", len(k))
			}
		}
		if req.Command == protocol.CmdNone {
			t.Fatalf("request without a command: %+v", req)
		}
		if req.Command.IsStorage() != (req.Opcode == opMetaMS || (req.Opcode == opText && req.Command.IsStorage())) {
			t.Fatalf("storage command from %q", req.Opcode)
		}
		return h.Handle(ctx, req, resp)
	})
}

// fuzzServe checks the codec's properties on one input: no panic, bounded
// buffers, and the same replies whether the input arrives whole or in
// pieces.
func fuzzServe(t *testing.T, in []byte) {
	// A hang is a bug too: report it with its input instead of letting the
	// fuzzing engine stall silently until its deadline.
	done := make(chan struct{})
	go func() {
		defer close(done)
		fuzzServeOnce(t, in)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		panic(fmt.Sprintf("codec hung on input %q", in))
	}
}

func fuzzServeOnce(t *testing.T, in []byte) {
	whole, wholeClosed := serve(codecFor(fuzzLimits), checkedHandler(t), bytes.NewReader(in), 4096)
	c := codecFor(fuzzLimits)
	bytewise, byteClosed := serve(c, checkedHandler(t), iotest.OneByteReader(bytes.NewReader(in)), 16)
	if whole != bytewise || wholeClosed != byteClosed {
		t.Fatalf("chunking changed the reply:\n whole %q %v\n bytes %q %v", whole, wholeClosed, bytewise, byteClosed)
	}
	if cap(c.long) > 2*(fuzzLimits.MaxLineLen+4096) {
		t.Fatalf("line buffer grew to %d", cap(c.long))
	}
	if u := c.budget.Used(); u != 0 {
		t.Fatalf("the value budget still holds %d bytes after the connection", u)
	}
	// The same input served in groups as large as the key limit answers
	// the same bytes: how a get line is cut into groups never shows.
	c = codecFor(fuzzLimits)
	c.SetGroupKeys(fuzzLimits.MaxKeys)
	if one, closed := serve(c, checkedHandler(t), bytes.NewReader(in), 4096); one != whole || closed != wholeClosed {
		t.Fatalf("group size changed the reply:\n groups of %d %q %v\n groups of %d %q %v",
			fuzzGroupKeys, whole, wholeClosed, fuzzLimits.MaxKeys, one, closed)
	}
}

// fuzzGroupKeys is small so that get lines are cut into groups, and
// fuzzBudget so that values over 1/8 more than it are refused (each
// codec gets a budget of its own: one value in flight at a time).
const (
	fuzzGroupKeys = 3
	fuzzBudget    = 600
)

func codecFor(l protocol.Limits) *ServerCodec {
	c := NewServerCodec(l)
	c.now = newTestCodec().now
	c.SetGroupKeys(fuzzGroupKeys)
	c.SetBudget(protocol.NewBudget(fuzzBudget))
	return c
}

func FuzzTextParse(f *testing.F) {
	for _, s := range []string{
		"get a b c\r\n",                             // multi-get
		"gets a\r\ngat 10 a\r\ngats 0 a b\r\n",      // the rest of the family
		"gat 10\r\n",                                // no keys: END
		"set a 1 2 3\r\nabc\r\nget a\r\n",           // store then read
		"set a 0 0 3 noreply\r\nabc\r\n",            // quiet store
		"set a 0 0 1\r\nxyz\r\nget a\r\n",           // bad chunk: rest read as commands
		"set a 0 0 2000\r\n",                        // too large: swallows 2002 bytes
		"set a 0 0 4294967297\r\nx\r\n",             // length wraps to 1
		"set a 0 0 -1\r\n",                          // negative length
		"cas a 0 0 1 18446744073709551615\r\nx\r\n", // largest unique
		"add a 0 0 1\r\nx\r\nappend a 0 0 1\r\ny\r\nprepend a 0 0 1\r\nz\r\nreplace a 0 0 1\r\nw\r\n",
		"incr a 1\r\ndecr a 18446744073709551615\r\nincr a -1\r\n",
		"touch a 10\r\ntouch a x noreply\r\n",
		"delete a\r\ndelete a 0\r\ndelete a 0 noreply\r\ndelete a 1\r\n",
		"flush_all\r\nflush_all 10 noreply\r\nflush_all x\r\n",
		"stats\r\nstats items\r\nstats reset\r\nversion\r\nverbosity 1\r\n",
		"get " + strings.Repeat("k", 251) + "\r\n", // key too long
		"get a\x00b\r\n",                           // NUL ends the line
		"get a\r\r\n",                              // CR kept in key
		"\r\n\n \r\n",                              // empty lines
		"set a 0 0 1\nx\r\n",                       // LF-only terminators
		"quit\r\nget a\r\n",                        // nothing after quit
		strings.Repeat("z", 17000),                 // long garbage: close
		"get " + strings.Repeat("k ", 20) + "\r\n", // more keys than MaxKeys
		"set a 0 0 1\r\nx\r\nget a b a a c a\r\ngets a a\r\ngat 0 a a a a\r\n", // groups, repeats
		"get a b c d e f " + strings.Repeat("k", 251) + "\r\nget a\r\n",        // late bad key
		"set a 0 0 1000\r\n" + strings.Repeat("v", 1000) + "\r\nget a\r\n",     // over the budget
		"append a 0 0 900 noreply\r\n" + strings.Repeat("v", 900) + "\r\n",
		"POST / HTTP/1.1\r\nset a 0 0 1\r\nx\r\n", // HTTP: close
		"xx t t t t t t t t t t t t t t t t t t t t t HTTP/1.1 x\r\nmg a HTTP/1.1\r\nP HTTP/1.1\r\n",
		"gx HTTP/1.1\r\nreplace HTTP/1.1\r\nZz a\x00 HTTP/1.1\r\n",
		"get " + strings.Repeat("k ", 8200) + "\r\nget k\r\n", // line over the budget
		"get " + strings.Repeat("k ", 8190) + "\r\nget k\r\n", // line just within it
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzServe(t, in)
	})
}

func FuzzMetaParse(f *testing.F) {
	for _, s := range []string{
		"mg a v f t c s k Oo q h l u\r\n",             // every mg return flag
		"mg a T30 v\r\nmg a N30 v\r\nmg a R30 v\r\n",  // gat, vivify, recache
		"mg YWJj b k v\r\nmg Y!Q== b\r\nmg YQ= b\r\n", // base64 keys, lenient and bad
		"mg a v v\r\nmg a z\r\nmg a \xff\r\n",         // duplicate, invalid, high byte
		"mg a O" + strings.Repeat("o", 40) + "\r\n",   // opaque too long
		"mg a 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\r\n",
		"ms a 3 F5 T0 c k O1 b\r\nabc\r\n",         // ms with return flags
		"ms a 3 MA\r\nabc\r\nms a 3 MX\r\nabc\r\n", // modes, invalid mode swallows
		"ms a 3 C1 I\r\nabc\r\nms a 3 ME C1\r\nabc\r\n",
		"ms a 2000\r\n", // too large
		"ms a 1000 q\r\n" + strings.Repeat("v", 1000) + "\r\n", // over the budget
		"ms a 3 q\r\nabcd\r\n",                                 // bad chunk, q still answers
		"md a q k O1\r\nmd a C1 I T30\r\nmd a x\r\n",
		"ma a N0 J5 v t c k\r\nma a MD D3 q\r\nma a Mxx\r\n",
		"mn\r\nme a\r\nme YQ== b\r\nme a b\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzServe(t, in)
	})
}

// FuzzTextMetaSame: "set" and its meta form "ms" parse to the same request,
// and so do "get"/"mg" and "delete"/"md".
func FuzzTextMetaSame(f *testing.F) {
	f.Add("key", uint32(5), int32(100), []byte("value"))
	f.Add("k\t", uint32(0), int32(-1), []byte(""))
	f.Fuzz(func(t *testing.T, key string, flags uint32, exptime int32, value []byte) {
		if len(value) > fuzzLimits.MaxItemSize || !ValidTextKey([]byte(key), 250) {
			return
		}
		e := strconv.FormatInt(int64(exptime), 10)
		fl := strconv.FormatUint(uint64(flags), 10)
		n := strconv.Itoa(len(value))
		pairs := [][2]string{
			{"set " + key + " " + fl + " " + e + " " + n + "\r\n" + string(value) + "\r\n",
				"ms " + key + " " + n + " F" + fl + " T" + e + "\r\n" + string(value) + "\r\n"},
			{"get " + key + "\r\n", "mg " + key + " v f\r\n"},
			{"delete " + key + "\r\n", "md " + key + "\r\n"},
			{"touch " + key + " " + e + "\r\n", "mg " + key + " T" + e + "\r\n"},
		}
		for _, p := range pairs {
			text, err1, _ := parseOne(t, p[0])
			meta, err2, _ := parseOne(t, p[1])
			if err1 != nil || err2 != nil {
				t.Fatalf("%q: %v / %q: %v", p[0], err1, p[1], err2)
			}
			if text.Keys != meta.Keys || text.Value != meta.Value || text.Flags != meta.Flags ||
				(text.Cmd != meta.Cmd && !(text.Cmd == protocol.CmdTouch && meta.Cmd == protocol.CmdGat)) ||
				text.Exptime != meta.Exptime {
				t.Fatalf("%q -> %+v\n%q -> %+v", p[0], text, p[1], meta)
			}
		}
	})
}
