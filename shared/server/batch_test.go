package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/binproto"
	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// batchHandler is a testHandler that also batches gets: it records the
// size of every HandleGets call and answers each request as Handle would.
// A get of key "down" fails with a handler error.
type batchHandler struct {
	*testHandler
	mu      sync.Mutex
	batches []int
}

func (h *batchHandler) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if string(req.Key()) == "down" {
		return errors.New("backend down")
	}
	return h.testHandler.Handle(ctx, req, resp)
}

func (h *batchHandler) HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	h.mu.Lock()
	h.batches = append(h.batches, len(reqs))
	h.mu.Unlock()
	for i, req := range reqs {
		if !isGet(req) || errs[i] != nil || len(resps[i].Hits) != 0 || resps[i].Status != protocol.StatusOK {
			panic("HandleGets given a non-get or a dirty response/error")
		}
		errs[i] = h.Handle(ctx, req, resps[i])
	}
}

func (h *batchHandler) sizes() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.batches)
}

// pipelined sends reqs in one write and checks that the replies are want,
// in order.
func pipelined(t *testing.T, ln *pipeListener, reqs string, want ...string) {
	t.Helper()
	c := ln.dial(t)
	go c.Write([]byte(reqs))
	r := bufio.NewReader(c)
	for i, w := range want {
		if got := readLine(t, r, c); got != w {
			t.Fatalf("reply %d = %q, want %q", i, got, w)
		}
	}
}

// Gets buffered back to back are handed over together; anything else ends
// a batch and is answered on its own, in order.
func TestGetBatching(t *testing.T) {
	h := &batchHandler{testHandler: newTestHandler()}
	_, ln, _ := startLoop(t, Config{}, h)
	pipelined(t, ln, "get a 1\r\nget b 2\r\nget c 3\r\nset d 4\r\nget e 5\r\nget f 6\r\nget g 7\r\n",
		"ok a 1\r\n", "ok b 2\r\n", "ok c 3\r\n", "ok d 4\r\n", "ok e 5\r\n", "ok f 6\r\n", "ok g 7\r\n")
	if got := h.sizes(); !slices.Equal(got, []int{3, 3}) {
		t.Errorf("batches %v, want [3 3]", got)
	}

	// A lone get (nothing buffered behind it) goes to Handle.
	h.batches = nil
	pipelined(t, ln, "get a 1\r\n", "ok a 1\r\n")
	if got := h.sizes(); len(got) != 0 {
		t.Errorf("batches %v for a lone get", got)
	}

	// Long pipelines are cut at maxGetBatch.
	h.batches = nil
	var req strings.Builder
	var want []string
	for i := range maxGetBatch + 10 {
		fmt.Fprintf(&req, "get k%d v%d\r\n", i, i)
		want = append(want, fmt.Sprintf("ok k%d v%d\r\n", i, i))
	}
	pipelined(t, ln, req.String(), want...)
	if got := h.sizes(); !slices.Equal(got, []int{maxGetBatch, 10}) {
		t.Errorf("batches %v, want [%d 10]", got, maxGetBatch)
	}
}

// A handler error fails only its own request of a batch.
func TestGetBatchHandlerError(t *testing.T) {
	h := &batchHandler{testHandler: newTestHandler()}
	_, ln, _ := startLoop(t, Config{}, h)
	pipelined(t, ln, "get a 1\r\nget down\r\nget b 2\r\n",
		"ok a 1\r\n", "server_error down "+HandlerErrorMessage+"\r\n", "ok b 2\r\n")
}

