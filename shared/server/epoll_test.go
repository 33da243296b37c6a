//go:build linux

package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/moneta-cache/moneta/shared/memstore"
)

// startEpoll serves h with the event loop on a loopback port.
func startEpoll(t *testing.T, h *memBatcher) (*Server, string) {
	t.Helper()
	return startEpollConfig(t, Config{}, h)
}

func startEpollConfig(t *testing.T, cfg Config, h *memBatcher) (*Server, string) {
	t.Helper()
	cfg.NetLoop = NetLoopEpoll
	return serveTCP(t, cfg, h)
}

func dialT(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// converse sends each request on its own and reads its reply up to and
// including the line that ends it.
func converse(t *testing.T, c net.Conn, r *bufio.Reader, req, last string) string {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		line, err := r.ReadString('\n')
		out.WriteString(line)
		if err != nil {
			t.Fatalf("reply to %.30q: %q: %v", req, out.String(), err)
		}
		if strings.HasPrefix(line, last) {
			return out.String()
		}
	}
}

// The loop answers one request at a time per connection the same bytes
// as a goroutine per connection does, whatever the request: the gets it
// serves inline and what it hands to a goroutine (sets, a gat, lines
// longer than its head, pipelines, a malformed line, binary).
func TestEpollSameBytes(t *testing.T) {
	_, loop := startEpoll(t, &memBatcher{Store: memstore.New(memstore.Options{})})
	plain := startTCPServer(t, &memBatcher{Store: memstore.New(memstore.Options{})})
	long := strings.Repeat("k", 60)
	steps := [][2]string{
		{"set a 5 0 1\r\nx\r\n", "STORED"},
		{"get a\r\n", "END"},
		{"gets a\r\n", "END"},
		{"mg a v f k\r\n", "VA"},
		{"mg zz v\r\n", "EN"},
		{"get " + long + " a a a\r\n", "END"},
		{"set big 0 0 100000\r\n" + strings.Repeat("b", 100000) + "\r\n", "STORED"},
		{"get big\r\n", "END"},
		{"get a\r\nget a\r\nget big\r\n", "END"},
		{"mg a T30 v\r\n", "VA"},
		{"get " + strings.Repeat("x", 251) + "\r\n", "CLIENT_ERROR"},
		{"bogus\r\n", "ERROR"},
		{"get a\r\n", "END"},
	}
	cl, rl := dialT(t, loop)
	cp, rp := dialT(t, plain)
	for _, st := range steps {
		want := converse(t, cp, rp, st[0], st[1])
		if got := converse(t, cl, rl, st[0], st[1]); got != want {
			t.Errorf("%.40q: loop answered %.80q, plain %.80q", st[0], got, want)
		}
	}
	// The last step of a pipeline may be a get that ends on "END": make
	// sure nothing more is owed by asking once more.
	if got := converse(t, cl, rl, "get a\r\n", "END"); got != "VALUE a 5 1\r\nx\r\nEND\r\n" {
		t.Errorf("after the steps: %q", got)
	}
	// Pipelines in one write. The first 64 bytes of the first end
	// exactly at a request: the rest comes with the same edge.
	for _, in := range []string{
		strings.Repeat("set a 0 0 1\r\n1\r\n", 11) + "get a\r\nquit\r\n",
		strings.Repeat("get a\r\n", 40) + "mg a v\r\nquit\r\n",
		"get a " + strings.Repeat("a ", 200) + "\r\nquit\r\n",
	} {
		if got, want := exchange(t, loop, in), exchange(t, plain, in); got != want {
			t.Errorf("%.40q: loop answered %.80q, plain %.80q", in, got, want)
		}
	}
	for _, c := range []net.Conn{cl, cp} {
		io.WriteString(c, "quit\r\n")
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Errorf("quit: %q %v", b, err)
		}
	}
}

