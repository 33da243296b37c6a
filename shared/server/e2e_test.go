package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
	"github.com/moneta-cache/moneta/shared/server/servertest"
)

var networks = []string{"unix", "tcp"}

// startStore serves a fresh memstore (the server adds its connection
// lines to the store's stats).
func startStore(t *testing.T, network string, cfg server.Config) (*server.Server, string) {
	t.Helper()
	return servertest.StartConfig(t, network, cfg, memstore.New(memstore.Options{}))
}

func TestGomemcacheEveryOperation(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			_, addr := startStore(t, network, server.Config{})
			mc := memcache.New(servertest.Path(addr))
			mc.Timeout = 5 * time.Second
			must := func(what string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			want := func(what string, err, target error) {
				t.Helper()
				if !errors.Is(err, target) {
					t.Fatalf("%s: got %v, want %v", what, err, target)
				}
			}

			must("ping", mc.Ping())
			_, err := mc.Get("nope")
			want("get miss", err, memcache.ErrCacheMiss)

			must("set", mc.Set(&memcache.Item{Key: "k", Value: []byte("hello"), Flags: 42}))
			it, err := mc.Get("k")
			must("get", err)
			if string(it.Value) != "hello" || it.Flags != 42 {
				t.Fatalf("get: %q flags %d", it.Value, it.Flags)
			}

			want("add existing", mc.Add(&memcache.Item{Key: "k", Value: []byte("x")}), memcache.ErrNotStored)
			must("add new", mc.Add(&memcache.Item{Key: "k2", Value: []byte("two")}))
			want("replace missing", mc.Replace(&memcache.Item{Key: "k3", Value: []byte("x")}), memcache.ErrNotStored)
			must("replace", mc.Replace(&memcache.Item{Key: "k2", Value: []byte("TWO")}))
			must("append", mc.Append(&memcache.Item{Key: "k", Value: []byte(" world")}))
			must("prepend", mc.Prepend(&memcache.Item{Key: "k", Value: []byte(">> ")}))
			want("append missing", mc.Append(&memcache.Item{Key: "zz", Value: []byte("x")}), memcache.ErrNotStored)

			it, err = mc.Get("k")
			must("get after append", err)
			if string(it.Value) != ">> hello world" || it.Flags != 42 {
				t.Fatalf("after append/prepend: %q flags %d", it.Value, it.Flags)
			}
			it.Value = []byte("swapped")
			must("cas", mc.CompareAndSwap(it))
			want("stale cas", mc.CompareAndSwap(it), memcache.ErrCASConflict)

			m, err := mc.GetMulti([]string{"k", "missing", "k2"})
			must("get multi", err)
			if len(m) != 2 || string(m["k"].Value) != "swapped" || string(m["k2"].Value) != "TWO" {
				t.Fatalf("get multi: %v", m)
			}

			must("set counter", mc.Set(&memcache.Item{Key: "n", Value: []byte("10")}))
			if v, err := mc.Increment("n", 5); err != nil || v != 15 {
				t.Fatalf("incr: %d %v", v, err)
			}
			if v, err := mc.Decrement("n", 100); err != nil || v != 0 {
				t.Fatalf("decr: %d %v", v, err)
			}
			_, err = mc.Increment("missing", 1)
			want("incr miss", err, memcache.ErrCacheMiss)
			if _, err := mc.Increment("k", 1); err == nil || !strings.Contains(err.Error(), "non-numeric") {
				t.Fatalf("incr non-numeric: %v", err)
			}

			must("touch", mc.Touch("k", 100))
			want("touch miss", mc.Touch("missing", 100), memcache.ErrCacheMiss)
			it, err = mc.GetAndTouch("k", 0)
			must("gat", err)
			if string(it.Value) != "swapped" {
				t.Fatalf("gat: %q", it.Value)
			}
			_, err = mc.GetAndTouch("missing", 0)
			want("gat miss", err, memcache.ErrCacheMiss)

			// An exptime already past: stored, never readable.
			must("set expired", mc.Set(&memcache.Item{Key: "gone", Value: []byte("x"), Expiration: -1}))
			_, err = mc.Get("gone")
			want("get expired", err, memcache.ErrCacheMiss)

			must("delete", mc.Delete("k2"))
			want("delete miss", mc.Delete("k2"), memcache.ErrCacheMiss)
			must("flush_all", mc.FlushAll())
			_, err = mc.Get("k")
			want("get after flush", err, memcache.ErrCacheMiss)
			must("delete all", mc.DeleteAll())

			// Long and binary-unsafe-looking values go through untouched.
			big := bytes.Repeat([]byte("0123456789\r\n"), 50_000) // 600 KB, larger than the buffers
			must("set big", mc.Set(&memcache.Item{Key: "big", Value: big}))
			it, err = mc.Get("big")
			must("get big", err)
			if !bytes.Equal(it.Value, big) {
				t.Fatal("big value corrupted")
			}
		})
	}
}

