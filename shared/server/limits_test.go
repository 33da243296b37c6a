package server_test

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/binproto"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/protocol"
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

// TestValueBudget: a value the process-wide budget cannot hold is
// swallowed and refused with memcached's out-of-memory answer, on text and
// binary connections alike; the set unlinks the old item; the budget is
// whole again afterwards and counts the refusals.
func TestValueBudget(t *testing.T) {
	srv, addr := servertest.StartConfig(t, "unix", server.Config{MaxValueBytes: 100 << 10,
		Limits: protocol.Limits{MaxItemSize: 1 << 20}}, memstore.New(memstore.Options{}))
	c := servertest.Dial(t, addr)
	defer c.Close()
	big := strings.Repeat("v", 300<<10)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("set k 0 0 1\r\nx\r\nset k 0 0 307200\r\n" + big + "\r\nget k\r\nset k 0 0 2\r\nok\r\nget k\r\nquit\r\n"))
	out, _ := io.ReadAll(c)
	want := "STORED\r\nSERVER_ERROR out of memory storing object\r\nEND\r\nSTORED\r\nVALUE k 0 2\r\nok\r\nEND\r\n"
	if string(out) != want {
		t.Fatalf("got %q, want %q", out, want)
	}

	b := servertest.Dial(t, addr)
	defer b.Close()
	b.SetDeadline(time.Now().Add(10 * time.Second))
	set := binproto.AppendStore(nil, binproto.OpSet, []byte("k"), []byte(big), 0, 0, 0, 9)
	b.Write(binproto.AppendSimple(set, binproto.OpQuit, 10))
	out, _ = io.ReadAll(b)
	if len(out) < binproto.HeaderLen || binproto.ParseHeader(out).Status != binproto.StatusOutOfMemory {
		t.Fatalf("binary set over the budget answered %q", out)
	}
	mctest.Eventually(t, 5*time.Second, "budget released", func() bool {
		used, limit, refused := srv.Stats().ValueBytes()
		return used == 0 && limit == 100<<10 && refused >= 2
	})
}