// Many clients at once, one request in flight each (the loop's batches),
// with sets and multi-gets among the gets: every reply is the client's own.
func TestEpollManyClients(t *testing.T) {
	mb := &memBatcher{Store: memstore.New(memstore.Options{})}
	_, addr := startEpoll(t, mb)
	const clients, rounds = 40, 150
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mc := memcache.New(addr)
			mc.Timeout = 10 * time.Second
			mc.MaxIdleConns = 1
			for r := range rounds {
				k := fmt.Sprintf("c%d-%d", i, r%7)
				v := []byte(fmt.Sprintf("%s=%d", k, r))
				if r%10 == 0 {
					if err := mc.Set(&memcache.Item{Key: k, Value: v}); err != nil {
						errc <- err
						return
					}
				}
				if r%13 == 0 {
					keys := []string{k, "nope", fmt.Sprintf("c%d-0", i)}
					if _, err := mc.GetMulti(keys); err != nil {
						errc <- err
						return
					}
					continue
				}
				it, err := mc.Get(k)
				if err == memcache.ErrCacheMiss {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				if !strings.HasPrefix(string(it.Value), k+"=") {
					errc <- fmt.Errorf("get %s: got %q", k, it.Value)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	multi := 0
	for _, n := range mb.keys {
		if n > 1 {
			multi++
		}
	}
	t.Logf("%d HandleGets calls, %d with more than one key", len(mb.keys), multi)
}

// A client that does not read its (large) reply, and one that sent half a
// value, do not hold up the loop's other clients.
func TestEpollStalledClients(t *testing.T) {
	_, addr := startEpoll(t, &memBatcher{Store: memstore.New(memstore.Options{})})
	c, r := dialT(t, addr)
	big := strings.Repeat("z", 1000000)
	converse(t, c, r, "set big 0 0 "+fmt.Sprint(len(big))+"\r\n"+big+"\r\n", "STORED")
	// Not read for now: 16 MB of replies, more than the socket buffers
	// hold. The first get alone, the rest as a pipeline.
	const gets = 16
	io.WriteString(c, "get big\r\n")
	time.Sleep(10 * time.Millisecond)
	io.WriteString(c, strings.Repeat("get big\r\n", gets-1))
	half, _ := dialT(t, addr)
	io.WriteString(half, "set h 0 0 10\r\n12345")
	other, ro := dialT(t, addr)
	for i := range 50 {
		k := fmt.Sprint("k", i)
		converse(t, other, ro, "set "+k+" 0 0 1\r\nv\r\n", "STORED")
		if got := converse(t, other, ro, "get "+k+"\r\n", "END"); got != "VALUE "+k+" 0 1\r\nv\r\nEND\r\n" {
			t.Fatalf("get %s: %q", k, got)
		}
	}
	io.WriteString(half, "67890\r\n")
	rh := bufio.NewReader(half)
	if line, err := rh.ReadString('\n'); line != "STORED\r\n" {
		t.Errorf("half-sent set: %q %v", line, err)
	}
	for range gets {
		want := "VALUE big 0 " + fmt.Sprint(len(big)) + "\r\n" + big + "\r\nEND\r\n"
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(r, buf); err != nil || string(buf) != want {
			t.Fatalf("big reply: %v (%d bytes)", err, len(buf))
		}
	}
}

// Shutdown closes the connections idle in the loop and returns once all
// are gone; a connection busy on its goroutine finishes its request.
func TestEpollShutdown(t *testing.T) {
	s, addr := startEpoll(t, &memBatcher{Store: memstore.New(memstore.Options{})})
	var conns []*bufio.Reader
	for range 20 {
		c, r := dialT(t, addr)
		converse(t, c, r, "get a\r\n", "END")
		conns = append(conns, r)
	}
	if n := s.Stats().CurrConns.Load(); n != 20 {
		t.Fatalf("CurrConns %d, want 20", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, r := range conns {
		if b, err := io.ReadAll(r); err != nil || len(b) != 0 {
			t.Errorf("after shutdown: %q %v", b, err)
		}
	}
	if n := s.Stats().CurrConns.Load(); n != 0 {
		t.Errorf("CurrConns %d after Shutdown", n)
	}
}

// The deadlines a connection's goroutine set (a set reads its value with
// ReadTimeout armed, replies go out with WriteTimeout) may pass while the
// connection idles in the loop; the loop's next read and write must not
// fail for it.
func TestEpollStaleDeadlines(t *testing.T) {
	_, addr := startEpollConfig(t, Config{ReadTimeout: 30 * time.Millisecond, WriteTimeout: 30 * time.Millisecond},
		&memBatcher{Store: memstore.New(memstore.Options{})})
	c, r := dialT(t, addr)
	for i := range 3 {
		// The value comes in a second write: the goroutine reads it.
		io.WriteString(c, "set a 0 0 1\r\n")
		time.Sleep(5 * time.Millisecond)
		converse(t, c, r, "x\r\n", "STORED")
		time.Sleep(100 * time.Millisecond)
		if got := converse(t, c, r, "get a\r\n", "END"); got != "VALUE a 0 1\r\nx\r\nEND\r\n" {
			t.Fatalf("round %d: get after idling: %q", i, got)
		}
	}
}

// BenchmarkEpollGet is one client's gets through the loop (take, a batch
// of one, the reply written by the batch's goroutine); it should allocate
// nothing per request.
func BenchmarkEpollGet(b *testing.B) {
	_, addr := serveTCP(b, Config{NetLoop: NetLoopEpoll}, &memBatcher{Store: memstore.New(memstore.Options{})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "set k 0 0 5\r\nhello\r\n")
	buf := make([]byte, 64)
	if n, err := io.ReadAtLeast(c, buf, len("STORED\r\n")); err != nil || string(buf[:n]) != "STORED\r\n" {
		b.Fatalf("set: %q %v", buf[:n], err)
	}
	req, want := []byte("get k\r\n"), "VALUE k 0 5\r\nhello\r\nEND\r\n"
	b.ReportAllocs()
	for b.Loop() {
		c.Write(req)
		if _, err := io.ReadFull(c, buf[:len(want)]); err != nil {
			b.Fatal(err)
		}
	}
}
