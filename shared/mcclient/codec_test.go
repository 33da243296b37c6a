package mcclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

var now = time.Unix(1_700_000_000, 0)

// encodeAll runs prepare and appendOp as the writer would.
func encodeAll(reqs ...*protocol.Request) (string, []op, []*protocol.Response) {
	return encodeWith(false, reqs...)
}

// encodeWith encodes reqs, with Config.ClassicGets set to classic.
func encodeWith(classic bool, reqs ...*protocol.Request) (string, []op, []*protocol.Response) {
	resps := make([]*protocol.Response, len(reqs))
	for i := range resps {
		resps[i] = &protocol.Response{}
	}
	ops := prepare(nil, reqs, resps, 1<<20, maxKeyLen, now, classic)
	var buf []byte
	for i := range ops {
		buf = appendOp(buf, &ops[i], reqs[ops[i].req])
	}
	return string(buf), ops, resps
}

func TestEncode(t *testing.T) {
	with := func(r *protocol.Request, f func(*protocol.Request)) *protocol.Request { f(r); return r }
	cases := []struct {
		req  *protocol.Request
		want string
	}{
		{rq(protocol.CmdGet, "", "a", "b"), "mg a v f c t\r\nmg b v f c t\r\n"},
		{rq(protocol.CmdGets, "", "a"), "mg a v f c t\r\n"},
		{with(rq(protocol.CmdGat, "", "a"), func(r *protocol.Request) { r.Exptime = 60 }), "mg a v f c t T60\r\n"},
		{with(rq(protocol.CmdGats, "", "a b"), func(r *protocol.Request) { r.Exptime = -1 }), "mg YSBi v f c t T-1 b\r\n"},
		{with(rq(protocol.CmdTouch, "", "a"), func(r *protocol.Request) { r.Exptime = 10 }), "mg a T10\r\n"},
		{with(rq(protocol.CmdSet, "xy", "k"), func(r *protocol.Request) { r.Flags, r.Exptime = 5, 100 }),
			"ms k 2 F5 T100 MS c\r\nxy\r\n"},
		{rq(protocol.CmdAdd, "", "k"), "ms k 0 F0 T0 ME c\r\n\r\n"},
		{rq(protocol.CmdReplace, "v", "k"), "ms k 1 F0 T0 MR c\r\nv\r\n"},
		{rq(protocol.CmdAppend, "v", "k"), "ms k 1 F0 T0 MA c\r\nv\r\n"},
		{rq(protocol.CmdPrepend, "v", "k"), "ms k 1 F0 T0 MP c\r\nv\r\n"},
		{rq(protocol.CmdCas, "v", "k"), "ms k 1 F0 T0 MS c C0\r\nv\r\n"},
		{with(rq(protocol.CmdSet, "v", "\x00"), func(r *protocol.Request) {
			r.CAS, r.NewCAS, r.Invalidate = 7, 9, true
		}), "ms AA== 1 F0 T0 MS c C7 E9 I b\r\nv\r\n"},
		{rq(protocol.CmdDelete, "", "k"), "md k\r\n"},
		{with(rq(protocol.CmdDelete, "", "k"), func(r *protocol.Request) { r.CAS, r.Invalidate, r.Exptime = 3, true, 30 }),
			"md k C3 I T30\r\n"},
		{with(rq(protocol.CmdIncr, "", "k"), func(r *protocol.Request) { r.Delta = 2 }), "ma k D2 MI v c t\r\n"},
		{with(rq(protocol.CmdDecr, "", "k k"), func(r *protocol.Request) {
			r.Delta, r.Vivify, r.Exptime, r.Initial, r.CAS = 1, true, 0, 10, 4
		}), "ma ayBr D1 MD v c t C4 N0 J10 b\r\n"},
		{rq(protocol.CmdFlushAll, ""), "flush_all\r\n"},
		{with(rq(protocol.CmdFlushAll, ""), func(r *protocol.Request) { r.Exptime = 5 }), "flush_all 5\r\n"},
		{rq(protocol.CmdVersion, ""), "version\r\n"},
		{with(rq(protocol.CmdVerbosity, ""), func(r *protocol.Request) { r.Args = []byte("1") }), "verbosity 1\r\n"},
		{rq(protocol.CmdStats, ""), "stats\r\n"},
		{with(rq(protocol.CmdStats, ""), func(r *protocol.Request) { r.Args = []byte("slabs") }), "stats slabs\r\n"},
	}
	for _, tc := range cases {
		got, _, resps := encodeAll(tc.req)
		if got != tc.want {
			t.Errorf("%v %q: encoded %q, want %q", tc.req.Command, tc.req.Keys, got, tc.want)
		}
		if resps[0].Status != protocol.StatusOK {
			t.Errorf("%v: local status %v", tc.req.Command, resps[0].Status)
		}
	}
}

