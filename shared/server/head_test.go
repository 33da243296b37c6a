package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The tests in loop_test.go run over net.Pipe, which has no raw socket, so
// an idle connection there waits in one byte. These run the lineCodec over
// real loopback TCP, where it waits in headSize bytes and reads the rest of
// a burst without blocking (rawRead).

// tcpCountingListener counts the server's socket writes. It wraps
// *net.TCPConn by embedding, so the server still finds SyscallConn.
type tcpCountingListener struct {
	net.Listener
	writes atomic.Int64
}

type tcpCountingConn struct {
	*net.TCPConn
	writes *atomic.Int64
}

func (c *tcpCountingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.TCPConn.Write(p)
}

func (l *tcpCountingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tcpCountingConn{TCPConn: nc.(*net.TCPConn), writes: &l.writes}, nil
}

func startTCPLoop(t *testing.T, cfg Config) (*Server, *tcpCountingListener) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	s.newCodec = func(byte) Codec { return &lineCodec{} }
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &tcpCountingListener{Listener: inner}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return s, ln
}

func dialTCP(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A pipeline far longer than head, sent in one write, is answered with one
// write even though requests straddle head's end.
func TestTCPPipelineOneWrite(t *testing.T) {
	_, ln := startTCPLoop(t, Config{})
	c := dialTCP(t, ln)
	r := bufio.NewReader(c)
	// Warm up: the connection is accepted and idle in head.
	c.Write([]byte("get warm\r\n"))
	readLine(t, r, c)

	var req bytes.Buffer
	const n = 100
	for i := range n {
		fmt.Fprintf(&req, "set k%d v%d\r\n", i, i)
	}
	before := ln.writes.Load()
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if got, want := readLine(t, r, c), fmt.Sprintf("ok k%d v%d\r\n", i, i); got != want {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
	if w := ln.writes.Load() - before; w != 1 {
		t.Errorf("%d pipelined replies took %d writes, want 1", n, w)
	}
}

// Replies buffered when a request straddling head's end has to wait for
// its rest are sent first (the client may wait for them before sending
// more); requests of exactly head's size and of one byte more work.
func TestTCPSplitRequestsAroundHead(t *testing.T) {
	_, ln := startTCPLoop(t, Config{})
	c := dialTCP(t, ln)
	r := bufio.NewReader(c)

	// "set a 1\r\n" is 9 bytes; the second request starts inside head and
	// ends past it, and its tail comes only after the first reply.
	long := strings.Repeat("x", 2*headSize)
	c.Write([]byte("set a 1\r\nset b " + long[:headSize]))
	if got := readLine(t, r, c); got != "ok a 1\r\n" {
		t.Fatalf("first reply %q", got)
	}
	c.Write([]byte(long[headSize:] + "\r\n"))
	if got := readLine(t, r, c); got != "ok b "+long+"\r\n" {
		t.Fatalf("second reply %q", got)
	}

	for _, size := range []int{headSize - 1, headSize, headSize + 1} {
		// "set k " + value + "\r\n" is size bytes.
		v := strings.Repeat("v", size-len("set k \r\n"))
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("set k " + v + "\r\n")); err != nil {
			t.Fatal(err)
		}
		if got := readLine(t, r, c); got != "ok k "+v+"\r\n" {
			t.Fatalf("size %d: reply %q", size, got)
		}
	}
}

// A request cut off at head's end waits for its rest under ReadTimeout, not
// forever.
func TestTCPReadTimeoutPastHead(t *testing.T) {
	s, ln := startTCPLoop(t, Config{ReadTimeout: 50 * time.Millisecond})
	c := dialTCP(t, ln)
	c.Write([]byte("set a 1\r\nset b " + strings.Repeat("x", headSize)))
	r := bufio.NewReader(c)
	if got := readLine(t, r, c); got != "ok a 1\r\n" {
		t.Fatalf("first reply %q", got)
	}
	expectEOF(t, c)
	if n := s.Stats().ReadTimeouts.Load(); n != 1 {
		t.Errorf("ReadTimeouts = %d, want 1", n)
	}
}