// conn is a raw client connection with a line reader.
type rawConn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	c := servertest.Dial(t, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads exactly len(want) bytes and compares.
func (c *rawConn) expect(want string) {
	c.t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.r, got); err != nil {
		c.t.Fatalf("reading %q: %v (got %q)", want, err, got)
	}
	if string(got) != want {
		c.t.Fatalf("got %q\nwant %q", got, want)
	}
}

func (c *rawConn) expectClosed() {
	c.t.Helper()
	b, err := io.ReadAll(c.r)
	if err != nil || len(b) != 0 {
		c.t.Fatalf("want a clean close, got %q, %v", b, err)
	}
}

func TestRawTextScript(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			_, addr := startStore(t, network, server.Config{})
			c := dialRaw(t, addr)
			c.send("set a 5 0 3\r\nabc\r\nget a b\r\n")
			c.expect("STORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\n")
			c.send("gets a\r\n")
			c.expect("VALUE a 5 3 1\r\nabc\r\nEND\r\n")
			c.send("cas a 0 0 1 1\r\nx\r\ncas a 0 0 1 1\r\ny\r\n")
			c.expect("STORED\r\nEXISTS\r\n")
			c.send("set n 0 0 2 noreply\r\n10\r\nincr n 5\r\ndecr n 100\r\n")
			c.expect("15\r\n0\r\n")
			c.send("delete a\r\ndelete a\r\ntouch n 10\r\n")
			c.expect("DELETED\r\nNOT_FOUND\r\nTOUCHED\r\n")
			c.send("bogus\r\nversion\r\n")
			c.expect("ERROR\r\nVERSION " + memstore.DefaultVersion + "\r\n")
			// A bad data chunk is answered and the stream stays in sync.
			c.send("set b 0 0 1\r\nxyz\r\nget n\r\n")
			c.expect("CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE n 0 2\r\n0 \r\nEND\r\n")
			c.send("quit\r\n")
			c.expectClosed()
		})
	}
}

