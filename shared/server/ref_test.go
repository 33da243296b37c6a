package server

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/binproto"
	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// refValue is a value of n bytes that differs from every other size's, so a
// value spliced into the wrong place of a reply shows.
func refValue(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%d:%d,", n, i)
	}
	return b.String()[:n]
}

// startServerOn serves h on a fresh listener of network (tcp or unix).
func startServerOn(t testing.TB, network string, h protocol.Handler) (string, string) {
	t.Helper()
	return startServerWith(t, network, h, Config{})
}

// startServerWith is startServerOn with cfg (its Logger is replaced).
func startServerWith(t testing.TB, network string, h protocol.Handler, cfg Config) (string, string) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return network, ln.Addr().String()
}

// Replies too large for the write buffer's free space are sent by
// reference (protocol.RefMinReply: the server writes their values straight
// from the Response with one writev) and arrive byte for byte as the copied
// ones would: classic multi-gets with values on both sides of RefMinValue,
// a get line with repeated keys (the codec's group path), single values
// above the 64 KiB write buffer, mg hits, a pipeline of 20 KB gets (the
// fourth no longer fits), small replies before and after large ones, over
// TCP and unix sockets, with and without get batching.
func TestLargeRepliesByReference(t *testing.T) {
	sizes := []int{0, 10, 511, 512, 1024, 20000, 70000, 300000}
	var sets strings.Builder
	for _, n := range sizes {
		fmt.Fprintf(&sets, "set s%d %d 0 %d\r\n%s\r\n", n, n, n, refValue(n))
	}
	const many = 100 // a multi-get of 1 KiB values, as in the benchmark
	for i := range many {
		fmt.Fprintf(&sets, "set m%d 0 0 1024\r\n%s\r\n", i, refValue(1024))
	}
	stored := strings.Repeat("STORED\r\n", len(sizes)+many)

	value := func(key string, n int) string {
		return fmt.Sprintf("VALUE %s %d %d\r\n%s\r\n", key, n, n, refValue(n))
	}
	var in, want strings.Builder
	add := func(req, reply string) { in.WriteString(req); want.WriteString(reply) }
	var reply strings.Builder
	for _, n := range []int{1024, 20000, 10, -1, 70000, 0, 512, 511, 300000} {
		if n >= 0 {
			reply.WriteString(value(fmt.Sprintf("s%d", n), n))
		}
	}
	add("get s1024 s20000 s10 nokey s70000 s0 s512 s511 s300000\r\n", reply.String()+"END\r\n")
	add("get s10\r\n", value("s10", 10)+"END\r\n")
	var keys strings.Builder
	reply.Reset()
	for i := range many {
		fmt.Fprintf(&keys, " m%d", i)
		fmt.Fprintf(&reply, "VALUE m%d 0 1024\r\n%s\r\n", i, refValue(1024))
	}
	add("get"+keys.String()+"\r\n", reply.String()+"END\r\n")
	add(strings.Repeat("get s20000\r\n", 5), strings.Repeat(value("s20000", 20000)+"END\r\n", 5))
	add("get s512 s70000 s512 s20000 s512\r\n", value("s512", 512)+value("s70000", 70000)+value("s512", 512)+value("s20000", 20000)+value("s512", 512)+"END\r\n")
	add("get s512 s512 s20000 s512\r\n", value("s512", 512)+value("s512", 512)+value("s20000", 20000)+value("s512", 512)+"END\r\n")
	add("mg s300000 v f\r\n", "VA 300000 f300000\r\n"+refValue(300000)+"\r\n")
	add("mg s20000 v\r\n", "VA 20000\r\n"+refValue(20000)+"\r\n")
	add("mg s10 v\r\nmg nokey v\r\n", "VA 10\r\n"+refValue(10)+"\r\nEN\r\n")
	add("get s70000\r\nget s1024\r\n", value("s70000", 70000)+"END\r\n"+value("s1024", 1024)+"END\r\n")
	add("quit\r\n", "")

	for _, network := range []string{"tcp", "unix"} {
		for _, batching := range []bool{false, true} {
			// rawRuntime: the runtime's syscalls, not package rawio's.
			for _, rawRuntime := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/batching=%v/runtimeSyscalls=%v", network, batching, rawRuntime), func(t *testing.T) {
					var h protocol.Handler = memstore.New(memstore.Options{})
					if batching {
						h = &memBatcher{Store: memstore.New(memstore.Options{})}
					}
					network, addr := startServerWith(t, network, h, Config{RuntimeSyscalls: rawRuntime})
					c, err := net.Dial(network, addr)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					r := bufio.NewReader(c)
					go io.WriteString(c, sets.String())
					got := make([]byte, len(stored))
					if _, err := io.ReadFull(r, got); err != nil || string(got) != stored {
						t.Fatalf("sets: %q, %v", got, err)
					}
					// One write: the replies of the whole pipeline are built
					// while the requests are still buffered.
					if _, err := io.WriteString(c, in.String()); err != nil {
						t.Fatal(err)
					}
					all, err := io.ReadAll(r)
					if err != nil {
						t.Fatal(err)
					}
					if string(all) != want.String() {
						t.Fatalf("replies differ from the copied form at byte %d of %d (got %d bytes)",
							firstDiff(string(all), want.String()), want.Len(), len(all))
					}
				})
			}
		}
	}
}

