package mcclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	mctest.Eventually(tb, d, what, cond)
}

// silentServer accepts connections on a Unix socket and never answers. With
// read set it drains what it is sent; without, it reads nothing, so a large
// write blocks.
func silentServer(tb testing.TB, read bool) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "silent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			if read {
				go io.Copy(io.Discard, nc)
			}
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range conns {
			nc.Close()
		}
	})
	return "unix:" + path
}

// TestConcurrency runs many goroutines, each over its own keys, through
// Handle and Do on shared connections, and checks every answer, with each
// write mode.
func TestConcurrency(t *testing.T) {
	for _, mode := range []WriteMode{WriteCombine, WriteHandoff} {
		t.Run(mode.String(), func(t *testing.T) { testConcurrency(t, mode) })
	}
}

func testConcurrency(t *testing.T, mode WriteMode) {
	c := newClient(t, mctest.Start(t).Addr, func(c *Config) { c.Writes = mode })
	const workers, rounds = 32, 150
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			resp := &protocol.Response{}
			reqs := []*protocol.Request{{}, {}, {}}
			resps := []*protocol.Response{{}, {}, {}}
			for i := range rounds {
				k1, k2 := fmt.Sprintf("w%d-a", w), fmt.Sprintf("w%d-b-%d", w, i%7)
				v := fmt.Sprintf("value-%d-%d", w, i)
				req := rq(protocol.CmdSet, v, k1)
				if err := c.Handle(ctx, req, resp); err != nil || resp.Status != protocol.StatusOK {
					errc <- fmt.Errorf("set: %v %v", err, resp.Status)
					return
				}
				// A batch: set k2, get both, delete k2.
				*reqs[0] = *rq(protocol.CmdSet, v+"!", k2)
				*reqs[1] = *rq(protocol.CmdGet, "", k1, k2, "never-set")
				*reqs[2] = *rq(protocol.CmdDelete, "", k2)
				if err := c.Do(ctx, reqs, resps); err != nil {
					errc <- fmt.Errorf("do: %v", err)
					return
				}
				h := resps[1].Hits
				if len(h) != 2 || string(h[0].Value) != v || string(h[1].Value) != v+"!" ||
					resps[2].Status != protocol.StatusOK {
					errc <- fmt.Errorf("worker %d round %d: hits %+v delete %v", w, i, h, resps[2].Status)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Errors != 0 || st.InFlight != 0 || st.ConnsUp != 2 {
		t.Fatalf("stats after load: %+v", st)
	}
}

// TestPipelining sends many concurrent requests over one connection with a
// small in-flight bound: they all complete, and writes carry several
// requests each.
func TestPipelining(t *testing.T) {
	m := mctest.Start(t)
	c := newClient(t, m.Addr, func(c *Config) { c.Conns = 1; c.MaxInFlight = 16 })
	set(t, c, "p", "pv", 0, 0)
	const workers, rounds = 64, 200
	var wg sync.WaitGroup
	var bad atomic.Int64
	before := c.Stats()
	for range workers {
		wg.Go(func() {
			req := rq(protocol.CmdGet, "", "p")
			resp := &protocol.Response{}
			for range rounds {
				if err := c.Handle(context.Background(), req, resp); err != nil ||
					len(resp.Hits) != 1 || string(resp.Hits[0].Value) != "pv" {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d bad answers", bad.Load())
	}
	st := c.Stats()
	reqs, flushes := st.Requests-before.Requests, st.Flushes-before.Flushes
	t.Logf("%d requests in %d writes (%.1f per write)", reqs, flushes, float64(reqs)/float64(flushes))
	if flushes*2 > reqs {
		t.Fatalf("no batching: %d requests took %d writes", reqs, flushes)
	}
}

// TestAbandonedCalls cancels calls at random points of their life and checks
// that every answer that does arrive is the right one: a reply meant for an
// abandoned call must never land in a later call.
func TestAbandonedCalls(t *testing.T) {
	c := newClient(t, mctest.Start(t).Addr, func(c *Config) { c.Conns = 1 })
	const workers, rounds = 16, 300
	for w := range workers {
		set(t, c, fmt.Sprint("ab", w), fmt.Sprint("value", w), uint32(w), 0)
	}
	var wg sync.WaitGroup
	var wrong, ok, canceled atomic.Int64
	for w := range workers {
		wg.Go(func() {
			req := rq(protocol.CmdGet, "", fmt.Sprint("ab", w))
			resp := &protocol.Response{}
			for range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(60))*time.Microsecond)
				err := c.Handle(ctx, req, resp)
				cancel()
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					canceled.Add(1)
				case err != nil:
					wrong.Add(1)
				case len(resp.Hits) != 1 || string(resp.Hits[0].Value) != fmt.Sprint("value", w) ||
					resp.Hits[0].Flags != uint32(w):
					wrong.Add(1)
				default:
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("ok %d canceled %d", ok.Load(), canceled.Load())
	if wrong.Load() != 0 {
		t.Fatalf("%d wrong answers", wrong.Load())
	}
	// The connection is still in step and nothing leaked from the in-flight bound.
	wantValue(t, c, "ab0", "value0")
	waitFor(t, "in-flight to drain", 2*time.Second, func() bool { return c.Stats().InFlight == 0 })
	if st := c.Stats(); st.Reconnects != 0 || st.Canceled != uint64(canceled.Load()) {
		t.Fatalf("stats %+v, canceled %d", st, canceled.Load())
	}
}

// TestServerRestart kills memcached under load: requests in flight fail
// quickly with errors, later ones fail fast while it is down, and after a
// restart the client reconnects on its own.
func TestServerRestart(t *testing.T) {
	t.Run("unix", func(t *testing.T) { testServerRestart(t, mctest.Start(t)) })
	t.Run("tcp", func(t *testing.T) { testServerRestart(t, mctest.StartTCP(t)) })
}

func testServerRestart(t *testing.T, m *mctest.Memcached) {
	// The breaker is off: this is the pool's own failing fast and
	// reconnecting (a timeout under a loaded machine would otherwise open
	// it and keep the client unhealthy for BreakerOpen after the restart;
	// the breaker has its own tests).
	c := newClient(t, m.Addr, func(c *Config) {
		c.Conns = 2
		c.BackoffMax = 50 * time.Millisecond
		c.BreakerFailures = -1
	})
	set(t, c, "k", "v", 0, 0)

	const workers = 16
	var (
		wg        sync.WaitGroup
		successes atomic.Int64
		stop      atomic.Bool
		failedAt  [workers]atomic.Int64 // unix nanos of each worker's first error
		badErr    atomic.Value
	)
	for w := range workers {
		wg.Go(func() {
			req := rq(protocol.CmdGet, "", "k")
			resp := &protocol.Response{}
			for !stop.Load() {
				err := c.Handle(context.Background(), req, resp)
				if err == nil {
					successes.Add(1)
					continue
				}
				// A request caught in flight by the kill may also
				// time out (RequestTimeout) on a loaded machine; any
				// other error kind is a bug.
				if !errors.Is(err, ErrConnLost) && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrTimeout) {
					badErr.Store(err)
				}
				if failedAt[w].Load() == 0 {
					failedAt[w].Store(time.Now().UnixNano())
				}
			}
		})
	}
	waitFor(t, "load to run", 5*time.Second, func() bool { return successes.Load() > 1000 })
	killed := time.Now()
	m.Stop()
	waitFor(t, "every worker to see an error", 5*time.Second, func() bool {
		for w := range workers {
			if failedAt[w].Load() == 0 {
				return false
			}
		}
		return true
	})
	stop.Store(true)
	wg.Wait()
	for w := range workers {
		// Bounded by the request timeout (1 s) plus its tick and the
		// machine's load: a hang would show as the waitFor above failing.
		if d := time.Duration(failedAt[w].Load() - killed.UnixNano()); d > 3*time.Second {
			t.Fatalf("worker %d failed %v after the kill", w, d)
		}
	}
	if err := badErr.Load(); err != nil {
		t.Fatalf("unexpected error kind: %v", err)
	}
	waitFor(t, "client to notice", 2*time.Second, func() bool { return !c.Healthy() })

	// Down: fail fast, no hang.
	start := time.Now()
	err := c.Handle(context.Background(), rq(protocol.CmdGet, "", "k"), &protocol.Response{})
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("while down: %v after %v", err, time.Since(start))
	}

	m.Restart()
	waitFor(t, "reconnect", 5*time.Second, func() bool { return c.Stats().ConnsUp == 2 })
	if !c.Healthy() {
		t.Fatal("not healthy after reconnect")
	}
	set(t, c, "k2", "back", 0, 0)
	wantValue(t, c, "k2", "back")
	st := c.Stats()
	if st.Reconnects < 2 || st.InFlight != 0 {
		t.Fatalf("stats after restart: %+v", st)
	}
}

func TestServerDownAtStart(t *testing.T) {
	addr := "unix:" + filepath.Join(t.TempDir(), "nobody.sock")
	start := time.Now()
	c := newClient(t, addr)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("New took %v with the server down", d)
	}
	if c.Healthy() {
		t.Fatal("healthy with no server")
	}
	err := c.Handle(context.Background(), rq(protocol.CmdGet, "", "k"), &protocol.Response{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	waitFor(t, "dial errors counted", time.Second, func() bool { return c.Stats().DialErrors >= 2 })
}

// TestRequestTimeout: a server that accepts and never answers. The call
// fails with ErrTimeout after RequestTimeout, the stuck connection is
// dropped and redialled.
func TestRequestTimeout(t *testing.T) {
	for _, read := range []bool{true, false} {
		t.Run(fmt.Sprint("server-reads=", read), func(t *testing.T) {
			addr := silentServer(t, read)
			const rt = 150 * time.Millisecond
			c := newClient(t, addr, func(c *Config) { c.Conns = 1; c.RequestTimeout = rt })
			req := rq(protocol.CmdSet, "small", "k")
			slack := 500 * time.Millisecond
			if !read {
				// Big enough that the write blocks when the server does not
				// read. Copying it into the write buffer cannot be
				// interrupted, and takes a while under the race detector.
				req.Value = make([]byte, 4<<20)
				slack = 2 * time.Second
			}
			start := time.Now()
			err := c.Handle(context.Background(), req, &protocol.Response{})
			d := time.Since(start)
			if !errors.Is(err, ErrTimeout) || d < rt || d > rt+slack {
				t.Fatalf("err %v after %v, want ErrTimeout after %v", err, d, rt)
			}
			waitFor(t, "stuck connection dropped and redialled", 3*time.Second, func() bool {
				st := c.Stats()
				return st.Stalls >= 1 && st.Reconnects >= 1
			})
			if st := c.Stats(); st.Timeouts != 1 || st.Errors != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestContextCancel: a context shorter than RequestTimeout ends the wait,
// both while the call awaits its reply and while it waits for room in a full
// connection.
func TestContextCancel(t *testing.T) {
	addr := silentServer(t, true)
	c := newClient(t, addr, func(c *Config) { c.Conns = 1; c.MaxInFlight = 1; c.RequestTimeout = 10 * time.Second })

	// First call occupies the only in-flight slot.
	errc := make(chan error, 1)
	ctx1, cancel1 := context.WithCancel(context.Background())
	go func() { errc <- c.Handle(ctx1, rq(protocol.CmdGet, "", "a"), &protocol.Response{}) }()
	waitFor(t, "first call in flight", 2*time.Second, func() bool { return c.Stats().InFlight == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Handle(ctx, rq(protocol.CmdGet, "", "b"), &protocol.Response{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("queued call: %v after %v", err, time.Since(start))
	}
	cancel1()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("in-flight call: %v", err)
	}
	// Several calls awaiting replies on a busy reader: each can leave.
	c2 := newClient(t, addr, func(c *Config) { c.Conns = 1; c.RequestTimeout = 10 * time.Second })
	ctx3, cancel3 := context.WithCancel(context.Background())
	errs := make(chan error, 4)
	for i := range 4 {
		go func() { errs <- c2.Handle(ctx3, rq(protocol.CmdGet, "", fmt.Sprint(i)), &protocol.Response{}) }()
	}
	waitFor(t, "four calls in flight", 2*time.Second, func() bool { return c2.Stats().InFlight == 4 })
	cancel3()
	for range 4 {
		select {
		case err := <-errs:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("canceled call: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("canceled call did not return")
		}
	}

	// The abandoned call still holds its slot until the server answers or
	// the connection goes; Close must not hang on it.
	start = time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestClose(t *testing.T) {
	addr := silentServer(t, true)
	c := newClient(t, addr, func(c *Config) { c.RequestTimeout = 10 * time.Second })
	errc := make(chan error, 1)
	go func() { errc <- c.Handle(context.Background(), rq(protocol.CmdGet, "", "a"), &protocol.Response{}) }()
	waitFor(t, "call in flight", 2*time.Second, func() bool { return c.Stats().InFlight == 1 })
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("in-flight call after Close: %v", err)
	}
	err := c.Handle(context.Background(), rq(protocol.CmdGet, "", "a"), &protocol.Response{})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v", err)
	}
	if c.Healthy() {
		t.Fatal("healthy after Close")
	}
	c.Close() // twice is fine
}

// TestUnsolicitedReply: a server that talks before being asked is not ours
// to trust; the connection is dropped.
func TestUnsolicitedReply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatty.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			nc.Write([]byte("HD\r\n"))
			go func() { io.Copy(io.Discard, nc); nc.Close() }()
		}
	}()
	c := newClient(t, "unix:"+path, func(c *Config) { c.Conns = 1 })
	waitFor(t, "drop and redial", 3*time.Second, func() bool { return c.Stats().Reconnects >= 1 })
}

func TestConfig(t *testing.T) {
	bad := []Config{
		{},
		{Addr: "nohostport"},
		{Addr: "unix:"},
		{Addr: "127.0.0.1:1", Conns: -1},
		{Addr: "127.0.0.1:1", Conns: 100000},
		{Addr: "127.0.0.1:1", MaxInFlight: -1},
		{Addr: "127.0.0.1:1", RequestTimeout: -1},
		{Addr: "127.0.0.1:1", BackoffMin: time.Second, BackoffMax: time.Millisecond},
		{Addr: "127.0.0.1:1", MaxValueSize: -5},
	}
	for _, cfg := range bad {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", cfg)
		}
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	cfg := Config{Addr: "unix:/x.sock"}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Conns != 2 || cfg.MaxInFlight != 1024 || cfg.RequestTimeout != time.Second ||
		cfg.BackoffMax != 2*time.Second || cfg.MaxValueSize != 64<<20 || cfg.Logger == nil {
		t.Fatalf("defaults %+v", cfg)
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		d := jitter(100 * time.Millisecond)
		if d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("jitter %v out of [50ms, 100ms]", d)
		}
	}
}