func TestEncodeLocalAnswers(t *testing.T) {
	big := rq(protocol.CmdSet, "", "k")
	big.Value = make([]byte, 1<<20+1)
	cases := []struct {
		req  *protocol.Request
		want protocol.Status
	}{
		{rq(protocol.CmdGet, ""), protocol.StatusClientError},
		{rq(protocol.CmdGet, "", "ok", strings.Repeat("x", 251)), protocol.StatusClientError},
		{rq(protocol.CmdSet, "", strings.Repeat("\x01", 187)), protocol.StatusClientError},
		{rq(protocol.CmdSet, "", "a", "b"), protocol.StatusClientError},
		{big, protocol.StatusTooLarge},
		{&protocol.Request{Command: protocol.CmdStats, Args: []byte("a\nb")}, protocol.StatusClientError},
		{&protocol.Request{Command: protocol.CmdQuit}, protocol.StatusClientError},
		{&protocol.Request{Command: protocol.CmdNoop}, protocol.StatusOK},
	}
	for _, tc := range cases {
		got, _, resps := encodeAll(tc.req)
		if got != "" || resps[0].Status != tc.want {
			t.Errorf("%v %d keys: sent %q, status %v, want nothing sent and %v", tc.req.Command, len(tc.req.Keys), got, resps[0].Status, tc.want)
		}
	}
}

// decode parses reply for the ops of reqs, as the reader would.
func decode(t *testing.T, reply string, reqs ...*protocol.Request) ([]*protocol.Response, error) {
	t.Helper()
	return decodeWith(t, false, reply, reqs...)
}

func decodeWith(t *testing.T, classic bool, reply string, reqs ...*protocol.Request) ([]*protocol.Response, error) {
	t.Helper()
	_, ops, resps := encodeWith(classic, reqs...)
	rr := replyReader{br: bufio.NewReaderSize(strings.NewReader(reply), 64), maxValue: 1000}
	var firstErr error
	for i := range ops {
		if err := rr.read(&ops[i], resps[ops[i].req], reqs[ops[i].req].Keys, now); err != nil {
			if !errors.Is(err, errValueTooLarge) {
				return resps, err
			}
			firstErr = err
		}
	}
	if rest, _ := rr.br.Peek(1); len(rest) > 0 {
		t.Fatalf("reply %q not fully consumed", reply)
	}
	return resps, firstErr
}

