package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// budget: the per-request cost of each server process (issue 13's hot-path
// budget). Throughput on the shared 2-core machine moves with whatever else
// runs; what a request costs each process moves much less, so this scenario
// reports, per request and per process: CPU time (utime+stime from
// /proc/PID/stat), read and write syscalls (/proc/PID/io syscr, syscw, which
// count every read-like and write-like call: read, recvfrom, write, sendmsg
// ...), and voluntary and involuntary context switches (summed over
// /proc/PID/task/*/status). ops/s ratios are reported too, with the share of
// the machine's CPU that other work took during the run.
func (r *runner) budget() error {
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
	type workload struct {
		name  string
		perOp int // keys per request
		args  []string
	}
	loads := []workload{
		{"hot set, depth 1", 1, []string{"-conns", "50", "-depth", "1", "-keys", keys, "-value-size", "1024", "-mix", "get=0.9,set=0.1"}},
		{"hot set, depth 16", 1, []string{"-conns", "50", "-depth", "16", "-keys", keys, "-value-size", "1024", "-mix", "get=0.9,set=0.1"}},
		{"multi-get 100 keys", 100, []string{"-conns", "20", "-depth", "1", "-multiget", "100", "-keys", keys, "-value-size", "1024", "-mix", "get=1"}},
	}
	var body strings.Builder
	fmt.Fprintf(&body, "Per request (per key for the multi-get), per process; medians of %d rounds. "+
		"`cpu` is utime+stime, `sys r/w` read-like and write-like syscalls, `vcs`/`ivcs` voluntary and "+
		"involuntary context switches. `other` is the share of the machine's CPU used by processes "+
		"outside this run (other helpers compiling and testing).\n\n", r.o.rounds)
	if len(r.o.rendEnv) > 0 || len(r.o.rendArgs) > 0 {
		fmt.Fprintf(&body, "rend started with env %q, extra args %q.\n\n", r.o.rendEnv, r.o.rendArgs)
	}
	for _, w := range loads {
		type acc struct {
			ops, other []float64
			per        map[string][]budgetCost // process name -> rounds
		}
		res := map[string]*acc{}
		var cmd string
		for round := 0; round < r.o.rounds; round++ {
			for _, t := range ts {
				a := append([]string{"-addr", t.addr, "-duration", r.dur()}, w.args...)
				before := snapProcs(t.procs)
				m0 := machineBusy()
				res0, line, err := r.mcload(context.Background(), a...)
				if err != nil {
					return err
				}
				m1 := machineBusy()
				after := snapProcs(t.procs)
				if res0.IOErrors > 0 || res0.VerifyFailed > 0 || res0.Errors > 0 {
					return fmt.Errorf("%s: %d I/O errors, %d errors, %d verify failures", t.name, res0.IOErrors, res0.Errors, res0.VerifyFailed)
				}
				cmd = line
				x := res[t.name]
				if x == nil {
					x = &acc{per: map[string][]budgetCost{}}
					res[t.name] = x
				}
				x.ops = append(x.ops, res0.OpsPerSec)
				units := float64(res0.Ops) * float64(w.perOp)
				var ours int64
				for i, p := range t.procs {
					c := after[i].sub(before[i]).per(units)
					ours += after[i].ticks - before[i].ticks
					x.per[p.name] = append(x.per[p.name], c)
				}
				ours += int64(r.genCPU.Seconds() * clkTck)
				busy := m1.busy - m0.busy
				total := m1.total - m0.total
				if total > 0 {
					x.other = append(x.other, 100*float64(busy-ours)/float64(total))
				}
				fmt.Fprintf(os.Stderr, "  %s round %d %-12s %9.0f ops/s\n", w.name, round+1, t.name, res0.OpsPerSec)
			}
		}
		base := median(res["memcached"].ops)
		fmt.Fprintf(&body, "## %s\n\n`%s` (with `-addr` of each target; preloaded)\n\n", w.name, cmd)
		body.WriteString(tableHeader("target", "ops/s", "vs memcached", "process", "cpu µs", "sys r", "sys w", "vcs", "ivcs", "other %"))
		for _, t := range ts {
			x := res[t.name]
			for i, p := range t.procs {
				rounds := x.per[p.name]
				c := budgetCost{
					cpuUS: median(pick(rounds, func(c budgetCost) float64 { return c.cpuUS })),
					sysR:  median(pick(rounds, func(c budgetCost) float64 { return c.sysR })),
					sysW:  median(pick(rounds, func(c budgetCost) float64 { return c.sysW })),
					vcs:   median(pick(rounds, func(c budgetCost) float64 { return c.vcs })),
					ivcs:  median(pick(rounds, func(c budgetCost) float64 { return c.ivcs })),
				}
				name, ops, rat, other := "", "", "", ""
				if i == 0 {
					name = t.name
					ops = fmt.Sprintf("%.0f", median(x.ops))
					rat = ratio(median(x.ops), base)
					other = fmt.Sprintf("%.0f", median(x.other))
				}
				fmt.Fprintf(&body, "| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %s |\n",
					name, ops, rat, p.name, c.cpuUS, c.sysR, c.sysW, c.vcs, c.ivcs, other)
			}
		}
		body.WriteString("\n")
	}
	return r.report("budget", "Hot-path budget: cost per request per process", body.String())
}

func pick(cs []budgetCost, f func(budgetCost) float64) []float64 {
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = f(c)
	}
	return out
}

// procSnap is one process's cumulative counters.
type procSnap struct {
	ticks      int64 // utime+stime, clock ticks
	sysR, sysW int64
	vcs, ivcs  int64
}

func (a procSnap) sub(b procSnap) procSnap {
	return procSnap{a.ticks - b.ticks, a.sysR - b.sysR, a.sysW - b.sysW, a.vcs - b.vcs, a.ivcs - b.ivcs}
}

// budgetCost is a procSnap divided by the requests that caused it.
type budgetCost struct {
	cpuUS, sysR, sysW, vcs, ivcs float64
}

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

func (s procSnap) per(n float64) budgetCost {
	if n == 0 {
		return budgetCost{}
	}
	return budgetCost{
		cpuUS: float64(s.ticks) * 1e6 / clkTck / n,
		sysR:  float64(s.sysR) / n,
		sysW:  float64(s.sysW) / n,
		vcs:   float64(s.vcs) / n,
		ivcs:  float64(s.ivcs) / n,
	}
}

func snapProcs(ps []*proc) []procSnap {
	out := make([]procSnap, len(ps))
	for i, p := range ps {
		out[i] = snapProc(p.cmd.Process.Pid)
	}
	return out
}

func snapProc(pid int) procSnap {
	s := procSnap{ticks: cpuTicksPID(pid)}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ": ")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "syscr":
				s.sysR = n
			case "syscw":
				s.sysW = n
			}
		}
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "voluntary_ctxt_switches":
				s.vcs += n
			case "nonvoluntary_ctxt_switches":
				s.ivcs += n
			}
		}
	}
	return s
}

func cpuTicksPID(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// machine is the cumulative CPU time of the whole machine, in ticks.
type machine struct{ busy, total int64 }

func machineBusy() machine {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machine{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)[1:]
	var m machine
	for i, v := range f {
		n, _ := strconv.ParseInt(v, 10, 64)
		m.total += n
		if i != 3 && i != 4 { // idle, iowait
			m.busy += n
		}
	}
	return m
}
