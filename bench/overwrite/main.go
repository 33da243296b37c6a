// Command overwrite measures mnemonic's read latency while a bulk writer
// overwrites existing keys: the scenario in which Netflix's Mnemonic saw
// read p99 go from about 0.6 ms to about 9 ms as compaction of the
// overwritten data competed with reads.
//
// It preloads -keys keys of -value bytes, then for -duration runs
//
//   - readers: an open-loop schedule of -read-rate gets per second over
//     -readers connections. Latency is measured from each get's scheduled
//     send time, so a stalled server is charged for the queue it causes
//     (no coordinated omission); a get whose reader was idle and had to
//     sleep until its slot is measured from the end of that sleep, so the
//     client's timer granularity is not charged to the server.
//   - writers: -writers connections overwriting random existing keys with
//     fresh values, in pipelined batches, as fast as the server takes them
//     (or at -write-rate values per second).
//
// and prints read p50/p99/p99.9/max per second and overall, with the write
// rate and the server's per-shard compaction figures. It speaks memcached's
// binary protocol, so any memcached-compatible server can be measured.
//
//	overwrite -start bin/mnemonic -args "-compaction-style leveled" -keys 500000 -duration 60s
//	overwrite -addr unix:./var/mnemonic.sock
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
)

type config struct {
	addr      string
	start     string
	args      string
	keys      int
	value     int
	readRate  int
	readers   int
	writers   int
	writeRate int
	batch     int
	duration  time.Duration
	warmup    time.Duration
	seed      uint64
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "", "server to measure (unix:/path or host:port); empty with -start")
	flag.StringVar(&c.start, "start", "", "mnemonic binary to start on a temporary socket and data directory")
	flag.StringVar(&c.args, "args", "", "extra arguments for the started mnemonic (space separated)")
	flag.IntVar(&c.keys, "keys", 500_000, "keys preloaded and overwritten")
	flag.IntVar(&c.value, "value", 1024, "value size in bytes")
	flag.IntVar(&c.readRate, "read-rate", 2000, "gets per second (open loop)")
	flag.IntVar(&c.readers, "readers", 16, "reader connections")
	flag.IntVar(&c.writers, "writers", 2, "writer connections")
	flag.IntVar(&c.writeRate, "write-rate", 0, "overwrites per second in total (0: as fast as the server takes them)")
	flag.IntVar(&c.batch, "batch", 32, "overwrites pipelined per writer round trip")
	flag.DurationVar(&c.duration, "duration", 60*time.Second, "measured run with the writer")
	flag.DurationVar(&c.warmup, "baseline", 10*time.Second, "reads without the writer first, for the baseline")
	flag.Uint64Var(&c.seed, "seed", 1, "random seed")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(c, log); err != nil {
		fmt.Fprintln(os.Stderr, "overwrite:", err)
		os.Exit(1)
	}
}

func run(c config, log *slog.Logger) error {
	if c.addr == "" && c.start == "" {
		return errors.New("need -addr or -start")
	}
	if c.start != "" {
		stop, a, err := startServer(c.start, strings.Fields(c.args), log)
		if err != nil {
			return err
		}
		defer stop()
		c.addr = a
	}
	fmt.Printf("# target %s keys=%d value=%d read-rate=%d/s readers=%d writers=%d batch=%d write-rate=%d\n",
		c.addr, c.keys, c.value, c.readRate, c.readers, c.writers, c.batch, c.writeRate)
	t0 := time.Now()
	if err := preload(c); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	fmt.Printf("# preloaded %d keys in %.1fs\n", c.keys, time.Since(t0).Seconds())

	if c.warmup > 0 {
		fmt.Printf("## baseline: reads only, %s\n", c.warmup)
		if err := phase(c, c.warmup, false); err != nil {
			return err
		}
	}
	fmt.Printf("## bulk overwrite: reads while writers overwrite, %s\n", c.duration)
	return phase(c, c.duration, true)
}

