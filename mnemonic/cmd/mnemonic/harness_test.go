package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
)

// serveEnv makes the test binary run as mnemonic itself: the integration
// tests start real processes without a separate build step.
const serveEnv = "MNEMONIC_TEST_SERVE"

// nofileEnv, when set in a served process, is the RLIMIT_NOFILE (soft and
// hard) it runs under, as `ulimit -n N` would set it for a real mnemonic.
const nofileEnv = "MNEMONIC_TEST_NOFILE"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		if n, err := strconv.ParseUint(os.Getenv(nofileEnv), 10, 64); err == nil {
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
				fmt.Fprintf(os.Stderr, "setrlimit: %v\n", err)
				os.Exit(3)
			}
		}
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// proc is a mnemonic process owned by a test: this test binary, run as
// mnemonic (serveEnv), under mctest's process handling.
type proc struct {
	*mctest.Mnemonic
	t testing.TB
}

// command returns an unstarted mnemonic process with args and what it
// writes, for runs that end by themselves (bad flags, -version).
func command(args ...string) (*exec.Cmd, *strings.Builder) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), serveEnv+"=1")
	out := new(strings.Builder)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// startMnemonic runs mnemonic on a fresh socket with its data in data (a
// fresh directory if empty) and waits until it answers. extra flags come
// last (they win).
func startMnemonic(t testing.TB, data string, extra ...string) *proc {
	t.Helper()
	return startArgs(t, data, append([]string{"-shards", "2", "-max-disk-bytes", fmt.Sprint(256 << 20),
		"-block-cache-bytes", fmt.Sprint(8 << 20), "-log-level", "warn"}, extra...))
}

// startArgs runs mnemonic with mctest's base flags (socket, data, no
// admin) followed by args, and waits until it answers.
func startArgs(t testing.TB, data string, args []string) *proc {
	t.Helper()
	m := mctest.NewMnemonic(t, os.Args[0], data, args...)
	m.Env = []string{serveEnv + "=1"}
	m.Start()
	return &proc{m, t}
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.Terminate(30 * time.Second); err != nil {
		p.t.Fatalf("mnemonic after SIGTERM: %v\n%s", err, p.Log())
	}
}

// crash kills the process with SIGKILL: no shutdown code runs.
func (p *proc) crash() { p.Stop() }

// textConn is a raw text-protocol connection (mctest.Conn).
type textConn struct{ *mctest.Conn }

func dialText(t testing.TB, a string) *textConn { t.Helper(); return &textConn{mctest.Dial(t, a)} }

func (c *textConn) send(s string) { c.TB.Helper(); c.Send(s) }

// line reads one reply line without its "\r\n".
func (c *textConn) line() string { c.TB.Helper(); return c.Line() }

// expect reads len(want) lines and compares them.
func (c *textConn) expect(want ...string) { c.TB.Helper(); c.Expect(want...) }

// do sends req and compares the reply lines.
func (c *textConn) do(req string, want ...string) { c.TB.Helper(); c.Do(req, want...) }

// binConn is a raw binary-protocol connection.
type binConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

type binPacket struct {
	op     byte
	status uint16
	opaque uint32
	cas    uint64
	extras []byte
	key    []byte
	value  []byte
}

func dialBin(t testing.TB, a string) *binConn {
	t.Helper()
	c := mctest.Dial(t, a)
	return &binConn{t: t, nc: c.NC, r: c.R}
}

func (c *binConn) send(p binPacket) {
	c.t.Helper()
	var h [24]byte
	h[0], h[1] = 0x80, p.op
	binary.BigEndian.PutUint16(h[2:], uint16(len(p.key)))
	h[4] = byte(len(p.extras))
	binary.BigEndian.PutUint32(h[8:], uint32(len(p.extras)+len(p.key)+len(p.value)))
	binary.BigEndian.PutUint32(h[12:], p.opaque)
	binary.BigEndian.PutUint64(h[16:], p.cas)
	b := append(h[:], p.extras...)
	b = append(b, p.key...)
	b = append(b, p.value...)
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *binConn) recv() binPacket {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [24]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	if h[0] != 0x81 {
		c.t.Fatalf("bad magic %#x", h[0])
	}
	body := make([]byte, binary.BigEndian.Uint32(h[8:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatalf("recv body: %v", err)
	}
	kl, el := int(binary.BigEndian.Uint16(h[2:])), int(h[4])
	return binPacket{op: h[1], status: binary.BigEndian.Uint16(h[6:]), opaque: binary.BigEndian.Uint32(h[12:]),
		cas: binary.BigEndian.Uint64(h[16:]), extras: body[:el], key: body[el : el+kl], value: body[el+kl:]}
}

// do sends p and returns the one reply.
func (c *binConn) do(p binPacket) binPacket {
	c.t.Helper()
	c.send(p)
	return c.recv()
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// storeExtras are the flags and exptime of set/add/replace.
func storeExtras(flags, exp uint32) []byte { return append(be32(flags), be32(exp)...) }

// counterExtras are delta, initial and exptime of incr/decr.
func counterExtras(delta, initial uint64, exp uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, delta)
	b = binary.BigEndian.AppendUint64(b, initial)
	return append(b, be32(exp)...)
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	mctest.Eventually(t, d, what, cond)
}