// binReq builds a binary request packet.
func binReq(op byte, key, extras, value []byte, opaque uint32, cas uint64) []byte {
	h := make([]byte, 24)
	h[0], h[1] = 0x80, op
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = byte(len(extras))
	binary.BigEndian.PutUint32(h[8:], uint32(len(extras)+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[12:], opaque)
	binary.BigEndian.PutUint64(h[16:], cas)
	return append(append(append(h, extras...), key...), value...)
}

type binResp struct {
	op             byte
	status         uint16
	opaque         uint32
	cas            uint64
	extras, key, v []byte
}

func (c *rawConn) readBin() binResp {
	c.t.Helper()
	h := make([]byte, 24)
	if _, err := io.ReadFull(c.r, h); err != nil {
		c.t.Fatalf("binary header: %v", err)
	}
	if h[0] != 0x81 {
		c.t.Fatalf("response magic %#x", h[0])
	}
	body := make([]byte, binary.BigEndian.Uint32(h[8:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	kl, el := int(binary.BigEndian.Uint16(h[2:])), int(h[4])
	return binResp{
		op: h[1], status: binary.BigEndian.Uint16(h[6:]), opaque: binary.BigEndian.Uint32(h[12:]),
		cas: binary.BigEndian.Uint64(h[16:]), extras: body[:el], key: body[el : el+kl], v: body[el+kl:],
	}
}

func TestRawBinary(t *testing.T) {
	const (
		opGet, opSet, opDelete, opIncr, opQuit = 0x00, 0x01, 0x04, 0x05, 0x07
		opNoop, opVersion, opGetQ, opGetKQ     = 0x0a, 0x0b, 0x09, 0x0d
	)
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			_, addr := startStore(t, network, server.Config{})
			c := dialRaw(t, addr)
			setExtras := []byte{0, 0, 0, 7, 0, 0, 0, 0} // flags 7, exptime 0
			c.send(string(binReq(opSet, []byte("k"), setExtras, []byte("value"), 11, 0)))
			set := c.readBin()
			if set.op != opSet || set.status != 0 || set.opaque != 11 || set.cas == 0 {
				t.Fatalf("set: %+v", set)
			}

			// A quiet pipeline answers only hits, then the noop.
			var p []byte
			p = append(p, binReq(opGetQ, []byte("miss1"), nil, nil, 1, 0)...)
			p = append(p, binReq(opGetKQ, []byte("k"), nil, nil, 2, 0)...)
			p = append(p, binReq(opGetQ, []byte("miss2"), nil, nil, 3, 0)...)
			p = append(p, binReq(opNoop, nil, nil, nil, 4, 0)...)
			c.send(string(p))
			hit := c.readBin()
			if hit.opaque != 2 || string(hit.key) != "k" || string(hit.v) != "value" ||
				binary.BigEndian.Uint32(hit.extras) != 7 || hit.cas != set.cas {
				t.Fatalf("getkq hit: %+v", hit)
			}
			if noop := c.readBin(); noop.op != opNoop || noop.opaque != 4 {
				t.Fatalf("noop: %+v", noop)
			}

			c.send(string(binReq(opGet, []byte("nope"), nil, nil, 5, 0)))
			if miss := c.readBin(); miss.status != 1 || miss.opaque != 5 {
				t.Fatalf("get miss: %+v", miss)
			}
			ctr := make([]byte, 20)
			binary.BigEndian.PutUint64(ctr[0:], 3)   // delta
			binary.BigEndian.PutUint64(ctr[8:], 100) // initial
			binary.BigEndian.PutUint32(ctr[16:], 0)  // exptime: vivify
			c.send(string(binReq(opIncr, []byte("ctr"), ctr, nil, 6, 0)))
			c.send(string(binReq(opIncr, []byte("ctr"), ctr, nil, 7, 0)))
			if r := c.readBin(); binary.BigEndian.Uint64(r.v) != 100 {
				t.Fatalf("incr vivify: %+v", r)
			}
			if r := c.readBin(); binary.BigEndian.Uint64(r.v) != 103 {
				t.Fatalf("incr: %+v", r)
			}
			c.send(string(binReq(opDelete, []byte("k"), nil, nil, 8, set.cas+1000)))
			if r := c.readBin(); r.status != 2 { // key exists: CAS mismatch
				t.Fatalf("delete with wrong cas: %+v", r)
			}
			c.send(string(binReq(opVersion, nil, nil, nil, 9, 0)))
			if r := c.readBin(); string(r.v) != memstore.DefaultVersion {
				t.Fatalf("version: %+v", r)
			}
			c.send(string(binReq(opQuit, nil, nil, nil, 10, 0)))
			if r := c.readBin(); r.op != opQuit || r.opaque != 10 {
				t.Fatalf("quit: %+v", r)
			}
			c.expectClosed()
		})
	}
}

func TestPipelinedTextInOrder(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			_, addr := startStore(t, network, server.Config{})
			c := dialRaw(t, addr)
			var req, want strings.Builder
			for i := range 500 {
				fmt.Fprintf(&req, "set k%d 0 0 %d\r\nv%d\r\nget k%d\r\n", i%7, len(fmt.Sprint(i))+1, i, i%7)
				fmt.Fprintf(&want, "STORED\r\nVALUE k%d 0 %d\r\nv%d\r\nEND\r\n", i%7, len(fmt.Sprint(i))+1, i)
			}
			go io.WriteString(c, req.String()) // ~14 KB; the server reads while we read
			c.expect(want.String())
		})
	}
}

