// Command benchrun runs moneta's benchmark scenarios against several targets
// side by side (memcached direct, rend L1-only, rend L1+L2, memcached with
// extstore, mnemonic direct), alternating targets over several rounds, and
// writes Markdown tables and PNG charts to bench/results/. The load comes
// from bin/mcload, run as a separate process with -json; every table lists
// the exact mcload command line.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/moneta-cache/moneta/bench/load"
)

type options struct {
	bin       string
	out       string
	rounds    int
	duration  time.Duration
	scenarios string
	l1MB      int
	extMB     int
	// writeRates are the bulk writer's paced rates in the overwrite
	// scenario (0: unpaced).
	writeRates string
	threads    int
	quick      bool
	// rendEnv and rendArgs are added to every rend started (for A/B runs
	// of a setting, e.g. GOMAXPROCS=1).
	rendEnv, rendArgs []string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory with mcload, rend and mnemonic")
	flag.StringVar(&o.out, "out", "bench/results", "where results go")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per scenario (targets alternate within a round)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per run")
	flag.StringVar(&o.scenarios, "scenarios", "hot,multiget,beyondram,overwrite,conns", "comma-separated scenarios")
	flag.IntVar(&o.l1MB, "l1-mb", 1024, "memcached memory (MiB) for RAM-sized scenarios")
	flag.IntVar(&o.extMB, "extstore-mb", 512, "extstore's memcached memory (MiB) in the beyondram and overwrite scenarios: its RAM must hold an item header for every item on flash, so it gets more than L1's 64 MiB (hit ratios are reported for both)")
	flag.StringVar(&o.writeRates, "overwrite-rates", "5000,20000", "comma-separated overwrite/s of the bulk writer in the overwrite scenario (0 = unpaced); 20,000/s (20 MB/s) is the rate mnemonic's own overwrite benchmark holds reads under 1 ms at, and above what Netflix's Mnemonic sustained")
	flag.IntVar(&o.threads, "threads", 2, "memcached worker threads (-t)")
	flag.BoolVar(&o.quick, "quick", false, "small key counts and short runs, to check the harness")
	rendEnv := flag.String("rend-env", "", "space-separated VAR=value pairs added to rend's environment")
	rendArgs := flag.String("rend-args", "", "space-separated extra arguments for rend")
	flag.Parse()
	o.rendEnv, o.rendArgs = strings.Fields(*rendEnv), strings.Fields(*rendArgs)
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchrun-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logs, err := os.Create(filepath.Join(dir, "servers.log"))
	if err != nil {
		return err
	}
	e := &env{bin: o.bin, dir: dir, l1MB: o.l1MB, extMB: o.extMB, threads: o.threads, logs: logs, rendEnv: o.rendEnv, rendArgs: o.rendArgs}
	r := &runner{o: o, e: e}
	for _, s := range strings.Split(o.scenarios, ",") {
		fn, ok := scenarios[strings.TrimSpace(s)]
		if !ok {
			return fmt.Errorf("unknown scenario %q", s)
		}
		fmt.Fprintf(os.Stderr, "== scenario %s\n", s)
		if err := fn(r); err != nil {
			logs.Sync()
			tail, _ := exec.Command("tail", "-n", "30", logs.Name()).Output()
			return fmt.Errorf("scenario %s: %w\nserver log tail:\n%s", s, err, tail)
		}
	}
	return nil
}

type runner struct {
	o options
	e *env
	// genCPU is the user+system CPU time of the last mcload run.
	genCPU time.Duration
}

// mcload runs the generator with args plus -json and returns its result and
// the command line (for the report).
func (r *runner) mcload(ctx context.Context, args ...string) (*load.Result, string, error) {
	bin := filepath.Join(r.o.bin, "mcload")
	full := append(append([]string{}, args...), "-json")
	cmd := exec.CommandContext(ctx, bin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	line := "mcload " + strings.Join(args, " ")
	if err := cmd.Run(); err != nil {
		return nil, line, fmt.Errorf("%s: %v\n%s", line, err, lastLines(errb.String(), 5))
	}
	r.genCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var res load.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, line, fmt.Errorf("%s: bad JSON: %v", line, err)
	}
	return &res, line, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func machineFacts() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- cores: %d (load generator and servers share them)\n", runtime.NumCPU())
	if m, err := os.ReadFile("/proc/meminfo"); err == nil {
		fmt.Fprintf(&b, "- memory: %s\n", strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(m), "\n", 2)[0], "MemTotal:")))
	}
	if out, err := exec.Command("memcached", "-V").Output(); err == nil {
		fmt.Fprintf(&b, "- %s", out)
	}
	fmt.Fprintf(&b, "- go: %s\n", runtime.Version())
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		fmt.Fprintf(&b, "- moneta commit: %s", out)
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "librocksdb-dev").Output(); err == nil {
		fmt.Fprintf(&b, "- librocksdb: %s\n", out)
	}
	return b.String()
}

func writeFile(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o644)
}
