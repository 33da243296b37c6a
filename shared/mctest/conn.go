package mctest

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
)

// Conn is a raw client connection for wire-level checks of a memcached
// protocol: it writes the bytes a test gives it and reads reply lines,
// failing the test on an I/O error. NC and R are there for tests that read
// values or drive the socket themselves.
type Conn struct {
	TB testing.TB
	NC net.Conn
	// R buffers NC; read replies through it, not through NC.
	R *bufio.Reader
	// Timeout bounds each Send and each Line (default 20 s), so a server
	// that stops answering fails the test instead of hanging it.
	Timeout time.Duration
}

// Dial connects to a moneta address ("unix:/path" or "host:port"); the
// connection is closed when the test ends.
func Dial(tb testing.TB, address string) *Conn {
	tb.Helper()
	nc, err := addr.Dial(context.Background(), address, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &Conn{TB: tb, NC: nc, R: bufio.NewReaderSize(nc, 64<<10), Timeout: 20 * time.Second}
}

// Send writes s as it is.
func (c *Conn) Send(s string) {
	c.TB.Helper()
	c.NC.SetWriteDeadline(time.Now().Add(c.Timeout))
	if _, err := io.WriteString(c.NC, s); err != nil {
		c.TB.Fatalf("send: %v", err)
	}
}

// Line reads one reply line and returns it without its "\r\n".
func (c *Conn) Line() string {
	c.TB.Helper()
	c.NC.SetReadDeadline(time.Now().Add(c.Timeout))
	l, err := c.R.ReadString('\n')
	if err != nil {
		c.TB.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// Expect reads len(want) lines and fails the test at the first that
// differs.
func (c *Conn) Expect(want ...string) {
	c.TB.Helper()
	for _, w := range want {
		if got := c.Line(); got != w {
			c.TB.Fatalf("got %q, want %q", got, w)
		}
	}
}

// Do sends req and expects the reply lines want.
func (c *Conn) Do(req string, want ...string) {
	c.TB.Helper()
	c.Send(req)
	for _, w := range want {
		if got := c.Line(); got != w {
			c.TB.Fatalf("%q: got %q, want %q", req, got, w)
		}
	}
}

// Stats runs "stats [group]" on the text protocol and returns its lines as
// name -> value.
func (c *Conn) Stats(group string) map[string]string {
	c.TB.Helper()
	c.Send(strings.TrimSpace("stats "+group) + "\r\n")
	out := map[string]string{}
	for l := c.Line(); l != "END"; l = c.Line() {
		f := strings.SplitN(l, " ", 3)
		if len(f) != 3 || f[0] != "STAT" {
			c.TB.Fatalf("stats line %q", l)
		}
		out[f[1]] = f[2]
	}
	return out
}