func TestDecode(t *testing.T) {
	get := rq(protocol.CmdGet, "", "a", "b", "c")
	resps, err := decode(t, "VA 2 f3 c9 t-1\r\nhi\r\nEN\r\nVA 0 f0 c1 t100 X W Z\r\n\r\n", get)
	if err != nil {
		t.Fatal(err)
	}
	h := resps[0].Hits
	if len(h) != 2 || string(h[0].Value) != "hi" || h[0].Flags != 3 || h[0].CAS != 9 || h[0].Exptime != 0 ||
		h[1].Index != 2 || len(h[1].Value) != 0 || h[1].Exptime != now.Unix()+100 || !h[1].Stale || !h[1].Win || !h[1].Won {
		t.Fatalf("hits %+v", h)
	}

	// A value longer than the read buffer goes through the scratch buffer.
	long := strings.Repeat("z", 500)
	resps, err = decode(t, "VA 500 f0 c1 t-1\r\n"+long+"\r\n", rq(protocol.CmdGet, "", "a"))
	if err != nil || string(resps[0].Hits[0].Value) != long {
		t.Fatalf("long value: %v", err)
	}

	// Oversized values are skipped, the rest still parsed.
	resps, err = decode(t, "VA 1001 f0\r\n"+strings.Repeat("z", 1001)+"\r\nVA 1 f0\r\nq\r\n", rq(protocol.CmdGet, "", "a", "b"))
	if !errors.Is(err, errValueTooLarge) || len(resps[0].Hits) != 1 || resps[0].Hits[0].Index != 1 {
		t.Fatalf("oversized: %v %+v", err, resps[0].Hits)
	}

	status := []struct {
		req   *protocol.Request
		reply string
		want  protocol.Status
		msg   string
	}{
		{rq(protocol.CmdSet, "v", "k"), "HD c77\r\n", protocol.StatusOK, ""},
		{rq(protocol.CmdAdd, "v", "k"), "NS c0\r\n", protocol.StatusNotStored, ""},
		{rq(protocol.CmdCas, "v", "k"), "EX c0\r\n", protocol.StatusExists, ""},
		{rq(protocol.CmdCas, "v", "k"), "NF c0\r\n", protocol.StatusNotFound, ""},
		{rq(protocol.CmdSet, "v", "k"), "SERVER_ERROR object too large for cache\r\n", protocol.StatusTooLarge, msgTooLarge},
		{rq(protocol.CmdSet, "v", "k"), "SERVER_ERROR out of memory storing object\r\n", protocol.StatusServerError, "out of memory storing object"},
		{rq(protocol.CmdSet, "v", "k"), "CLIENT_ERROR invalid flag\r\n", protocol.StatusClientError, "invalid flag"},
		{rq(protocol.CmdTouch, "", "k"), "HD\r\n", protocol.StatusOK, ""},
		{rq(protocol.CmdTouch, "", "k"), "EN\r\n", protocol.StatusNotFound, ""},
		{rq(protocol.CmdDelete, "", "k"), "HD\r\n", protocol.StatusOK, ""},
		{rq(protocol.CmdDelete, "", "k"), "NF\r\n", protocol.StatusNotFound, ""},
		{rq(protocol.CmdDelete, "", "k"), "EX\r\n", protocol.StatusExists, ""},
		{rq(protocol.CmdIncr, "", "k"), "NF\r\n", protocol.StatusNotFound, ""},
		{rq(protocol.CmdIncr, "", "k"), "NS\r\n", protocol.StatusNotStored, ""},
		{rq(protocol.CmdIncr, "", "k"), "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", protocol.StatusNonNumeric, msgNonNumeric},
		{rq(protocol.CmdGet, "", "k", "j"), "SERVER_ERROR busy\x01\r\nVA 1 f0\r\nx\r\n", protocol.StatusServerError, "busy"},
		{rq(protocol.CmdStats, ""), "ERROR\r\n", protocol.StatusClientError, msgUnknownCmd},
		{rq(protocol.CmdStats, ""), "RESET\r\n", protocol.StatusOK, ""},
		{rq(protocol.CmdFlushAll, ""), "OK\r\n", protocol.StatusOK, ""},
		{rq(protocol.CmdVersion, ""), "VERSION 1.6.18\r\n", protocol.StatusOK, "1.6.18"},
	}
	for _, tc := range status {
		resps, err := decode(t, tc.reply, tc.req)
		if err != nil || resps[0].Status != tc.want || resps[0].Message != tc.msg {
			t.Errorf("%v %q: %v %v %q, want %v %q", tc.req.Command, tc.reply, err, resps[0].Status, resps[0].Message, tc.want, tc.msg)
		}
	}
	resps, _ = decode(t, "HD c77\r\n", rq(protocol.CmdSet, "v", "k"))
	if resps[0].CAS != 77 {
		t.Fatalf("set CAS %d", resps[0].CAS)
	}
	resps, _ = decode(t, "VA 2 c5 t-1\r\n42\r\n", rq(protocol.CmdIncr, "", "k"))
	if resps[0].Number != 42 || resps[0].CAS != 5 {
		t.Fatalf("incr: %+v", resps[0])
	}
	resps, _ = decode(t, "STAT pid 1\r\nSTAT version 1.6 x\r\nEND\r\n", rq(protocol.CmdStats, ""))
	if len(resps[0].Stats) != 2 || resps[0].Stats[1] != (protocol.Stat{Name: "version", Value: "1.6 x"}) {
		t.Fatalf("stats %+v", resps[0].Stats)
	}

	// Replies that do not fit their command are fatal to the connection.
	fatal := []struct {
		req   *protocol.Request
		reply string
	}{
		{rq(protocol.CmdGet, "", "k"), "HD\r\n"},
		{rq(protocol.CmdGet, "", "k"), "ERROR\r\n"},
		{rq(protocol.CmdGet, "", "k"), "VA x\r\n"},
		{rq(protocol.CmdGet, "", "k"), "VA 2 f0\r\nabc\r\n"},
		{rq(protocol.CmdGet, "", "k"), "VA 1 f99999999999\r\na\r\n"},
		{rq(protocol.CmdGet, "", "k"), "EN\n"},
		{rq(protocol.CmdGet, "", "k"), "VA 3\r\nab"},
		{rq(protocol.CmdSet, "v", "k"), "EN\r\n"},
		{rq(protocol.CmdSet, "v", "k"), "HDX\r\n"},
		{rq(protocol.CmdSet, "v", "k"), "CLIENT_ERROR bad data chunk\r\n"},
		{rq(protocol.CmdIncr, "", "k"), "VA 2\r\nab\r\n"},
		{rq(protocol.CmdVersion, ""), "OK\r\n"},
		{rq(protocol.CmdFlushAll, ""), "HD\r\n"},
		{rq(protocol.CmdGet, "", "k"), strings.Repeat("x", 100) + "\r\n"},
	}
	for _, tc := range fatal {
		if _, err := decode(t, tc.reply, tc.req); err == nil || errors.Is(err, errValueTooLarge) {
			t.Errorf("%v %q: err %v, want a fatal error", tc.req.Command, tc.reply, err)
		}
	}
}

