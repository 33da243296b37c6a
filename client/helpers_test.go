package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/client/ketama"
	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// cluster is a set of real memcached processes arranged in zones.
type cluster struct {
	t     *testing.T
	zones []Zone
	mc    map[string]*mctest.Memcached // by address
}

// startCluster runs zones × perZone memcached processes on loopback TCP.
func startCluster(t *testing.T, names []string, perZone int) *cluster {
	t.Helper()
	cl := &cluster{t: t, mc: map[string]*mctest.Memcached{}}
	for _, name := range names {
		z := Zone{Name: name}
		for i := 0; i < perZone; i++ {
			m := mctest.StartTCP(t, "-m", "64", "-t", "1")
			cl.mc[m.Addr] = m
			z.Servers = append(z.Servers, m.Addr)
		}
		cl.zones = append(cl.zones, z)
	}
	return cl
}

// addServer starts one more memcached in zone zi and returns its address
// (the caller decides when the client learns about it).
func (cl *cluster) addServer(zi int) string {
	m := mctest.StartTCP(cl.t, "-m", "64", "-t", "1")
	cl.mc[m.Addr] = m
	return m.Addr
}

// config returns a client configuration for the cluster with timeouts
// generous enough for a loaded 2-core CI machine; tests about latency set
// their own.
func (cl *cluster) config(local string) Config {
	return Config{
		Zones:        append([]Zone(nil), cl.zones...),
		LocalZone:    local,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 5 * time.Second,
		ProbeMin:     20 * time.Millisecond,
		ProbeMax:     200 * time.Millisecond,
		getenv:       func(string) string { return "" },
		Logger:       slog.New(slog.DiscardHandler),
	}
}

func (cl *cluster) server(zone, i int) string { return cl.zones[zone].Servers[i] }

// stop kills a server (SIGKILL); restart brings up a fresh, empty one on the
// same port.
func (cl *cluster) stop(a string)    { cl.mc[a].Stop() }
func (cl *cluster) restart(a string) { cl.mc[a].Restart() }

// freeze and thaw stop and resume a server without closing its sockets: the
// kernel still accepts connections and buffers requests, but nothing
// answers, which is what a hung or overloaded server looks like.
func (cl *cluster) freeze(a string) {
	cl.t.Helper()
	pid := cl.mc[a].Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		cl.t.Fatal(err)
	}
	cl.t.Cleanup(func() { cl.thaw(a) })
	// A group stop takes effect thread by thread; a worker still running
	// could answer the next request. Wait until every thread is stopped.
	eventually(cl.t, 5*time.Second, "memcached to stop", func() bool { return allThreads(pid, true) })
}

func (cl *cluster) thaw(a string) {
	if pid := cl.mc[a].Pid(); pid != 0 {
		syscall.Kill(pid, syscall.SIGCONT)
		eventually(cl.t, 5*time.Second, "memcached to resume", func() bool { return allThreads(pid, false) })
	}
}

// allThreads reports whether every thread of pid is stopped (state T), or
// none is.
func allThreads(pid int, stopped bool) bool {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return true // gone: neither running nor answering
	}
	for _, task := range tasks {
		b, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
		if err != nil {
			continue
		}
		// The state follows the parenthesised command name.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			return false
		}
		if (b[i+2] == 'T') != stopped {
			return false
		}
	}
	return true
}

// raw is a plain text-protocol connection to one server, independent of the
// code under test, for looking at what the servers hold.
type raw struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, a string) *raw {
	t.Helper()
	c, err := addr.Dial(context.Background(), a, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", a, err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{c: c, r: bufio.NewReader(c)}
}

func (r *raw) line(t testing.TB) string {
	t.Helper()
	s, err := r.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(s, "\r\n")
}

func (r *raw) send(t testing.TB, cmd string) {
	t.Helper()
	r.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// get returns the value of key on this server and whether it is there.
func (r *raw) get(t testing.TB, key string) (string, bool) {
	t.Helper()
	r.send(t, "get "+key)
	l := r.line(t)
	if l == "END" {
		return "", false
	}
	f := strings.Fields(l)
	if len(f) != 4 || f[0] != "VALUE" {
		t.Fatalf("get %s: %q", key, l)
	}
	n, _ := strconv.Atoi(f[3])
	buf := make([]byte, n+2)
	if _, err := ioReadFull(r.r, buf); err != nil {
		t.Fatal(err)
	}
	if end := r.line(t); end != "END" {
		t.Fatalf("get %s: trailer %q", key, end)
	}
	return string(buf[:n]), true
}

func (r *raw) stats(t testing.TB) map[string]uint64 {
	t.Helper()
	r.send(t, "stats")
	m := map[string]uint64{}
	for {
		l := r.line(t)
		if l == "END" {
			return m
		}
		f := strings.Fields(l)
		if len(f) == 3 {
			if v, err := strconv.ParseUint(f[2], 10, 64); err == nil {
				m[f[1]] = v
			}
		}
	}
}

func (r *raw) cmd(t testing.TB, cmd string) string {
	t.Helper()
	r.send(t, cmd)
	return r.line(t)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// holds reports whether server a has key (wire key) with value v.
func holds(t testing.TB, a, key, v string) bool {
	t.Helper()
	got, ok := dialRaw(t, a).get(t, key)
	return ok && got == v
}

// ownerIn returns the server of zone z that owns wire key k.
func ownerIn(z Zone, k string) string {
	return z.Servers[ketama.New(z.Servers).Locate([]byte(k))]
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	mctest.Eventually(t, d, what, cond)
}

func newTestClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func key(i int) string { return fmt.Sprintf("k%05d", i) }

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// nopConn is a pool that never answers anything; for tests of
// configuration only.
type nopConn struct{}

func (nopConn) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	return errors.New("nop")
}
func (nopConn) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	return errors.New("nop")
}
func (nopConn) Close() error { return nil }