// The binary protocol sends a hit too large for the write buffer's free
// space by reference: its header and flags from the buffer, the value from
// the Response. A small quiet hit before it and a small get after it share the
// stream.
func TestLargeBinaryReplyByReference(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			network, addr := startServerOn(t, network, memstore.New(memstore.Options{}))
			c, err := net.Dial(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			var p []byte
			for i, n := range []int{100, 70000} {
				p = binproto.AppendStore(p, binproto.OpSetQ, fmt.Appendf(nil, "k%d", n), []byte(refValue(n)), uint32(n), 0, 0, uint32(i))
			}
			p = binproto.AppendGet(p, binproto.OpGetKQ, []byte("k100"), 10)
			p = binproto.AppendGet(p, binproto.OpGetK, []byte("k70000"), 11)
			p = binproto.AppendGet(p, binproto.OpGet, []byte("k100"), 12)
			p = binproto.AppendGet(p, binproto.OpGet, []byte("k70000"), 13)
			go c.Write(p)
			buf := make([]byte, 0, 128<<10)
			for _, w := range []struct {
				opaque uint32
				key    string
				n      int
			}{{10, "k100", 100}, {11, "k70000", 70000}, {12, "", 100}, {13, "", 70000}} {
				resp, err := binproto.ReadResponse(r, buf)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Header.Status != binproto.StatusOK || resp.Header.Opaque != w.opaque ||
					string(resp.Key) != w.key || resp.Flags() != uint32(w.n) || string(resp.Value) != refValue(w.n) {
					t.Fatalf("reply %d: status %v opaque %d key %q flags %d, %d value bytes (want %d)",
						w.opaque, resp.Header.Status, resp.Header.Opaque, resp.Key, resp.Flags(), len(resp.Value), w.n)
				}
			}
		})
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// benchMultiGet serves a 100-key multi-get of 1 KiB values (the hot-path
// budget's multi-get: its reply is sent by reference) over a unix socket and
// returns one round trip.
func benchMultiGet(tb testing.TB) func() {
	network, addr := startServerOn(tb, "unix", memstore.New(memstore.Options{}))
	c, err := net.Dial(network, addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	var sets, get, want strings.Builder
	get.WriteString("get")
	for i := range 100 {
		fmt.Fprintf(&sets, "set m%d 0 0 1024\r\n%s\r\n", i, refValue(1024))
		fmt.Fprintf(&get, " m%d", i)
		fmt.Fprintf(&want, "VALUE m%d 0 1024\r\n%s\r\n", i, refValue(1024))
	}
	get.WriteString("\r\n")
	want.WriteString("END\r\n")
	go io.WriteString(c, sets.String())
	if _, err := io.ReadFull(c, make([]byte, 100*len("STORED\r\n"))); err != nil {
		tb.Fatal(err)
	}
	req, buf := []byte(get.String()), make([]byte, want.Len())
	return func() {
		if _, err := c.Write(req); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			tb.Fatal(err)
		}
	}
}

// A multi-get reply sent by reference allocates nothing per request (the
// count is the whole process's: the client loop allocates nothing).
func TestLargeMultiGetAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled items at random")
	}
	run := benchMultiGet(t)
	for range 10 {
		run() // warm the pools, the iovec cache, the buffers
	}
	if n := testing.AllocsPerRun(100, run); n >= 1 {
		t.Errorf("%.1f allocations per 100-key multi-get", n)
	}
}

// BenchmarkLargeMultiGet is the hot-path budget's multi-get through the
// server loop, the text codec and memstore: 100 keys of 1 KiB per request.
func BenchmarkLargeMultiGet(b *testing.B) {
	run := benchMultiGet(b)
	b.ReportAllocs()
	b.SetBytes(100 * 1024)
	for b.Loop() {
		run()
	}
}