func TestParseUint(t *testing.T) {
	for s, want := range map[string]uint64{"0": 0, "18446744073709551615": 1<<64 - 1, "007": 7} {
		if v, ok := parseUint([]byte(s)); !ok || v != want {
			t.Errorf("parseUint(%q) = %d %v", s, v, ok)
		}
	}
	for _, s := range []string{"", "-1", "18446744073709551616", "1a", "99999999999999999999"} {
		if _, ok := parseUint([]byte(s)); ok {
			t.Errorf("parseUint(%q) accepted", s)
		}
	}
	if v, ok := parseInt([]byte("-1")); !ok || v != -1 {
		t.Errorf("parseInt(-1) = %d %v", v, ok)
	}
}

// TestCodecAllocs: encoding a request and parsing a hit into a warmed-up
// Response allocate nothing.
func TestCodecAllocs(t *testing.T) {
	req := rq(protocol.CmdGets, "", "some-key", "bin key")
	resp := &protocol.Response{}
	resps := []*protocol.Response{resp}
	reqs := []*protocol.Request{req}
	ops := make([]op, 0, 4)
	buf := make([]byte, 0, 256)
	reply := []byte("VA 5 f1 c2 t30\r\nhello\r\nVA 5 f1 c2 t-1\r\nworld\r\n")
	rd := bytes.NewReader(reply)
	rr := replyReader{br: bufio.NewReaderSize(rd, 4096), maxValue: 100}
	n := testing.AllocsPerRun(100, func() {
		ops = prepare(ops[:0], reqs, resps, 100, maxKeyLen, now, false)
		buf = buf[:0]
		for i := range ops {
			buf = appendOp(buf, &ops[i], req)
		}
		rd.Reset(reply)
		rr.br.Reset(rd)
		for i := range ops {
			if err := rr.read(&ops[i], resp, req.Keys, now); err != nil {
				t.Fatal(err)
			}
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs per request", n)
	}
	if len(resp.Hits) != 2 || string(resp.Hits[1].Value) != "world" {
		t.Fatalf("hits %+v", resp.Hits)
	}
}

// FuzzReply feeds arbitrary server bytes to the reply parser: it must not
// panic, must not allocate beyond MaxValueSize for a value, and must either
// parse or fail with an error.
func FuzzReply(f *testing.F) {
	f.Add(uint8(opGet), []byte("VA 2 f3 c9 t-1\r\nhi\r\nEN\r\n"))             // hit then miss
	f.Add(uint8(opGet), []byte("VA 99999999999999 f0\r\n"))                   // absurd length
	f.Add(uint8(opStore), []byte("HD c77\r\nNS c0\r\n"))                      // stored, not stored
	f.Add(uint8(opArith), []byte("VA 2 c5 t-1\r\n42\r\n"))                    // incr result
	f.Add(uint8(opStats), []byte("STAT pid 1\r\nEND\r\n"))                    // stats
	f.Add(uint8(opVersion), []byte("VERSION 1.6.18\r\n"))                     // version
	f.Add(uint8(opDelete), []byte("SERVER_ERROR out of memory\r\n"))          // server error
	f.Add(uint8(opTouch), []byte("CLIENT_ERROR bad command line format\r\n")) // client error
	f.Add(uint8(opGets), []byte("VALUE k 3 2 9\r\nhi\r\nEND\r\n"))            // classic gets
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		o := op{kind: opKind(kind) % (opGets + 1), exp: 5}
		rr := replyReader{br: bufio.NewReaderSize(bytes.NewReader(data), 64), maxValue: 256}
		resp := &protocol.Response{}
		for range 16 {
			if err := rr.read(&o, resp, nil, now); err != nil && !errors.Is(err, errValueTooLarge) {
				return
			}
			if cap(rr.scratch) > 256+2 {
				t.Fatalf("scratch grew to %d", cap(rr.scratch))
			}
		}
	})
}

