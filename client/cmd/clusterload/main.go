// Command clusterload drives a mixed get/set load through the moneta client
// against a replicated cluster and reports throughput and latency
// percentiles per second and per phase, killing one server of the local
// zone midway to show what a failure costs the callers.
//
// By default it spawns the cluster itself: zones × servers-per-zone stock
// memcached processes on loopback, killed on exit. With -zones it drives an
// existing cluster instead (and kills nothing):
//
//	clusterload                                   # 3 zones × 2 local memcached, kill at 5 s of 10 s
//	clusterload -duration 20s -kill-after 10s -workers 64 -get-ratio 0.8
//	clusterload -zones 'a=10.0.0.1:11211,10.0.0.2:11211;b=10.0.1.1:11211,10.0.1.2:11211' -local a
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/client"
)

type options struct {
	zones          string
	zoneCount      int
	perZone        int
	local          string
	duration       time.Duration
	killAfter      time.Duration
	workers        int
	keys           int
	valueSize      int
	getRatio       float64
	policy         string
	readTimeout    time.Duration
	writeTimeout   time.Duration
	memcached      string
	fillOnFallback bool
}

func main() {
	var o options
	flag.StringVar(&o.zones, "zones", "", "existing cluster: 'name=host:port,host:port;name=...' (default: spawn local memcached)")
	flag.IntVar(&o.zoneCount, "spawn-zones", 3, "zones to spawn")
	flag.IntVar(&o.perZone, "spawn-servers", 2, "servers per spawned zone")
	flag.StringVar(&o.local, "local", "a", "local zone (reads start there; its first server is the one killed)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of the run")
	flag.DurationVar(&o.killAfter, "kill-after", 5*time.Second, "kill one local-zone server after this long (0: never; spawned clusters only)")
	flag.IntVar(&o.workers, "workers", 16, "concurrent callers")
	flag.IntVar(&o.keys, "keys", 20000, "distinct keys, preloaded before the run")
	flag.IntVar(&o.valueSize, "value-size", 200, "value size in bytes")
	flag.Float64Var(&o.getRatio, "get-ratio", 0.9, "fraction of operations that are gets (the rest are sets)")
	flag.StringVar(&o.policy, "policy", "one", "write policy: none, one, quorum, all_minus_one, all")
	flag.DurationVar(&o.readTimeout, "read-timeout", client.DefaultReadTimeout, "read timeout per zone attempt")
	flag.DurationVar(&o.writeTimeout, "write-timeout", client.DefaultWriteTimeout, "write timeout per zone")
	flag.StringVar(&o.memcached, "memcached", "memcached", "memcached binary for spawned clusters")
	flag.BoolVar(&o.fillOnFallback, "fill", false, "FillOnFallback: refill zones that missed")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "clusterload:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	policy, err := client.ParsePolicy(o.policy)
	if err != nil {
		return err
	}
	var zones []client.Zone
	var procs map[string]*exec.Cmd
	if o.zones != "" {
		if zones, err = parseZones(o.zones); err != nil {
			return err
		}
		o.killAfter = 0
	} else {
		zones, procs, err = spawn(o)
		defer func() {
			for _, p := range procs {
				p.Process.Kill()
				p.Wait()
			}
		}()
		if err != nil {
			return err
		}
	}
	c, err := client.New(client.Config{
		Zones:          zones,
		LocalZone:      o.local,
		Policy:         policy,
		ReadTimeout:    o.readTimeout,
		WriteTimeout:   o.writeTimeout,
		FillOnFallback: o.fillOnFallback,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer c.Close()

	value := make([]byte, o.valueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	fmt.Printf("cluster: %d zones × %d servers, local zone %q, policy %s, read timeout %v, %d workers, %d keys, %d-byte values, %.0f%% gets\n",
		len(zones), len(zones[0].Servers), o.local, policy, o.readTimeout, o.workers, o.keys, o.valueSize, 100*o.getRatio)
	if err := preload(ctx, c, o.keys, value); err != nil {
		return err
	}

	var victim string
	if o.killAfter > 0 {
		for _, z := range zones {
			if z.Name == o.local {
				victim = z.Servers[0]
			}
		}
	}
	start := time.Now()
	// killedAt is set by the timer's goroutine and read after the workers
	// are done, hence atomic.
	var killedAt atomic.Int64
	if victim != "" {
		kill := time.AfterFunc(o.killAfter, func() {
			at := time.Since(start)
			procs[victim].Process.Kill()
			killedAt.Store(int64(at))
			fmt.Printf("%6.2fs  killed %s (zone %s)\n", at.Seconds(), victim, o.local)
		})
		defer kill.Stop()
	}
	rctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	samples := make([][]sample, o.workers)
	var wg sync.WaitGroup
	for w := range o.workers {
		wg.Go(func() { samples[w] = worker(rctx, c, o, value, start) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []sample
	for _, s := range samples {
		all = append(all, s...)
	}
	report(all, elapsed, time.Duration(killedAt.Load()), victim != "")
	s := c.Stats()
	fmt.Printf("client: gets %d, hits %d, misses %d, fallback hits %d, read failures %d, writes %d, write failures %d, background write failures %d\n",
		s.Gets, s.Hits, s.Misses, s.FallbackHits, s.ReadFailures, s.Writes, s.WriteFailures, s.BackgroundWriteFailures)
	for _, ss := range s.Servers {
		fmt.Printf("  %-2s %-21s down=%-5v requests=%-8d failures=%-5d skipped=%-7d down-marks=%d\n",
			ss.Zone, ss.Addr, ss.Down, ss.Requests, ss.Failures, ss.Skipped, ss.DownMarks)
	}
	return nil
}

// sample is one operation: when it started (since the run began), how long
// it took, and how it ended.
type sample struct {
	at, took time.Duration
	get      bool
	outcome  uint8 // okHit, okMiss, failed
}

const (
	okHit uint8 = iota
	okMiss
	failed
)

func worker(ctx context.Context, c *client.Client, o options, value []byte, start time.Time) []sample {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	out := make([]sample, 0, 1<<16)
	for ctx.Err() == nil {
		k := "load:" + strconv.Itoa(rng.IntN(o.keys))
		t0 := time.Now()
		s := sample{at: t0.Sub(start), get: rng.Float64() < o.getRatio}
		var err error
		if s.get {
			_, err = c.Get(ctx, k)
		} else {
			err = c.Set(ctx, &client.Item{Key: k, Value: value})
		}
		s.took = time.Since(t0)
		switch {
		case err == nil:
		case errors.Is(err, client.ErrCacheMiss):
			s.outcome = okMiss
		case ctx.Err() != nil:
			continue // the run ended under this call
		default:
			s.outcome = failed
		}
		out = append(out, s)
	}
	return out
}

func preload(ctx context.Context, c *client.Client, n int, value []byte) error {
	const batch = 500
	for i := 0; i < n; i += batch {
		var items []*client.Item
		for j := i; j < min(n, i+batch); j++ {
			items = append(items, &client.Item{Key: "load:" + strconv.Itoa(j), Value: value})
		}
		if err := c.SetMulti(ctx, items); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	return nil
}

func report(all []sample, elapsed, killedAt time.Duration, killed bool) {
	slices.SortFunc(all, func(a, b sample) int { return int(a.at - b.at) })
	fmt.Printf("\n%7s %9s %9s %9s %9s %7s %7s\n", "second", "ops/s", "p50", "p99", "max", "misses", "errors")
	for sec := time.Duration(0); sec < elapsed; sec += time.Second {
		w := window(all, sec, sec+time.Second)
		if len(w) == 0 {
			continue
		}
		st := summarize(w)
		fmt.Printf("%7d %9.0f %9s %9s %9s %7d %7d\n", int(sec/time.Second), float64(len(w)), ms(st.p50), ms(st.p99), ms(st.max), st.misses, st.errors)
	}
	fmt.Println()
	phase := func(name string, w []sample, d time.Duration) {
		if len(w) == 0 || d <= 0 {
			return
		}
		st := summarize(w)
		fmt.Printf("%-22s %9.0f ops/s  p50 %s  p99 %s  p99.9 %s  max %s  misses %d  errors %d (%d ops)\n",
			name, float64(len(w))/d.Seconds(), ms(st.p50), ms(st.p99), ms(st.p999), ms(st.max), st.misses, st.errors, len(w))
	}
	if killed && killedAt > 0 {
		phase("before kill", window(all, 0, killedAt), killedAt)
		phase("first second after", window(all, killedAt, killedAt+time.Second), time.Second)
		phase("after kill", window(all, killedAt, elapsed), elapsed-killedAt)
	}
	phase("whole run", all, elapsed)
}

func window(all []sample, from, to time.Duration) []sample {
	i, _ := slices.BinarySearchFunc(all, from, func(s sample, t time.Duration) int { return int(s.at - t) })
	j, _ := slices.BinarySearchFunc(all, to, func(s sample, t time.Duration) int { return int(s.at - t) })
	return all[i:j]
}

type summary struct {
	p50, p99, p999, max time.Duration
	misses, errors      int
}

func summarize(w []sample) summary {
	lat := make([]time.Duration, len(w))
	var s summary
	for i, x := range w {
		lat[i] = x.took
		switch x.outcome {
		case okMiss:
			s.misses++
		case failed:
			s.errors++
		}
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	s.p50, s.p99, s.p999, s.max = q(0.50), q(0.99), q(0.999), lat[len(lat)-1]
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func parseZones(s string) ([]client.Zone, error) {
	var zones []client.Zone
	for _, part := range strings.Split(s, ";") {
		name, servers, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("zone %q: want name=host:port,...", part)
		}
		zones = append(zones, client.Zone{Name: name, Servers: strings.Split(servers, ",")})
	}
	return zones, nil
}

// spawn starts the local cluster: zones named a, b, c, ... of stock
// memcached on free loopback ports.
func spawn(o options) ([]client.Zone, map[string]*exec.Cmd, error) {
	procs := map[string]*exec.Cmd{}
	var zones []client.Zone
	for zi := range o.zoneCount {
		z := client.Zone{Name: string(rune('a' + zi))}
		for range o.perZone {
			port, err := freePort()
			if err != nil {
				return nil, procs, err
			}
			args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "256", "-t", "1"}
			if os.Geteuid() == 0 {
				args = append(args, "-u", "root")
			}
			cmd := exec.Command(o.memcached, args...)
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				return nil, procs, err
			}
			a := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			procs[a] = cmd
			if err := waitReady(a, 5*time.Second); err != nil {
				return nil, procs, err
			}
			z.Servers = append(z.Servers, a)
		}
		zones = append(zones, z)
	}
	return zones, procs, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls a until it answers version.
func waitReady(a string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprint(c, "version\r\n")
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "VERSION") {
				return nil
			}
			err = rerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("memcached %s not ready: %v", a, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
