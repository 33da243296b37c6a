package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// lineCodec is a tiny line protocol for testing the connection loop apart
// from the real codecs:
//
//	get K / set K V / block / fail [MSG] / panic  -> handler
//	noop, quit                                    -> as server.Codec says
//	bad   -> "ERROR", ErrReplied;  close -> "CLOSING", ErrClose
//
// Replies are "<status> <key> <message>\r\n"; noop answers "NOOP".
type lineCodec struct {
	r *bufio.Reader
	w *bufio.Writer
}

func (c *lineCodec) Reset(r *bufio.Reader, w *bufio.Writer) { c.r, c.w = r, w }

func (c *lineCodec) ReadRequest(req *protocol.Request) error {
	req.Reset()
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	f := strings.Fields(string(line))
	if len(f) == 0 {
		f = []string{""}
	}
	if f[0] == "get" && len(f) > 1 && f[1][0] == '!' {
		// "get !cmd args": a line that starts as a get but reads as
		// "cmd args" (for batch_test.go).
		f = append([]string{f[1][1:]}, f[2:]...)
	}
	switch f[0] {
	case "get", "set", "fail", "block", "panic", "ctx":
		req.Command = map[string]protocol.Command{
			"get": protocol.CmdGet, "set": protocol.CmdSet, "fail": protocol.CmdVerbosity,
			"block": protocol.CmdStats, "panic": protocol.CmdVersion, "ctx": protocol.CmdFlushAll,
		}[f[0]]
		if len(f) > 1 {
			req.AddKey([]byte(f[1]))
		}
		if len(f) > 2 {
			copy(req.ValueBuffer(len(f[2])), f[2])
		}
	case "noop":
		req.Command = protocol.CmdNoop
	case "quit":
		req.Command = protocol.CmdQuit
	case "close":
		c.w.WriteString("CLOSING\r\n")
		return protocol.ErrClose
	default:
		c.w.WriteString("ERROR\r\n")
		return protocol.ErrReplied
	}
	return nil
}

func (c *lineCodec) WriteResponse(req *protocol.Request, resp *protocol.Response) error {
	switch req.Command {
	case protocol.CmdNoop:
		_, err := c.w.WriteString("NOOP\r\n")
		return err
	case protocol.CmdQuit:
		return nil
	}
	_, err := fmt.Fprintf(c.w, "%s %s %s\r\n", resp.Status, req.Key(), resp.Message)
	return err
}

// testHandler answers the lineCodec's commands.
type testHandler struct {
	entered chan struct{} // "block" signals here...
	release chan struct{} // ...and waits for this
	ctxErr  chan error    // "ctx" waits for cancellation and reports it
	handled atomic.Int64
}

func newTestHandler() *testHandler {
	return &testHandler{
		entered: make(chan struct{}, 16),
		release: make(chan struct{}),
		ctxErr:  make(chan error, 1),
	}
}

func (h *testHandler) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	h.handled.Add(1)
	switch req.Command {
	case protocol.CmdGet, protocol.CmdSet:
		resp.Status = protocol.StatusOK
		resp.Message = string(req.Value)
	case protocol.CmdVerbosity:
		resp.Message = string(req.Value) // may be empty: then the generic message
		return errors.New("backend exploded: secret detail")
	case protocol.CmdStats:
		h.entered <- struct{}{}
		<-h.release
		resp.Status = protocol.StatusOK
		resp.Message = "released"
	case protocol.CmdVersion:
		panic("handler bug")
	case protocol.CmdFlushAll:
		h.entered <- struct{}{}
		<-ctx.Done()
		h.ctxErr <- ctx.Err()
		return ctx.Err()
	}
	return nil
}