// A request read ahead that the codec rejects is answered after the
// replies to the gets before it; the stream goes on (ErrReplied) or ends
// with those replies sent (ErrClose).
func TestGetBatchReadAheadErrors(t *testing.T) {
	h := &batchHandler{testHandler: newTestHandler()}
	_, ln, _ := startLoop(t, Config{}, h)
	pipelined(t, ln, "get a 1\r\nget b 2\r\nget !bad\r\nget c 3\r\n",
		"ok a 1\r\n", "ok b 2\r\n", "ERROR\r\n", "ok c 3\r\n")

	c := ln.dial(t)
	go c.Write([]byte("get a 1\r\nget !close\r\nget never\r\n"))
	r := bufio.NewReader(c)
	for _, want := range []string{"ok a 1\r\n", "CLOSING\r\n"} {
		if got := readLine(t, r, c); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expectEOF(t, c)
}

// A non-get read ahead (the look-ahead only checks a line's start) is
// answered on its own after the batch.
func TestGetBatchReadAheadNonGet(t *testing.T) {
	h := &batchHandler{testHandler: newTestHandler()}
	_, ln, _ := startLoop(t, Config{}, h)
	// "get !set x 9" reads as "set x 9".
	pipelined(t, ln, "get a 1\r\nget !set x 9\r\nget b 2\r\n", "ok a 1\r\n", "ok x 9\r\n", "ok b 2\r\n")
	if got := h.sizes(); len(got) == 0 || got[0] != 1 {
		t.Errorf("batches %v, want the first of size 1", got)
	}
}

// memBatcher is a memstore whose gets the server may batch; it answers a
// batch one request at a time, so replies must equal a plain server's.
type memBatcher struct {
	*memstore.Store
	batched atomic.Int64
	mu      sync.Mutex
	keys    []int // keys per HandleGets call
}

func (m *memBatcher) HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	m.batched.Add(int64(len(reqs)))
	n := 0
	for _, r := range reqs {
		n += len(r.Keys)
	}
	m.mu.Lock()
	m.keys = append(m.keys, n)
	m.mu.Unlock()
	for i, req := range reqs {
		errs[i] = m.Handle(ctx, req, resps[i])
	}
}

// TestGetBatchingSameBytes runs pipelines through the real text codec on a
// batching and a plain server, over TCP: the replies must be byte for byte
// the same, malformed gets among them included.
func TestGetBatchingSameBytes(t *testing.T) {
	mb := &memBatcher{Store: memstore.New(memstore.Options{})}
	batching := startTCPServer(t, mb)
	plain := startTCPServer(t, memstore.New(memstore.Options{}))
	long := strings.Repeat("k", 251)
	for _, pipeline := range []string{
		"set a 5 0 1\r\nx\r\nset b 6 0 2\r\nyy\r\nget a\r\nget a b\r\ngets a\r\nget zz\r\nget b\r\nquit\r\n",
		"get a\r\nget " + long + "\r\nget b\r\nget\r\nget a\r\nquit\r\n",
		"get a\r\ngets a b a\r\nbogus\r\nget b\r\nset c 0 0 1 noreply\r\nz\r\nget c\r\nget a b c\r\nquit\r\n",
		strings.Repeat("get a\r\nget b\r\n", 100) + "delete a\r\n" + strings.Repeat("get a\r\n", 10) + "quit\r\n",
	} {
		// The sets come first and are longer than the buffer an idle
		// connection reads into, so the whole pipeline is buffered by the
		// time the gets are read.
		in := "set a 5 0 1\r\nx\r\nset b 6 0 2\r\nyy\r\nset pad 0 0 64\r\n" + strings.Repeat("p", 64) + "\r\n" + pipeline
		want := exchange(t, plain, in)
		got := exchange(t, batching, in)
		if got != want {
			t.Errorf("pipeline %.40q...: batching server answered\n%q\nplain server\n%q", pipeline, got, want)
		}
	}
	if mb.batched.Load() == 0 {
		t.Error("nothing was batched")
	}
}

func startTCPServer(t *testing.T, h protocol.Handler) string {
	t.Helper()
	_, addr := serveTCP(t, Config{}, h)
	return addr
}

// serveTCP serves h with cfg (logging discarded) on a loopback port until
// the test or benchmark ends.
func serveTCP(tb testing.TB, cfg Config, h protocol.Handler) (*Server, string) {
	tb.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg, h)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go s.Serve(ln)
	tb.Cleanup(func() { s.Close() })
	return s, ln.Addr().String()
}