// TestClassicGets: with ClassicGets, a get or gets of classicMinKeys keys
// or more becomes classic gets lines (split at maxGetsLine and around
// base64 keys, which stay mg), and the replies are matched to the keys by
// name, duplicates and misses included. Shorter gets stay mg.
func TestClassicGets(t *testing.T) {
	wire, ops, _ := encodeWith(true, rq(protocol.CmdGet, "", "a", "bin key", "b", "c", "d", "e", "f", "g"),
		rq(protocol.CmdGat, "", "g"), rq(protocol.CmdGet, "", "x", "y"))
	if want := "gets a\r\nmg YmluIGtleQ== v f c t b\r\ngets b c d e f g\r\nmg g v f c t T0\r\nmg x v f c t\r\nmg y v f c t\r\n"; wire != want {
		t.Fatalf("wire %q, want %q", wire, want)
	}
	if len(ops) != 6 || ops[2].kind != opGets || ops[2].key != 2 || ops[2].n != 6 {
		t.Fatalf("ops %+v", ops)
	}
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("key:%04d", i))
	}
	wire, _, _ = encodeWith(true, rq(protocol.CmdGets, "", keys...))
	lines := strings.Split(strings.TrimSuffix(wire, "\r\n"), "\r\n")
	if len(lines) < 2 || strings.Count(wire, " ") != 300 {
		t.Fatalf("300 keys in %d lines, %d keys", len(lines), strings.Count(wire, " "))
	}
	for _, l := range lines {
		if len(l) > maxGetsLine {
			t.Fatalf("line of %d bytes", len(l))
		}
	}

	// Keys a, b (missing), a again, c, then misses: hits name their keys.
	eight := func(k ...string) *protocol.Request {
		return rq(protocol.CmdGets, "", append(k, "m1", "m2", "m3", "m4", "m5", "m6", "m7")[:max(len(k), 8)]...)
	}
	resps, err := decodeWith(t, true, "VALUE a 1 2 7\r\nhi\r\nVALUE a 1 2 7\r\nhi\r\nVALUE c 0 0 8\r\n\r\nEND\r\n", eight("a", "b", "a", "c"))
	if err != nil {
		t.Fatal(err)
	}
	h := resps[0].Hits
	if len(h) != 3 || h[0].Index != 0 || h[1].Index != 2 || h[2].Index != 3 || string(h[0].Value) != "hi" ||
		h[0].Flags != 1 || h[0].CAS != 7 || h[2].CAS != 8 || len(h[2].Value) != 0 || h[0].Exptime != 0 {
		t.Fatalf("hits %+v", h)
	}
	// A key not asked for (or out of order) means the stream is out of step.
	if _, err := decodeWith(t, true, "VALUE c 0 1 1\r\nx\r\nVALUE a 0 1 1\r\nx\r\nEND\r\n", eight("a", "c")); err == nil {
		t.Fatal("out-of-order VALUE accepted")
	}
	// Oversized values fail the call but the rest is consumed.
	resps, err = decodeWith(t, true, "VALUE a 0 1001 1\r\n"+strings.Repeat("z", 1001)+"\r\nVALUE b 0 1 2\r\nq\r\nEND\r\n", eight("a", "b"))
	if !errors.Is(err, errValueTooLarge) || len(resps[0].Hits) != 1 || resps[0].Hits[0].Index != 1 {
		t.Fatalf("oversized: %v %+v", err, resps[0].Hits)
	}
	resps, err = decodeWith(t, true, "SERVER_ERROR out of memory\r\n", eight("a"))
	if err != nil || resps[0].Status != protocol.StatusServerError {
		t.Fatalf("server error: %v %v", err, resps[0].Status)
	}
}