// pipeListener hands out net.Pipe connections. A pipe delivers exactly the
// bytes of each Write to the reader, so a test controls how requests are
// split across the server's reads, and a server Write blocks until the
// client reads it, so the number of server Writes is exact.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	writes atomic.Int64 // server-side Write calls, all connections
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(t *testing.T) net.Conn {
	t.Helper()
	srv, cli := net.Pipe()
	select {
	case l.conns <- &countingConn{Conn: srv, writes: &l.writes}:
	case <-time.After(5 * time.Second):
		t.Fatal("pipe listener: nobody accepted")
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// startLoop serves h with the lineCodec on a pipeListener.
func startLoop(t *testing.T, cfg Config, h protocol.Handler) (*Server, *pipeListener, chan error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	s.newCodec = func(byte) Codec { return &lineCodec{} }
	ln := newPipeListener()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return s, ln, served
}

// readLine reads one reply line with a deadline.
func readLine(t *testing.T, r *bufio.Reader, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read reply: %v (got %q)", err, line)
	}
	return line
}

// expectEOF asserts the server closes c (within the deadline).
func expectEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [64]byte
	n, err := c.Read(b[:])
	if err != io.EOF {
		t.Fatalf("want EOF, got %q, %v", b[:n], err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	mctest.Eventually(t, 5*time.Second, what, cond)
}

func TestPipelineAnsweredInOrderWithOneWrite(t *testing.T) {
	_, ln, _ := startLoop(t, Config{}, newTestHandler())
	c := ln.dial(t)
	var req bytes.Buffer
	const n = 100
	for i := range n {
		fmt.Fprintf(&req, "set k%d v%d\r\n", i, i)
	}
	before := ln.writes.Load()
	go c.Write(req.Bytes()) // a pipe Write returns once the server read it all
	r := bufio.NewReader(c)
	for i := range n {
		if got, want := readLine(t, r, c), fmt.Sprintf("ok k%d v%d\r\n", i, i); got != want {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
	if w := ln.writes.Load() - before; w != 1 {
		t.Errorf("%d pipelined replies took %d writes, want 1", n, w)
	}
}

func TestRequestOneByteAtATime(t *testing.T) {
	h := newTestHandler()
	_, ln, _ := startLoop(t, Config{}, h)
	c := ln.dial(t)
	r := bufio.NewReader(c)
	for round := range 3 {
		for _, b := range []byte(fmt.Sprintf("set key%d val\r\n", round)) {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte{b}); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := readLine(t, r, c), fmt.Sprintf("ok key%d val\r\n", round); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// A reply must go out before the server blocks on the rest of a split
// request: the client may be waiting for it before sending more.
func TestRepliesFlushedBeforeWaitingForPartialRequest(t *testing.T) {
	_, ln, _ := startLoop(t, Config{}, newTestHandler())
	c := ln.dial(t)
	r := bufio.NewReader(c)
	go c.Write([]byte("set a 1\r\nset b"))
	if got := readLine(t, r, c); got != "ok a 1\r\n" {
		t.Fatalf("first reply %q", got)
	}
	go c.Write([]byte(" 2\r\n"))
	if got := readLine(t, r, c); got != "ok b 2\r\n" {
		t.Fatalf("second reply %q", got)
	}
}

func TestNoopQuitAndCodecErrors(t *testing.T) {
	h := newTestHandler()
	s, ln, _ := startLoop(t, Config{}, h)
	c := ln.dial(t)
	r := bufio.NewReader(c)
	go c.Write([]byte("noop\r\nbad\r\nget k\r\nquit\r\nget never\r\n"))
	for _, want := range []string{"NOOP\r\n", "ERROR\r\n", "ok k \r\n"} {
		if got := readLine(t, r, c); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expectEOF(t, c)
	if n := h.handled.Load(); n != 1 {
		t.Errorf("handler saw %d requests, want 1 (noop and quit never reach it)", n)
	}
	if n := s.Stats().ProtocolErrors.Load(); n != 1 {
		t.Errorf("ProtocolErrors = %d, want 1", n)
	}

	c = ln.dial(t)
	r = bufio.NewReader(c)
	go c.Write([]byte("get a\r\nclose\r\nget never\r\n"))
	for _, want := range []string{"ok a \r\n", "CLOSING\r\n"} {
		if got := readLine(t, r, c); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expectEOF(t, c)
}

func TestHandlerErrorAnswersServerError(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	s, ln, _ := startLoop(t, Config{Logger: logger}, newTestHandler())
	c := ln.dial(t)
	r := bufio.NewReader(c)
	go c.Write([]byte("fail k\r\nfail k backend_down\r\nget k after\r\n"))
	for _, want := range []string{
		"server_error k " + HandlerErrorMessage + "\r\n",
		"server_error k backend_down\r\n",
		"ok k after\r\n",
	} {
		got := readLine(t, r, c)
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if strings.Contains(got, "secret") {
			t.Fatalf("error text leaked to the wire: %q", got)
		}
	}
	if n := s.Stats().HandlerErrors.Load(); n != 2 {
		t.Errorf("HandlerErrors = %d, want 2", n)
	}
	mu.Lock()
	defer mu.Unlock()
	// Rate limited: the second failure within the interval is suppressed.
	if n := strings.Count(logs.String(), "handler failed"); n != 1 {
		t.Errorf("logged %d handler failures, want 1:\n%s", n, logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestHandlerPanicClosesOnlyThatConnection(t *testing.T) {
	s, ln, _ := startLoop(t, Config{}, newTestHandler())
	other := ln.dial(t)
	c := ln.dial(t)
	go c.Write([]byte("panic\r\n"))
	expectEOF(t, c)
	if n := s.Stats().Panics.Load(); n != 1 {
		t.Errorf("Panics = %d", n)
	}
	r := bufio.NewReader(other)
	go other.Write([]byte("get still alive\r\n"))
	if got := readLine(t, r, other); got != "ok still alive\r\n" {
		t.Fatalf("other connection: %q", got)
	}
}

func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	h := newTestHandler()
	s, ln, served := startLoop(t, Config{}, h)

	idle := ln.dial(t)
	ir := bufio.NewReader(idle)
	go idle.Write([]byte("get k\r\n"))
	readLine(t, ir, idle)

	busy := ln.dial(t)
	br := bufio.NewReader(busy)
	go busy.Write([]byte("block k\r\nget not_read\r\n"))
	<-h.entered

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()

	// The idle connection is closed at once, while the busy one is still
	// inside its request.
	expectEOF(t, idle)
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}

	close(h.release)
	if got := readLine(t, br, busy); got != "ok k released\r\n" {
		t.Fatalf("in-flight reply %q", got)
	}
	expectEOF(t, busy) // the pipelined second request is not served
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := s.Stats().CurrConns.Load(); n != 0 {
		t.Errorf("CurrConns = %d after shutdown", n)
	}
	if err := s.Serve(newPipeListener()); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

func TestShutdownDeadlineCancelsHandlers(t *testing.T) {
	h := newTestHandler()
	s, ln, _ := startLoop(t, Config{}, h)
	c := ln.dial(t)
	go c.Write([]byte("ctx k\r\n"))
	<-h.entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if err := <-h.ctxErr; !errors.Is(err, context.Canceled) {
		t.Errorf("handler context: %v", err)
	}
	waitFor(t, "connection to close", func() bool { return s.Stats().CurrConns.Load() == 0 })
}

func TestMaxConnsRejects(t *testing.T) {
	s, ln, _ := startLoop(t, Config{MaxConns: 2}, newTestHandler())
	a := ln.dial(t)
	ln.dial(t)
	waitFor(t, "two connections", func() bool { return s.Stats().CurrConns.Load() == 2 })

	c := ln.dial(t)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != rejectMessage {
		t.Fatalf("third connection got %q, %v", got, err)
	}
	if n := s.Stats().RejectedConns.Load(); n != 1 {
		t.Errorf("RejectedConns = %d", n)
	}

	a.Close()
	waitFor(t, "a slot to free", func() bool { return s.Stats().CurrConns.Load() == 1 })
	d := ln.dial(t)
	go d.Write([]byte("get ok\r\n"))
	if got := readLine(t, bufio.NewReader(d), d); got != "ok ok \r\n" {
		t.Fatalf("after a slot freed: %q", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	s, ln, _ := startLoop(t, Config{IdleTimeout: 30 * time.Millisecond}, newTestHandler())
	c := ln.dial(t)
	go c.Write([]byte("get k\r\n"))
	readLine(t, bufio.NewReader(c), c)
	expectEOF(t, c)
	if n := s.Stats().IdleTimeouts.Load(); n != 1 {
		t.Errorf("IdleTimeouts = %d", n)
	}
}

func TestReadTimeoutInsideRequest(t *testing.T) {
	s, ln, _ := startLoop(t, Config{ReadTimeout: 30 * time.Millisecond}, newTestHandler())
	c := ln.dial(t)
	// Half a request, then silence. With no idle timeout, only the read
	// timeout can end this.
	c.Write([]byte("get"))
	expectEOF(t, c)
	if n := s.Stats().ReadTimeouts.Load(); n != 1 {
		t.Errorf("ReadTimeouts = %d", n)
	}
}

func TestCountersAndBuffersReturned(t *testing.T) {
	s, ln, _ := startLoop(t, Config{}, newTestHandler())
	c := ln.dial(t)
	r := bufio.NewReader(c)
	req := "set k v\r\nget k\r\n"
	go c.Write([]byte(req))
	n := len(readLine(t, r, c)) + len(readLine(t, r, c))
	st := s.Stats()
	waitFor(t, "counters", func() bool {
		return st.BytesRead.Load() == uint64(len(req)) && st.BytesWritten.Load() == uint64(n) &&
			st.Requests.Load() == 2
	})
	if st.TotalConns.Load() != 1 || st.CurrConns.Load() != 1 {
		t.Errorf("TotalConns %d CurrConns %d", st.TotalConns.Load(), st.CurrConns.Load())
	}
	// Idle again: the connection holds no burst.
	waitFor(t, "the connection to idle", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for c := range s.conns {
			if c.state.Load() != stateIdle {
				return false
			}
		}
		return true
	})
}

// flakyListener fails Accept with EMFILE a few times before each success,
// as a process out of descriptors does.
type flakyListener struct {
	net.Listener
	fails atomic.Int64
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

func TestAcceptErrorsBackOffAndRecover(t *testing.T) {
	h := newTestHandler()
	s, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, h)
	if err != nil {
		t.Fatal(err)
	}
	s.newCodec = func(byte) Codec { return &lineCodec{} }
	inner := newPipeListener()
	ln := &flakyListener{Listener: inner}
	ln.fails.Store(3)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	c := inner.dial(t) // accepted only after three failures and their back-off
	go c.Write([]byte("get k\r\n"))
	if got := readLine(t, bufio.NewReader(c), c); got != "ok k \r\n" {
		t.Fatalf("got %q", got)
	}
	if n := s.Stats().AcceptErrors.Load(); n != 3 {
		t.Errorf("AcceptErrors = %d, want 3", n)
	}

	// Shutdown interrupts a back-off in progress. The loop may already be
	// blocked in the inner Accept, in which case one more connection lets
	// it come round and fail again.
	ln.fails.Store(1 << 30)
	extra, peer := net.Pipe()
	defer peer.Close()
	waitFor(t, "more accept errors", func() bool {
		if extra != nil {
			select {
			case inner.conns <- extra:
				extra = nil
			default:
			}
		}
		return s.Stats().AcceptErrors.Load() > 4
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve = %v", err)
	}
}

func TestNextAcceptBackoff(t *testing.T) {
	var got []time.Duration
	d := time.Duration(0)
	for range 10 {
		d = nextAcceptBackoff(d)
		got = append(got, d)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("back-off sequence %v, want %v ms", got, want)
		}
	}
}

func TestLogLimiter(t *testing.T) {
	l := logLimiter{interval: time.Second}
	t0 := time.Unix(1000, 0)
	if ok, _ := l.allow(t0); !ok {
		t.Fatal("first line suppressed")
	}
	for i := range 5 {
		if ok, _ := l.allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatal("line within the interval allowed")
		}
	}
	ok, suppressed := l.allow(t0.Add(time.Second))
	if !ok || suppressed != 5 {
		t.Fatalf("after the interval: ok=%v suppressed=%d, want true 5", ok, suppressed)
	}
}

func TestConfig(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxConns != DefaultMaxConns || c.IdleTimeout != 0 || c.ReadTimeout != DefaultReadTimeout ||
		c.Limits.MaxKeyLen != protocol.DefaultMaxKeyLen || c.SocketMode != 0o700 || c.Logger == nil {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []Config{
		{MaxConns: -1},
		{ReadBufferSize: 16},
		{SocketMode: 0o4755 | 1<<31},
	} {
		bad.EnsureDefaults()
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("nil handler accepted")
	}
}
