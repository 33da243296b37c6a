package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moneta-cache/moneta/bench/load"
)

var scenarios = map[string]func(*runner) error{
	"hot":       (*runner).hot,
	"multiget":  (*runner).multiget,
	"beyondram": (*runner).beyondRAM,
	"overwrite": (*runner).overwrite,
	"conns":     (*runner).conns,
	"budget":    (*runner).budget,
	"sets":      (*runner).sets,
}

func (r *runner) dur() string { return r.o.duration.String() }

func (r *runner) keys(n int) string {
	if r.o.quick {
		n /= 20
	}
	return strconv.Itoa(n)
}

// startAll starts the targets; the caller stops them.
func (r *runner) startAll(kinds ...string) ([]*target, func(), error) {
	var ts []*target
	stop := func() {
		for _, t := range ts {
			t.stop()
		}
	}
	for _, k := range kinds {
		t, err := r.e.startTarget(k)
		if err != nil {
			stop()
			return nil, nil, err
		}
		ts = append(ts, t)
	}
	return ts, stop, nil
}

type sample struct {
	ops, p50, p99, p999 []float64
	hitPct              []float64 // get hits per 100 gets; a store that drops items answers faster
	cmd                 string
}

func (s *sample) add(res *load.Result) {
	s.ops = append(s.ops, res.OpsPerSec)
	s.p50 = append(s.p50, us(res.Latency.P50))
	s.p99 = append(s.p99, us(res.Latency.P99))
	s.p999 = append(s.p999, us(res.Latency.P999))
	if n := res.Hits + res.Misses; n > 0 {
		s.hitPct = append(s.hitPct, 100*float64(res.Hits)/float64(n))
	}
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// closedLoop runs the same mcload arguments against every target, rounds
// times, alternating targets within each round.
func (r *runner) closedLoop(ts []*target, args []string) (map[string]*sample, error) {
	out := map[string]*sample{}
	for round := 0; round < r.o.rounds; round++ {
		for _, t := range ts {
			a := append([]string{"-addr", t.addr}, args...)
			res, line, err := r.mcload(context.Background(), a...)
			if err != nil {
				return nil, err
			}
			if res.IOErrors > 0 || res.VerifyFailed > 0 {
				return nil, fmt.Errorf("%s: %d I/O errors, %d verify failures", t.name, res.IOErrors, res.VerifyFailed)
			}
			s := out[t.name]
			if s == nil {
				s = &sample{cmd: line}
				out[t.name] = s
			}
			s.add(res)
			fmt.Fprintf(os.Stderr, "  round %d %-12s %9.0f ops/s p99 %7.1fus\n", round+1, t.name, res.OpsPerSec, us(res.Latency.P99))
		}
	}
	return out, nil
}

// preloadAll preloads keys of 1 KiB into every target; extstore paced and
// then settled (see settleExtstore), whose item count it returns.
func (r *runner) preloadAll(ts []*target, keys string) (string, error) {
	held := "-"
	for _, t := range ts {
		args := []string{"-keys", keys, "-value-size", "1024"}
		if t.name == "extstore" {
			args = append(args, "-rate", "20000")
		}
		if err := r.preload(t, args...); err != nil {
			return "", err
		}
		if t.name == "extstore" {
			n, err := settleExtstore(t.addr)
			if err != nil {
				return "", err
			}
			held = n
		}
	}
	return held, nil
}

func (r *runner) preload(t *target, args ...string) error {
	a := append([]string{"-addr", t.addr, "-preload", "-duration", "1ms", "-conns", "16", "-depth", "32"}, args...)
	_, _, err := r.mcload(context.Background(), a...)
	return err
}

func tableHeader(cols ...string) string {
	return "| " + strings.Join(cols, " | ") + " |\n|" + strings.Repeat(" --- |", len(cols)) + "\n"
}

func (r *runner) report(name, title, body string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\nProduced by `go run ./bench/cmd/benchrun -scenarios %s -rounds %d -duration %s` (medians of the rounds; targets alternate within each round).\n\n",
		title, name, r.o.rounds, r.o.duration)
	b.WriteString("## Machine\n\n")
	b.WriteString(machineFacts())
	b.WriteString("\n")
	b.WriteString(body)
	return writeFile(filepath.Join(r.o.out, name+".md"), b.String())
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// hot: 1 KiB values, 90% get / 10% set, 50 connections, pipeline 1 and 16.
func (r *runner) hot() error {
	kinds := []string{"memcached", "rend-l1only", "rend-l1l2", "mnemonic"}
	ts, stop, err := r.startAll(kinds...)
	if err != nil {
		return err
	}
	defer stop()
	keys := r.keys(100000)
	for _, t := range ts {
		if err := r.preload(t, "-keys", keys, "-value-size", "1024"); err != nil {
			return err
		}
	}
	var body strings.Builder
	var bars []barGroup
	peak := 0.0
	for _, depth := range []string{"1", "16"} {
		args := []string{"-conns", "50", "-depth", depth, "-keys", keys, "-value-size", "1024", "-mix", "get=0.9,set=0.1", "-duration", r.dur(), "-warmup", "1s"}
		res, err := r.closedLoop(ts, args)
		if err != nil {
			return err
		}
		base := median(res["memcached"].ops)
		if depth == "1" {
			peak = base
		}
		fmt.Fprintf(&body, "## Pipeline depth %s\n\n`%s` (with `-addr` of each target)\n\n", depth, res["memcached"].cmd)
		body.WriteString(tableHeader("target", "ops/s", "vs memcached", "p50 µs", "p99 µs", "p99.9 µs"))
		g := barGroup{label: "depth " + depth}
		for _, k := range kinds {
			s := res[k]
			m := median(s.ops)
			fmt.Fprintf(&body, "| %s | %.0f | %s | %.1f | %.1f | %.1f |\n", k, m, ratio(m, base), median(s.p50), median(s.p99), median(s.p999))
			g.values = append(g.values, m)
		}
		body.WriteString("\n")
		bars = append(bars, g)
	}
	// Latency overhead at half of memcached's peak, paced (open loop).
	rate := strconv.Itoa(int(peak / 2))
	args := []string{"-conns", "50", "-keys", keys, "-value-size", "1024", "-mix", "get=0.9,set=0.1", "-rate", rate, "-duration", r.dur(), "-warmup", "1s"}
	half, err := r.closedLoop(ts[:2], args)
	if err != nil {
		return err
	}
	fmt.Fprintf(&body, "## Latency at half of memcached's peak (%s req/s, open loop)\n\n`%s`\n\n", rate, half["memcached"].cmd)
	body.WriteString(tableHeader("target", "p50 µs", "p99 µs", "p99.9 µs", "p99 overhead µs"))
	mp99 := median(half["memcached"].p99)
	for _, k := range kinds[:2] {
		s := half[k]
		fmt.Fprintf(&body, "| %s | %.1f | %.1f | %.1f | %.1f |\n", k, median(s.p50), median(s.p99), median(s.p999), median(s.p99)-mp99)
	}
	body.WriteString("\n![throughput](hot.png)\n")
	if err := barChart(filepath.Join(r.o.out, "hot.png"), "Hot set: 1 KiB, 90% get, 50 conns", "ops/s", kinds, bars); err != nil {
		return err
	}
	return r.report("hot", "Scenario 1: hot set", body.String())
}

// multiget: 100-key gets of 1 KiB values that are all present.
func (r *runner) multiget() error {
	kinds := []string{"memcached", "rend-l1only", "rend-l1l2"}
	ts, stop, err := r.startAll(kinds...)
	if err != nil {
		return err
	}
	defer stop()
	keys := r.keys(100000)
	for _, t := range ts {
		if err := r.preload(t, "-keys", keys, "-value-size", "1024"); err != nil {
			return err
		}
	}
	var body strings.Builder
	var bars []barGroup
	for _, proto := range []string{"text", "binary"} {
		args := []string{"-proto", proto, "-conns", "20", "-depth", "1", "-multiget", "100", "-keys", keys, "-value-size", "1024", "-mix", "get=1", "-duration", r.dur(), "-warmup", "1s"}
		res, err := r.closedLoop(ts, args)
		if err != nil {
			return err
		}
		base := median(res["memcached"].ops)
		fmt.Fprintf(&body, "## %s protocol\n\n`%s`\n\n", proto, res["memcached"].cmd)
		body.WriteString(tableHeader("target", "gets/s (100 keys)", "keys/s", "vs memcached", "p50 µs", "p99 µs", "p99.9 µs"))
		g := barGroup{label: proto}
		for _, k := range kinds {
			s := res[k]
			m := median(s.ops)
			fmt.Fprintf(&body, "| %s | %.0f | %.0f | %s | %.1f | %.1f | %.1f |\n", k, m, m*100, ratio(m, base), median(s.p50), median(s.p99), median(s.p999))
			g.values = append(g.values, m)
		}
		body.WriteString("\n")
		bars = append(bars, g)
	}
	body.WriteString("![throughput](multiget.png)\n")
	if err := barChart(filepath.Join(r.o.out, "multiget.png"), "Multi-get: 100 keys of 1 KiB", "gets/s", kinds, bars); err != nil {
		return err
	}
	return r.report("multiget", "Scenario 2: multi-get", body.String())
}

// beyondRAM: data about 10x L1 (and extstore's RAM); zipf reads; a ladder
// of paced rates gives throughput against p99 for both systems.
func (r *runner) beyondRAM() error {
	old := r.e.l1MB
	r.e.l1MB = 64
	defer func() { r.e.l1MB = old }()
	kinds := []string{"rend-l1l2", "extstore"}
	ts, stop, err := r.startAll(kinds...)
	if err != nil {
		return err
	}
	defer stop()
	keys := r.keys(600000) // 600k x 1 KiB ≈ 10x the 64 MiB of RAM
	held, err := r.preloadAll(ts, keys)
	if err != nil {
		return err
	}
	rates := []int{5000, 10000, 20000, 40000, 0}
	var body strings.Builder
	fmt.Fprintf(&body, "L1 memcached gets `-m 64`, extstore's memcached `-m %d -o ext_path=...:8g,%s` (its RAM holds an item header per item on flash; at `-m 64` it kept only 10-13%% of the items); %s keys of 1 KiB (about 10x L1), preloaded at 20,000 sets/s (extstore drops items written faster than it flushes them) and settled; extstore then held %s items. Reads zipf 0.99, 20 connections. Compare latencies only at equal hit ratios: a store that lost items answers misses, which are cheap.\n\n", r.e.extMB, extstoreOpts, keys, held)
	body.WriteString(tableHeader("target", "offered req/s", "achieved ops/s", "hit %", "p50 µs", "p99 µs", "p99.9 µs"))
	curves := map[string][][2]float64{}
	var cmd string
	for _, rate := range rates {
		args := []string{"-conns", "20", "-keys", keys, "-value-size", "1024", "-dist", "zipf", "-mix", "get=1", "-duration", r.dur(), "-warmup", "2s"}
		if rate > 0 {
			args = append(args, "-rate", strconv.Itoa(rate))
		} else {
			args = append(args, "-depth", "4")
		}
		res, err := r.closedLoop(ts, args)
		if err != nil {
			return err
		}
		cmd = res["rend-l1l2"].cmd
		for _, k := range kinds {
			s := res[k]
			offered := "max (closed loop, depth 4)"
			if rate > 0 {
				offered = strconv.Itoa(rate)
			}
			fmt.Fprintf(&body, "| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f |\n", k, offered, median(s.ops), median(s.hitPct), median(s.p50), median(s.p99), median(s.p999))
			curves[k] = append(curves[k], [2]float64{median(s.ops), median(s.p99)})
		}
	}
	fmt.Fprintf(&body, "\nLast command: `%s`\n\n![p99 vs throughput](beyondram.png)\n", cmd)
	if err := lineChart(filepath.Join(r.o.out, "beyondram.png"), "Data 10x RAM, zipf reads", "achieved ops/s", "p99 µs", curves); err != nil {
		return err
	}
	return r.report("beyondram", "Scenario 3: data beyond RAM", body.String())
}

// overwrite: a bulk writer overwrites existing keys (rend: through the batch
// port) while paced readers read through the regular port.
func (r *runner) overwrite() error {
	old := r.e.l1MB
	r.e.l1MB = 64
	defer func() { r.e.l1MB = old }()
	kinds := []string{"rend-l1l2", "extstore"}
	ts, stop, err := r.startAll(kinds...)
	if err != nil {
		return err
	}
	defer stop()
	keys := r.keys(400000)
	dur := 3 * r.o.duration
	held, err := r.preloadAll(ts, keys)
	if err != nil {
		return err
	}
	var body strings.Builder
	fmt.Fprintf(&body, "%s keys of 1 KiB, L1 RAM 64 MiB, extstore's %d MiB (it held %s items after its paced preload). Readers: 20 connections, zipf gets paced at 2000 req/s through the regular port. Writer: 8 connections overwriting existing keys, uniform, up to 16 sets in flight each, at each offered rate (rend: the batch port); its achieved rate is reported. 20,000/s is the rate of mnemonic's own overwrite benchmark (bench/overwrite). On this 2-core machine an unpaced writer saturates both cores for every target, and readers then measure CPU starvation, not storage.\n\n", keys, r.e.extMB, held)
	body.WriteString(tableHeader("target", "writer offered/s", "writer achieved ops/s", "reader p50 µs", "reader p99 µs", "reader p99.9 µs", "worst 1 s p99 µs", "reader hit %"))
	curves := map[string][][2]float64{}
	var readCmd, writeCmd string
	for _, rate := range strings.Split(r.o.writeRates, ",") {
		rate = strings.TrimSpace(rate)
		for _, t := range ts {
			waddr := t.addr
			if t.batch != "" {
				waddr = t.batch
			}
			readArgs := []string{"-addr", t.addr, "-conns", "20", "-rate", "2000", "-keys", keys, "-dist", "zipf", "-mix", "get=1", "-duration", dur.String(), "-warmup", "2s", "-verify"}
			// The writer pipelines (up to 16 sets in flight per
			// connection), as a bulk loader does: one set at a time
			// per connection held rend's batch port to ~4k/s on this
			// machine, the loader's latency and not the store.
			writeArgs := []string{"-addr", waddr, "-conns", "8", "-depth", "16", "-rate", rate, "-keys", keys, "-value-size", "1024", "-mix", "set=1", "-duration", (dur + 2*time.Second).String(), "-verify"}
			var wres *load.Result
			var werr error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				wres, writeCmd, werr = r.mcload(context.Background(), writeArgs...)
			}()
			rres, line, err := r.mcload(context.Background(), readArgs...)
			wg.Wait()
			if err != nil {
				return err
			}
			if werr != nil {
				return werr
			}
			readCmd = line
			worst := 0.0
			name := t.name + " @" + rate
			for _, s := range rres.Seconds {
				curves[name] = append(curves[name], [2]float64{s.T, s.P99us})
				if s.P99us > worst {
					worst = s.P99us
				}
			}
			hit := 0.0
			if n := rres.Hits + rres.Misses; n > 0 {
				hit = 100 * float64(rres.Hits) / float64(n)
			}
			offered := rate
			if rate == "0" {
				offered = "unpaced"
			}
			fmt.Fprintf(&body, "| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", t.name, offered, wres.OpsPerSec, us(rres.Latency.P50), us(rres.Latency.P99), us(rres.Latency.P999), worst, hit)
			fmt.Fprintf(os.Stderr, "  %-12s writer %s: reader p99 %.1fus worst second %.1fus, writer %.0f ops/s\n", t.name, offered, us(rres.Latency.P99), worst, wres.OpsPerSec)
		}
	}
	fmt.Fprintf(&body, "\nReaders: `%s`\n\nWriter: `%s`\n\n![reader p99 over time](overwrite.png)\n", readCmd, writeCmd)
	if err := lineChart(filepath.Join(r.o.out, "overwrite.png"), "Reader p99 during bulk overwrite", "seconds", "p99 µs", curves); err != nil {
		return err
	}
	return r.report("overwrite", "Scenario 4: bulk overwrite", body.String())
}

