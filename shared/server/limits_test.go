package server_test

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/server"
	"github.com/moneta-cache/moneta/shared/server/servertest"
)

// TestSetLimitsAppliesToNewConnections raises a full server's connection
// limit at run time (what a SIGHUP reload does) and expects the next
// connection to be served instead of refused.
func TestSetLimitsAppliesToNewConnections(t *testing.T) {
	srv, addr := servertest.StartConfig(t, "unix", server.Config{MaxConns: 1}, memstore.New(memstore.Options{}))
	first := servertest.Dial(t, addr)
	defer first.Close()
	ask := func(c interface {
		Write([]byte) (int, error)
		SetDeadline(time.Time) error
	}, r *bufio.Reader) string {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("version\r\n"))
		line, _ := r.ReadString('\n')
		return line
	}
	if got := ask(first, bufio.NewReader(first)); !strings.HasPrefix(got, "VERSION") {
		t.Fatalf("first connection: %q", got)
	}
	second := servertest.Dial(t, addr)
	if got := ask(second, bufio.NewReader(second)); !strings.HasPrefix(got, "SERVER_ERROR too many open connections") {
		t.Fatalf("second connection over the limit: %q", got)
	}
	second.Close()

	srv.SetLimits(2, 0)
	third := servertest.Dial(t, addr)
	defer third.Close()
	if got := ask(third, bufio.NewReader(third)); !strings.HasPrefix(got, "VERSION") {
		t.Fatalf("after raising the limit: %q", got)
	}
	if got := srv.Stats().MaxConns.Load(); got != 2 {
		t.Fatalf("stats max conns = %d", got)
	}
}
