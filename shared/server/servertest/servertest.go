// Package servertest runs a server.Server for tests: on a Unix socket in a
// temporary directory or on a free loopback port, shut down (gracefully,
// checked) when the test ends.
//
//	addr := servertest.Start(t, memstore.New(memstore.Options{}))
//	// addr is "unix:/tmp/.../s.sock"; servertest.Path(addr) is the bare
//	// path gomemcache and net.Dial("unix", ...) want.
package servertest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
)

// Start serves h on a Unix socket and returns its address ("unix:/path").
func Start(tb testing.TB, h protocol.Handler) string {
	tb.Helper()
	_, a := StartConfig(tb, "unix", server.Config{}, h)
	return a
}

// StartTCP serves h on a free loopback port and returns "127.0.0.1:port".
func StartTCP(tb testing.TB, h protocol.Handler) string {
	tb.Helper()
	_, a := StartConfig(tb, "tcp", server.Config{}, h)
	return a
}

// StartConfig serves h with cfg on network ("unix" or "tcp") and returns
// the server and its moneta address. If cfg.Logger is nil, server logs go
// to the test log (debug level included).
func StartConfig(tb testing.TB, network string, cfg server.Config, h protocol.Handler) (*server.Server, string) {
	tb.Helper()
	var lw *logWriter
	if cfg.Logger == nil {
		lw = &logWriter{tb: tb}
		cfg.Logger = slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(cfg, h)
	if err != nil {
		tb.Fatalf("servertest: %v", err)
	}
	var ln net.Listener
	var address string
	switch network {
	case "unix":
		path := filepath.Join(socketDir(tb), "s.sock")
		ln, err = net.Listen("unix", path)
		address = "unix:" + path
	case "tcp":
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			address = ln.Addr().String()
		}
	default:
		tb.Fatalf("servertest: network %q: want unix or tcp", network)
	}
	if err != nil {
		tb.Fatalf("servertest: listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("servertest: shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, server.ErrServerClosed) {
			tb.Errorf("servertest: Serve returned %v, want ErrServerClosed", err)
		}
		if lw != nil {
			lw.stop()
		}
	})
	return srv, address
}

// Path returns the socket path of a "unix:/path" address, and a TCP
// address unchanged: the form net.Dial and gomemcache take.
func Path(address string) string {
	return strings.TrimPrefix(address, "unix:")
}

// Network returns "unix" or "tcp" for an address returned by Start*.
func Network(address string) string {
	if strings.HasPrefix(address, "unix:") {
		return "unix"
	}
	return "tcp"
}

// Dial connects to an address returned by Start*.
func Dial(tb testing.TB, address string) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout(Network(address), Path(address), 5*time.Second)
	if err != nil {
		tb.Fatalf("servertest: dial %s: %v", address, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// socketDir returns a directory for a socket. A Unix socket path must fit
// in 108 bytes; t.TempDir's path grows with the test's name, so a long
// name falls back to a short directory under os.TempDir.
func socketDir(tb testing.TB) string {
	dir := tb.TempDir()
	if len(dir)+len("/s.sock") < 100 {
		return dir
	}
	dir, err := os.MkdirTemp("", "srvt")
	if err != nil {
		tb.Fatalf("servertest: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// logWriter sends log lines to the test log until the test is over (a
// line logged after that would panic the test binary).
type logWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *logWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