// A client that leaves while a reply is being sent by reference (the writev
// fails part way) costs the server only that connection: the references
// are dropped with it and the next client is served.
func TestReferencedReplyToVanishedClient(t *testing.T) {
	network, addr := startServerOn(t, "tcp", memstore.New(memstore.Options{}))
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	big := refValue(1 << 20)
	fmt.Fprintf(c, "set big 0 0 %d\r\n%s\r\n", len(big), big)
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || line != "STORED\r\n" {
		t.Fatalf("set: %q, %v", line, err)
	}
	// Eight 1 MiB values: more than the socket buffers hold, so the
	// server is still writing when the connection goes.
	io.WriteString(c, "get big big big big big big big big\r\n")
	if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetLinger(0) // reset, not a polite close
	c.Close()

	c2, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c2, "get big\r\nquit\r\n")
	all, err := io.ReadAll(c2)
	if err != nil || string(all) != fmt.Sprintf("VALUE big 0 %d\r\n%s\r\nEND\r\n", len(big), big) {
		t.Fatalf("next client: %d bytes, %v", len(all), err)
	}
}

// A binary multi-get (a run of getkq packets closed by a noop) through a
// batching server (serveRun: runs of up to maxGetBatch requests, each
// answered from one HandleGets call) must answer byte for byte what a plain
// server answers, opaques, flags, CAS and quiet misses included, while its
// replies overflow the write buffer: runs of more than maxGetBatch requests
// (two runs in one burst, the second reusing the first's Responses), values
// above the 64 KiB write buffer (sent by reference), values on both sides of
// RefMinValue, getk and get misses, a set and a get between runs, a quit,
// over TCP and unix sockets. A change that sends a run's values by
// reference, or otherwise keeps a run's Responses past its replies, must
// keep this (the sixth round's attempt failed it until the next run waited
// for the previous run's values to go out).
func TestBinaryMultiGetByReference(t *testing.T) {
	sizes := []int{0, 10, 511, 512, 1024, 3000, 70000}
	var in []byte
	var op uint32
	next := func() uint32 { op++; return op }
	key := func(i int) []byte { return fmt.Appendf(nil, "b%d", i) }
	size := func(i int) int { return sizes[i%len(sizes)] + i }
	const stored = 160
	for i := range stored {
		in = binproto.AppendStore(in, binproto.OpSetQ, key(i), []byte(refValue(size(i))), uint32(i), 0, 0, next())
	}
	in = binproto.AppendSimple(in, binproto.OpNoop, next())
	multiGet := func(from, n int, op binproto.Opcode) {
		for i := from; i < from+n; i++ {
			in = binproto.AppendGet(in, op, key(i), next()) // i >= stored: a miss
		}
	}
	multiGet(0, 150, binproto.OpGetKQ) // 64 + 64 + 22
	in = binproto.AppendSimple(in, binproto.OpNoop, next())
	multiGet(100, 90, binproto.OpGetK) // misses answered with the key
	in = binproto.AppendStore(in, binproto.OpSet, key(3), []byte(refValue(5000)), 7, 0, 0, next())
	multiGet(0, 70, binproto.OpGet)
	multiGet(1, 20, binproto.OpGetQ)
	in = binproto.AppendSimple(in, binproto.OpNoop, next())
	in = binproto.AppendSimple(in, binproto.OpQuit, next())

	replies := func(t *testing.T, network string, h protocol.Handler, raw bool) []byte {
		network, addr := startServerWith(t, network, h, Config{RuntimeSyscalls: raw})
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go c.Write(in)
		all, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return all
	}
	for _, network := range []string{"tcp", "unix"} {
		for _, raw := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/runtimeSyscalls=%v", network, raw), func(t *testing.T) {
				want := replies(t, network, memstore.New(memstore.Options{}), raw)
				mb := &memBatcher{Store: memstore.New(memstore.Options{})}
				got := replies(t, network, mb, raw)
				if string(got) != string(want) {
					t.Fatalf("replies differ from the copied form at byte %d of %d (got %d bytes)",
						firstDiff(string(got), string(want)), len(want), len(got))
				}
				if mb.batched.Load() < 128 {
					t.Fatalf("only %d requests batched", mb.batched.Load())
				}
				// Sanity: the reply holds the values at all.
				r := bufio.NewReader(strings.NewReader(string(want)))
				hits := 0
				for {
					resp, err := binproto.ReadResponse(r, nil)
					if err != nil {
						break
					}
					if resp.Header.Status == binproto.StatusOK && len(resp.Value) > 0 {
						hits++
					}
				}
				if hits < 250 {
					t.Fatalf("%d hits in the reply", hits)
				}
			})
		}
	}
}