// exchange sends in (one write) and returns everything answered until the
// server closes the connection.
func exchange(t *testing.T, addr, in string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// No HandleGets call gets more keys than the group size allows: read-ahead
// stops there and the codec cuts the line that crosses it, whose remaining
// keys come in later calls. Misses only: the group size grows to its cap.
func TestGetBatchKeyCap(t *testing.T) {
	mb := &memBatcher{Store: memstore.New(memstore.Options{})}
	addr := startTCPServer(t, mb)
	n := maxGroupKeys * 3 / 5
	var keys strings.Builder
	for i := range n {
		fmt.Fprintf(&keys, " k%d", i)
	}
	// A first request longer than the idle buffer, so the rest is
	// buffered when the gets are read.
	in := "set pad 0 0 64\r\n" + strings.Repeat("p", 64) + "\r\n" + strings.Repeat("get"+keys.String()+"\r\n", 4) + "quit\r\n"
	if out := exchange(t, addr, in); out != "STORED\r\n"+strings.Repeat("END\r\n", 4) {
		t.Fatalf("replies %q", out)
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	total := 0
	for _, k := range mb.keys {
		if k > maxGroupKeys {
			t.Errorf("a batch of %d keys, cap %d: %v", k, maxGroupKeys, mb.keys)
		}
		total += k
	}
	// Batches of a single request go through Handle, not HandleGets.
	if total > 4*n || len(mb.keys) == 0 {
		t.Errorf("keys per batch %v, %d in all of %d", mb.keys, total, 4*n)
	}
}

// binPacket encodes a binary request.
func binPacket(op binproto.Opcode, key, extras, value string, opaque uint32) string {
	h := make([]byte, binproto.HeaderLen)
	h[0], h[1] = binaryMagic, byte(op)
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = byte(len(extras))
	binary.BigEndian.PutUint32(h[8:], uint32(len(extras)+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[12:], opaque)
	return string(h) + extras + key + value
}

// TestGetBatchingSameBytesBinary: binary get/getq/getk/getkq runs (the
// binary multi-get idiom ends in a noop) are batched and answered byte for
// byte as a plain server answers them, malformed packets included.
func TestGetBatchingSameBytesBinary(t *testing.T) {
	mb := &memBatcher{Store: memstore.New(memstore.Options{})}
	batching := startTCPServer(t, mb)
	plain := startTCPServer(t, memstore.New(memstore.Options{}))
	setExtras := string([]byte{0, 0, 0, 7, 0, 0, 0, 0}) // flags 7, no expiry
	in := binPacket(binproto.OpSet, "a", setExtras, "va", 1) + binPacket(binproto.OpSet, "b", setExtras, "vbb", 2) +
		binPacket(binproto.OpSet, "pad", setExtras, strings.Repeat("p", 64), 3)
	for i := range 20 {
		in += binPacket(binproto.OpGetKQ, "a", "", "", uint32(100+i)) + binPacket(binproto.OpGetKQ, "nope", "", "", uint32(200+i)) +
			binPacket(binproto.OpGetQ, "b", "", "", uint32(300+i)) + binPacket(binproto.OpGetK, "b", "", "", uint32(400+i)) +
			binPacket(binproto.OpGet, "nope", "", "", uint32(500+i))
	}
	// A get with extras is malformed: memcached answers an error.
	in += binPacket(binproto.OpGetK, "a", "xxxx", "", 600) + binPacket(binproto.OpGetKQ, "a", "", "", 601)
	in += binPacket(binproto.OpNoop, "", "", "", 700) + binPacket(binproto.OpQuit, "", "", "", 701)
	want := exchange(t, plain, in)
	if got := exchange(t, batching, in); got != want {
		t.Errorf("batching server answered\n%q\nplain server\n%q", got, want)
	}
	if mb.batched.Load() == 0 {
		t.Error("nothing was batched")
	}
}

// memRunBatcher is a memBatcher that also takes mg and set runs; it answers
// a set run one request at a time, in order, and records each run's size.
type memRunBatcher struct {
	memBatcher
	sets []int
}

func (m *memRunBatcher) HandleSets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	m.mu.Lock()
	m.sets = append(m.sets, len(reqs))
	m.mu.Unlock()
	for i, req := range reqs {
		if req.Command != protocol.CmdSet || errs[i] != nil || resps[i].Status != protocol.StatusOK {
			panic("HandleSets given a non-set or a dirty response/error")
		}
		errs[i] = m.Handle(ctx, req, resps[i])
	}
}

// TestRunBatchingSameBytes: runs of text sets, ms and mg (with the classic
// gets, and requests that end a run: an ms with a mode, a set whose data
// block is malformed) are batched by a RunBatcher and answered byte for
// byte as a plain server answers them.
func TestRunBatchingSameBytes(t *testing.T) {
	mb := &memRunBatcher{memBatcher: memBatcher{Store: memstore.New(memstore.Options{})}}
	batching := startTCPServer(t, mb)
	plain := startTCPServer(t, memstore.New(memstore.Options{}))
	pad := "set pad 0 0 64\r\n" + strings.Repeat("p", 64) + "\r\n"
	for _, pipeline := range []string{
		"set a 1 0 1\r\nx\r\nset b 2 0 2\r\nyy\r\nset a 3 0 3\r\nzzz\r\nget a b\r\nmg a v f c\r\nmg b v k\r\nmg nope v\r\nquit\r\n",
		"ms a 2 F5\r\nqq\r\nms b 1 q\r\nr\r\nms c 2 MA\r\nss\r\nms c 2 MA\r\ntt\r\nset d 0 0 1 noreply\r\nd\r\nmg a v f\r\nmg c v\r\nget d\r\nquit\r\n",
		"set a 0 0 1\r\nx\r\nset b 0 0 2\r\nTOOLONG\r\nset c 0 0 1\r\nc\r\nget a b c\r\nquit\r\n",
		strings.Repeat("set k 0 0 1\r\n1\r\nset k 0 0 1\r\n2\r\n", 50) + "mg k v\r\nquit\r\n",
	} {
		in := pad + pipeline
		want := exchange(t, plain, in)
		if got := exchange(t, batching, in); got != want {
			t.Errorf("pipeline %.40q...: batching server answered\n%q\nplain server\n%q", pipeline, got, want)
		}
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if len(mb.sets) == 0 || slices.Max(mb.sets) != maxGetBatch {
		t.Errorf("set runs %v, want some of %d", mb.sets, maxGetBatch)
	}
	if mb.batched.Load() == 0 {
		t.Error("no mg was batched")
	}
}

// TestRunBatchingSameBytesBinary: binary set/setq runs are batched and
// answered as a plain server answers them.
func TestRunBatchingSameBytesBinary(t *testing.T) {
	mb := &memRunBatcher{memBatcher: memBatcher{Store: memstore.New(memstore.Options{})}}
	batching := startTCPServer(t, mb)
	plain := startTCPServer(t, memstore.New(memstore.Options{}))
	setExtras := string([]byte{0, 0, 0, 7, 0, 0, 0, 0})
	in := binPacket(binproto.OpSet, "pad", setExtras, strings.Repeat("p", 64), 1)
	for i := range 20 {
		in += binPacket(binproto.OpSetQ, "a", setExtras, fmt.Sprint("v", i), uint32(100+i)) +
			binPacket(binproto.OpSet, "b", setExtras, fmt.Sprint("w", i), uint32(200+i))
	}
	in += binPacket(binproto.OpSet, "c", "xx", "bad extras", 300) + binPacket(binproto.OpGetK, "a", "", "", 301) +
		binPacket(binproto.OpGetK, "b", "", "", 302) + binPacket(binproto.OpQuit, "", "", "", 303)
	want := exchange(t, plain, in)
	if got := exchange(t, batching, in); got != want {
		t.Errorf("batching server answered\n%q\nplain server\n%q", got, want)
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if len(mb.sets) == 0 {
		t.Error("no set run was batched")
	}
}

func TestWholeTextSet(t *testing.T) {
	for in, want := range map[string]bool{
		"set k 0 0 3\r\nabc\r\n":             true,
		"set k 0 0 3\r\nabc\r":               false,
		"set k 0 0 3 noreply\r\nabc\r\n":     true,
		"set  k  0 0  3\r\nabc\r\nget x":     true,
		"ms k 3 T0 F1\r\nabc\r\n":            true,
		"ms k 3\r\nab":                       false,
		"ms k\r\n":                           false,
		"set k 0 0 x\r\nabc\r\n":             false,
		"set k 0 0 99999999999999999999\r\n": false,
		"get k\r\n":                          false,
		"set k 0 0 3":                        false,
	} {
		if got := wholeTextSet([]byte(in)); got != want {
			t.Errorf("wholeTextSet(%q) = %v, want %v", in, got, want)
		}
	}
}