func TestTextOneByteAtATime(t *testing.T) {
	_, addr := startStore(t, "tcp", server.Config{})
	c := dialRaw(t, addr)
	for _, b := range []byte("set slow 1 0 5\r\nhello\r\nget slow\r\n") {
		if _, err := c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	c.expect("STORED\r\nVALUE slow 1 5\r\nhello\r\nEND\r\n")
}

func TestMaxConnsMessage(t *testing.T) {
	s, addr := startStore(t, "unix", server.Config{MaxConns: 1})
	first := dialRaw(t, addr)
	first.send("version\r\n")
	first.expect("VERSION " + memstore.DefaultVersion + "\r\n")
	second := dialRaw(t, addr)
	second.expect("SERVER_ERROR too many open connections\r\n")
	second.expectClosed()
	if n := s.Stats().RejectedConns.Load(); n != 1 {
		t.Errorf("RejectedConns = %d", n)
	}
	// The stats command reports the same counters: the server puts them
	// into the handler's answer after its pointer_size line, where
	// memcached has them.
	first.send("stats\r\n")
	var stats []string
	for {
		line, err := first.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "END\r\n" {
			break
		}
		stats = append(stats, line)
	}
	all := strings.Join(stats, "")
	if !strings.Contains(all, "STAT pointer_size 64\r\nSTAT max_connections 1\r\nSTAT curr_connections 1\r\nSTAT total_connections 2\r\nSTAT rejected_connections 1\r\nSTAT bytes_read ") {
		t.Errorf("stats lack the connection lines after pointer_size:\n%s", all)
	}
	if !strings.HasPrefix(all, "STAT pid ") || strings.Count(all, "curr_connections") != 1 {
		t.Errorf("stats: want the handler's lines once each, pid first:\n%s", all)
	}
}

// blockingStore holds "get block" until released, to observe shutdown.
type blockingStore struct {
	*memstore.Store
	entered, release chan struct{}
}

func (b *blockingStore) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if string(req.Key()) == "block" {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Store.Handle(ctx, req, resp)
}

func TestShutdownDrainsInFlightRequest(t *testing.T) {
	h := &blockingStore{Store: memstore.New(memstore.Options{}), entered: make(chan struct{}), release: make(chan struct{})}
	srv, err := server.New(server.Config{}, h)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	idle := dialRaw(t, addr)
	idle.send("version\r\n")
	idle.expect("VERSION " + memstore.DefaultVersion + "\r\n")
	busy := dialRaw(t, addr)
	busy.send("get block\r\n")
	<-h.entered

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	idle.expectClosed()
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after Shutdown")
	}
	close(h.release)
	busy.expect("END\r\n")
	busy.expectClosed()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestListenAndServeUnixSocketMode(t *testing.T) {
	path := t.TempDir() + "/m.sock"
	if len(path) > 100 {
		t.Skip("temp path too long for a socket")
	}
	srv, err := server.New(server.Config{SocketMode: 0o660}, memstore.New(memstore.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe("unix:" + path) }()
	deadline := time.Now().Add(5 * time.Second)
	var c net.Conn
	for {
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // polling for the listener
	}
	c.Close()
	if fi, err := statMode(path); err != nil || fi != 0o660 {
		t.Errorf("socket mode %o, %v", fi, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("ListenAndServe: %v", err)
	}
}

func statMode(path string) (os.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Mode().Perm(), nil
}

// BenchmarkPipelinedGets measures the server loop with the real text codec
// and memstore: batches of 100 pipelined gets of a 100-byte value over a
// Unix socket. The client side allocates nothing, so allocs/op is the
// server's (codec, loop and handler) per request.
func BenchmarkPipelinedGets(b *testing.B) {
	store := memstore.New(memstore.Options{})
	_, addr := servertest.StartConfig(b, "unix", server.Config{Logger: discardLogger()}, store)
	c, err := net.Dial("unix", servertest.Path(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	value := strings.Repeat("x", 100)
	fmt.Fprintf(c, "set k 0 0 %d\r\n%s\r\n", len(value), value)
	if _, err := io.ReadFull(c, make([]byte, len("STORED\r\n"))); err != nil {
		b.Fatal(err)
	}
	const batch = 100
	req := []byte(strings.Repeat("get k\r\n", batch))
	replyLen := batch * len("VALUE k 0 100\r\n"+value+"\r\nEND\r\n")
	buf := make([]byte, replyLen)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
