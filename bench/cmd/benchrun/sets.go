package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// sets: 1 KiB sets, 50 connections, one set in flight per connection
// (closed loop), through rend L1+L2, rend L1-only and mnemonic alone
// (issue 14's sets/s goal: rend L1+L2 at least 0.5x rend L1-only). Each
// process's CPU time per set is reported too, as throughput on the shared
// machine moves with whatever else runs.
func (r *runner) sets() error {
	kinds := []string{"rend-l1l2", "rend-l1only", "mnemonic"}
	ts, stop, err := r.startAll(kinds...)
	if err != nil {
		return err
	}
	defer stop()
	keys := r.keys(100000)
	args := []string{"-conns", "50", "-depth", "1", "-keys", keys, "-value-size", "1024", "-mix", "set=1", "-duration", r.dur(), "-warmup", "1s"}
	ops := map[string][]float64{}
	cpu := map[string][]float64{} // target/process -> CPU µs per set
	var cmd string
	for round := 0; round < r.o.rounds; round++ {
		for _, t := range ts {
			before := snapProcs(t.procs)
			res, line, err := r.mcload(context.Background(), append([]string{"-addr", t.addr}, args...)...)
			if err != nil {
				return err
			}
			after := snapProcs(t.procs)
			if res.IOErrors > 0 || res.Errors > 0 {
				return fmt.Errorf("%s: %d I/O errors, %d errors", t.name, res.IOErrors, res.Errors)
			}
			cmd = line
			ops[t.name] = append(ops[t.name], res.OpsPerSec)
			for i, p := range t.procs {
				k := t.name + "/" + p.name
				cpu[k] = append(cpu[k], after[i].sub(before[i]).per(float64(res.Ops)).cpuUS)
			}
			fmt.Fprintf(os.Stderr, "  round %d %-12s %9.0f sets/s\n", round+1, t.name, res.OpsPerSec)
		}
	}
	base := median(ops["rend-l1only"])
	var body strings.Builder
	fmt.Fprintf(&body, "1 KiB sets over %s keys, 50 connections, one set in flight each (closed loop); medians of %d rounds. "+
		"CPU is utime+stime of each process per set. Goal (issue 14): rend L1+L2 at least 0.5x rend L1-only.\n\n`%s` (with `-addr` of each target)\n\n",
		keys, r.o.rounds, cmd)
	body.WriteString(tableHeader("target", "sets/s", "vs rend-l1only", "CPU µs per set, per process"))
	for _, t := range ts {
		var per []string
		for _, p := range t.procs {
			per = append(per, fmt.Sprintf("%s %.1f", p.name, median(cpu[t.name+"/"+p.name])))
		}
		m := median(ops[t.name])
		fmt.Fprintf(&body, "| %s | %.0f | %s | %s |\n", t.name, m, ratio(m, base), strings.Join(per, ", "))
	}
	return r.report("sets", "Sets through the tiers", body.String())
}