// phase runs the readers (and the writers if write) for d and reports.
func phase(c config, d time.Duration, write bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var written atomic.Uint64
	var wg sync.WaitGroup
	errc := make(chan error, c.readers+c.writers+1)
	if write {
		for w := 0; w < c.writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := writer(ctx, c, uint64(w)+100, &written); err != nil {
					errc <- fmt.Errorf("writer: %w", err)
				}
			}()
		}
	}
	lat := newRecorder()
	sched := make(chan time.Time, 1<<16)
	go schedule(ctx, c.readRate, sched)
	for r := 0; r < c.readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := reader(ctx, c, uint64(r)+1, sched, lat); err != nil {
				errc <- fmt.Errorf("reader: %w", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	fmt.Printf("%4s %8s %8s %8s %8s %8s %10s  %s\n", "sec", "reads", "p50_us", "p99_us", "p999_us", "max_us", "writes/s", "server")
	var lastW uint64
	sec := 0
	for {
		select {
		case err := <-errc:
			cancel()
			<-done
			return err
		case <-tick.C:
			sec++
			w := written.Load()
			s := lat.cut()
			fmt.Printf("%4d %8d %8.0f %8.0f %8.0f %8.0f %10d  %s\n", sec, len(s),
				pct(s, 0.50), pct(s, 0.99), pct(s, 0.999), pct(s, 1), w-lastW, serverFigures(c.addr))
			lastW = w
		case <-done:
			all, svc := lat.all(), lat.allService()
			secs := d.Seconds()
			fmt.Printf("TOTAL reads=%d (%.0f/s) scheduled: p50=%.0fus p99=%.0fus p99.9=%.0fus max=%.0fus | service: p50=%.0fus p99=%.0fus p99.9=%.0fus | writes=%d (%.0f/s, %.1f MB/s) misses=%d\n",
				len(all), float64(len(all))/secs, pct(all, 0.50), pct(all, 0.99), pct(all, 0.999), pct(all, 1),
				pct(svc, 0.50), pct(svc, 0.99), pct(svc, 0.999),
				written.Load(), float64(written.Load())/secs, float64(written.Load())*float64(c.value)/secs/1e6, lat.misses.Load())
			return nil
		}
	}
}

// schedule emits the send time of every get: rate per second, evenly
// spaced, each up to lookahead before it is due, so an idle reader already
// holds its next slot and sleeps until it (Go timers may oversleep by up to
// a millisecond, and the scheduler's own oversleep must not make every get
// late). It never waits for readers: a full channel means the target is far
// behind, and the late gets keep their original times.
func schedule(ctx context.Context, rate int, out chan<- time.Time) {
	defer close(out)
	const lookahead = 2 * time.Millisecond
	interval := time.Second / time.Duration(rate)
	next := time.Now()
	for {
		if d := time.Until(next) - lookahead; d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		for horizon := time.Now().Add(lookahead); !next.After(horizon); next = next.Add(interval) {
			select {
			case out <- next:
			case <-ctx.Done():
				return
			}
		}
	}
}

func reader(ctx context.Context, c config, seed uint64, sched <-chan time.Time, lat *recorder) error {
	cl, err := dial(c.addr)
	if err != nil {
		return err
	}
	defer cl.close()
	rng := rand.New(rand.NewPCG(c.seed, seed))
	for at := range sched {
		if ctx.Err() != nil {
			return nil
		}
		if d := time.Until(at); d > 0 {
			// This reader was idle: nothing the server did delays this
			// get any more. Measure from when the sleep really ended, so
			// the Go timer's oversleep (up to a millisecond when the
			// process is idle) is not charged to the server. A reader
			// that is late because earlier gets were slow does not
			// sleep, and its get is measured from the scheduled time.
			time.Sleep(d)
			at = time.Now()
		}
		sent := time.Now()
		hit, err := cl.get(keyOf(rng.IntN(c.keys)))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		done := time.Now()
		lat.add(done.Sub(at), done.Sub(sent), hit)
	}
	return nil
}

func writer(ctx context.Context, c config, seed uint64, written *atomic.Uint64) error {
	cl, err := dial(c.addr)
	if err != nil {
		return err
	}
	defer cl.close()
	rng := rand.New(rand.NewPCG(c.seed, seed))
	val := make([]byte, c.value)
	keys := make([][]byte, c.batch)
	start := time.Now()
	var n uint64
	for ctx.Err() == nil {
		for i := range keys {
			keys[i] = keyOf(rng.IntN(c.keys))
		}
		fillRandom(rng, val)
		if err := cl.setBatch(keys, val); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		n += uint64(len(keys))
		written.Add(uint64(len(keys)))
		if c.writeRate > 0 {
			// Pace this writer's share of the total rate.
			due := start.Add(time.Duration(float64(n) / (float64(c.writeRate) / float64(c.writers)) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
	}
	return nil
}

// preload writes every key once, over -writers connections.
func preload(c config) error {
	var wg sync.WaitGroup
	errc := make(chan error, c.writers)
	per := (c.keys + c.writers - 1) / c.writers
	for w := 0; w < c.writers; w++ {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			cl, err := dial(c.addr)
			if err != nil {
				errc <- err
				return
			}
			defer cl.close()
			rng := rand.New(rand.NewPCG(c.seed, uint64(lo)))
			val := make([]byte, c.value)
			var keys [][]byte
			for k := lo; k < hi; k++ {
				keys = append(keys, keyOf(k))
				if len(keys) == c.batch || k == hi-1 {
					fillRandom(rng, val)
					if err := cl.setBatch(keys, val); err != nil {
						errc <- err
						return
					}
					keys = keys[:0]
				}
			}
		}(w*per, min((w+1)*per, c.keys))
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func keyOf(i int) []byte { return fmt.Appendf(nil, "overwrite:%09d", i) }

// fillRandom makes the value incompressible, as most cached payloads are
// (already compressed or serialised), so compression cannot hide IO.
func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// recorder collects read latencies, cut per second. Scheduled latency runs
// from the get's scheduled send time (it includes any queueing the server
// caused, and also the client's own timer oversleep); service latency runs
// from the actual send and shows the server alone.
type recorder struct {
	mu      sync.Mutex
	cur     []float64 // scheduled latency in microseconds, since the last cut
	total   []float64
	service []float64 // service latency in microseconds, whole phase
	misses  atomic.Uint64
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) add(sched, service time.Duration, hit bool) {
	if !hit {
		r.misses.Add(1)
	}
	r.mu.Lock()
	r.cur = append(r.cur, float64(sched)/float64(time.Microsecond))
	r.service = append(r.service, float64(service)/float64(time.Microsecond))
	r.mu.Unlock()
}

func (r *recorder) allService() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.service)
	slices.Sort(s)
	return s
}

func (r *recorder) cut() []float64 {
	r.mu.Lock()
	s := r.cur
	r.cur = nil
	r.total = append(r.total, s...)
	r.mu.Unlock()
	slices.Sort(s)
	return s
}

func (r *recorder) all() []float64 {
	r.cut()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.total)
	slices.Sort(s)
	return s
}

// pct is the q-quantile of sorted s (nearest rank).
func pct(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// serverFigures summarises the per-shard compaction state from "stats".
func serverFigures(a string) string {
	cl, err := dial(a)
	if err != nil {
		return ""
	}
	defer cl.close()
	st, err := cl.stats()
	if err != nil {
		return ""
	}
	var l0, pending, disk int64
	for k, v := range st {
		var n int64
		fmt.Sscan(v, &n)
		switch {
		case strings.HasSuffix(k, "_l0_files"):
			l0 += n
		case strings.HasSuffix(k, "_pending_compaction_bytes"):
			pending += n
		case strings.HasPrefix(k, "shard_") && strings.HasSuffix(k, "_disk_bytes"):
			disk += n
		}
	}
	return fmt.Sprintf("l0=%d pending=%dMB disk=%dMB", l0, pending>>20, disk>>20)
}

// startServer runs bin with a temporary socket and data directory and
// returns a function that stops it (SIGTERM) and removes the directory.
func startServer(bin string, extra []string, log *slog.Logger) (stop func(), address string, err error) {
	dir, err := os.MkdirTemp("", "overwrite-*")
	if err != nil {
		return nil, "", err
	}
	sock := filepath.Join(dir, "m.sock")
	address = "unix:" + sock
	args := append([]string{"-listen", address, "-data", filepath.Join(dir, "data"), "-admin", "", "-log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	log.Info("started", "cmd", bin, "args", args, "pid", cmd.Process.Pid)
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := addr.Dial(context.Background(), address, time.Second); err == nil {
			c.Close()
			return stop, address, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, "", fmt.Errorf("%s did not start listening on %s", bin, address)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
