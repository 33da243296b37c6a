package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	r := &rendProc{
		regular: fmt.Sprintf("127.0.0.1:%d", mctest.FreePort(t)),
		admin:   fmt.Sprintf("127.0.0.1:%d", mctest.FreePort(t)),
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

// conn is a raw text/meta client connection for wire-level checks.
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, address string) *conn {
	t.Helper()
	network, a := "tcp", address
	if strings.HasPrefix(address, "unix:") {
		network, a = "unix", strings.TrimPrefix(address, "unix:")
	}
	c, err := net.DialTimeout(network, a, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10)}
}

func (c *conn) send(s string) {
	c.t.Helper()
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *conn) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// expect sends req and checks the reply lines.
func (c *conn) expect(req string, want ...string) {
	c.t.Helper()
	c.send(req)
	for _, w := range want {
		if got := c.line(); got != w {
			c.t.Fatalf("%q: got %q, want %q", req, got, w)
		}
	}
}

// set stores value with the text protocol.
func (c *conn) set(key string, value []byte, flags uint32, exptime int64) {
	c.t.Helper()
	c.send(fmt.Sprintf("set %s %d %d %d\r\n%s\r\n", key, flags, exptime, len(value), value))
	if got := c.line(); got != "STORED" {
		c.t.Fatalf("set %s (%d bytes): %q", key, len(value), got)
	}
}

// get reads one key with gets; ok is false on a miss.
func (c *conn) get(key string) (value []byte, flags uint32, cas uint64, ok bool) {
	c.t.Helper()
	c.send("gets " + key + "\r\n")
	l := c.line()
	if l == "END" {
		return nil, 0, 0, false
	}
	var k string
	var n int
	if _, err := fmt.Sscanf(l, "VALUE %s %d %d %d", &k, &flags, &n, &cas); err != nil {
		c.t.Fatalf("gets %s: %q", key, l)
	}
	value = make([]byte, n+2)
	if _, err := readFull(c.br, value); err != nil {
		c.t.Fatal(err)
	}
	if end := c.line(); end != "END" {
		c.t.Fatalf("gets %s: trailer %q", key, end)
	}
	return value[:n], flags, cas, true
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	mctest.Eventually(t, d, what, cond)
}