// conns: many mostly idle connections; RSS per connection and the latency
// of the active ones.
func (r *runner) conns() error {
	kinds := []string{"rend-l1only", "memcached"}
	counts := []int{1000, 5000, 10000, 19000}
	if r.o.quick {
		counts = []int{100, 1000}
	}
	var body strings.Builder
	body.WriteString("Each run opens N connections to the target; 50 of them send paced load (10,000 req/s, 90% get of 1 KiB values), the rest stay idle. RSS of the front process is sampled mid-run and compared with its RSS before the connections opened. The machine caps open files at 20,000 per process, so 50,000 is extrapolated from the per-connection slope.\n\n")
	body.WriteString(tableHeader("target", "connections", "RSS before KiB", "RSS with conns KiB", "KiB per conn", "active p50 µs", "active p99 µs"))
	curves := map[string][][2]float64{}
	var cmd string
	for _, kind := range kinds {
		for _, n := range counts {
			t, err := r.e.startTarget(kind)
			if err != nil {
				return err
			}
			if err := r.preload(t, "-keys", "10000", "-value-size", "1024"); err != nil {
				t.stop()
				return err
			}
			before := rssKiB(t.front)
			args := []string{"-addr", t.addr, "-conns", strconv.Itoa(n), "-active", "50", "-rate", "10000", "-keys", "10000", "-value-size", "1024", "-duration", r.dur()}
			var during int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				// Sample RSS while all connections are open: the run
				// opens them before it starts its clock.
				time.Sleep(r.o.duration / 2)
				during = rssKiB(t.front)
			}()
			res, line, err := r.mcload(context.Background(), args...)
			<-done
			t.stop()
			if err != nil {
				return err
			}
			cmd = line
			per := float64(during-before) / float64(n)
			fmt.Fprintf(&body, "| %s | %d | %d | %d | %.2f | %.1f | %.1f |\n", kind, n, before, during, per, us(res.Latency.P50), us(res.Latency.P99))
			fmt.Fprintf(os.Stderr, "  %-12s %6d conns: %.2f KiB/conn p99 %.1fus\n", kind, n, per, us(res.Latency.P99))
			curves[kind] = append(curves[kind], [2]float64{float64(n), float64(during-before) / 1024})
		}
	}
	fmt.Fprintf(&body, "\nCommand (per N): `%s`\n\n![RSS growth](conns.png)\n", cmd)
	if err := lineChart(filepath.Join(r.o.out, "conns.png"), "RSS growth with open connections", "connections", "MiB over idle", curves); err != nil {
		return err
	}
	return r.report("conns", "Scenario 5: connections", body.String())
}
