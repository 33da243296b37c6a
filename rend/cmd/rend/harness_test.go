package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
)

// End-to-end tests: the rend and mnemonic binaries, built once in TestMain,
// run as real processes in front of real memcached processes.

// bin holds the binaries TestMain builds once per test run (package state
// because TestMain has no other way to hand them to the tests).
var bin mctest.Binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rend-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if bin, err = mctest.BuildMoneta(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startMnemonic starts a real mnemonic (see mctest.StartMnemonic) that takes
// rend's largest test values. extra flags come last (they win).
func startMnemonic(t *testing.T, extra ...string) *mctest.Mnemonic {
	t.Helper()
	args := []string{"-shards", "2", "-max-item-size", strconv.Itoa(21 << 20), "-block-cache-bytes", strconv.Itoa(16 << 20),
		"-write-buffer-bytes", strconv.Itoa(8 << 20)}
	return mctest.StartMnemonic(t, bin.Mnemonic, "", append(args, extra...)...)
}

// rendProc is a running rend with its addresses.
type rendProc struct {
	*mctest.Proc
	regular, batch, admin string
}

// startRend runs rend in front of l1 (and l2 when not empty). The regular
// port is TCP, the batch port a Unix socket, so both kinds are exercised.
func startRend(t *testing.T, l1, l2 string, extra ...string) *rendProc {
	t.Helper()
	ports := mctest.FreePorts(t, 2)
	r := &rendProc{
		regular: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		admin:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}
	args := []string{"-listen", r.regular, "-l1", l1, "-admin", r.admin, "-backend-timeout", "2s"}
	if l2 != "" {
		r.batch = "unix:" + filepath.Join(mctest.SocketDir(t), "batch.sock")
		args = append(args, "-l2", l2, "-batch-listen", r.batch)
	}
	args = append(args, extra...)
	r.Proc = mctest.StartProc(t, "rend", r.regular, bin.Rend, args...)
	// The admin listener opens after the memcached ports: wait for it too
	// (unless a later -admin turned it off).
	for i := range extra {
		if extra[i] == "-admin" && i+1 < len(extra) && extra[i+1] == "" {
			return r
		}
	}
	eventually(t, 10*time.Second, "rend's admin listener", func() bool {
		c, err := net.Dial("tcp", r.admin)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return r
}

// conn is a raw text/meta client connection for wire-level checks
// (mctest.Conn), with the helpers rend's tests share.
type conn struct{ *mctest.Conn }

func dial(t *testing.T, address string) *conn { t.Helper(); return &conn{mctest.Dial(t, address)} }

func (c *conn) send(s string) { c.TB.Helper(); c.Send(s) }
func (c *conn) line() string  { c.TB.Helper(); return c.Line() }

// expect sends req and checks the reply lines.
func (c *conn) expect(req string, want ...string) { c.TB.Helper(); c.Do(req, want...) }

// set stores value with the text protocol.
func (c *conn) set(key string, value []byte, flags uint32, exptime int64) {
	c.TB.Helper()
	c.send(fmt.Sprintf("set %s %d %d %d\r\n%s\r\n", key, flags, exptime, len(value), value))
	if got := c.line(); got != "STORED" {
		c.TB.Fatalf("set %s (%d bytes): %q", key, len(value), got)
	}
}

// get reads one key with gets; ok is false on a miss.
func (c *conn) get(key string) (value []byte, flags uint32, cas uint64, ok bool) {
	c.TB.Helper()
	c.send("gets " + key + "\r\n")
	l := c.line()
	if l == "END" {
		return nil, 0, 0, false
	}
	var k string
	var n int
	if _, err := fmt.Sscanf(l, "VALUE %s %d %d %d", &k, &flags, &n, &cas); err != nil {
		c.TB.Fatalf("gets %s: %q", key, l)
	}
	value = make([]byte, n+2)
	if _, err := io.ReadFull(c.R, value); err != nil {
		c.TB.Fatal(err)
	}
	if end := c.line(); end != "END" {
		c.TB.Fatalf("gets %s: trailer %q", key, end)
	}
	return value[:n], flags, cas, true
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	mctest.Eventually(t, d, what, cond)
}
