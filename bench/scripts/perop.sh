#!/usr/bin/env bash
# perop.sh PIDS KEYS_PER_OP -- mcload args...
#
# Runs bin/mcload with the given arguments while `perf stat` counts, in the
# kernel, every syscall (and the main ones by name), context switches and CPU
# time of each process in PIDS (comma-separated), then prints them per request
# (per key when KEYS_PER_OP > 1). In-kernel counting barely slows the servers,
# unlike strace. Used for bench/results/hotpath.md.
set -euo pipefail
pids=$1 per=$2
shift 3
out=$(mktemp) res=$(mktemp)
trap 'rm -f "$out" "$out.gen" "$out.t0" "$out.t1" "$res"' EXIT
events=raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep,context-switches,task-clock
bin=$(dirname "$0")/../../bin
# user and system CPU ticks of each process (utime, stime in /proc/PID/stat),
# before and after: the split shows where a change acts (user space: Go
# scheduling, parsing, copying; system: syscalls and wake-ups).
ticks() { for p in ${pids//,/ }; do echo "$p $(sed 's/.*) //' /proc/$p/stat | awk '{print $12, $13}')"; done; }
ticks >"$out.t0"
perf stat --per-thread -o "$out" -x, -e "$events" -p "$pids" -- perf stat -o "$out.gen" -x, -e task-clock -- "$bin/mcload" "$@" -json >"$res" 2>/dev/null
ticks >"$out.t1"
python3 - "$out" "$res" "$per" "$pids" <<'PY'
import json, sys, collections, subprocess, os
out, res, per, pids = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(",")
hz = os.sysconf("SC_CLK_TCK")
t0 = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(out + ".t0")}
t1 = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(out + ".t1")}
d = json.load(open(res))
n = d["ops"] * per
# --per-thread lines: comm-tid,value,unit,event,...; sum per process by comm prefix
tot = collections.defaultdict(lambda: collections.defaultdict(float))
names = {}
for p in pids:
    try: names[p] = open(f"/proc/{p}/comm").read().strip()
    except OSError: names[p] = p
for line in open(out):
    if not line.strip() or line.startswith("#"): continue
    f = line.strip().split(",")
    if len(f) < 4: continue
    who, val, ev = f[0], f[1], f[3]
    try: v = float(val)
    except ValueError: continue
    tid = who.rsplit("-", 1)[-1]
    pid = None
    for p in pids:
        try:
            import os
            if os.path.exists(f"/proc/{p}/task/{tid}"): pid = p
        except OSError: pass
    tot[pid or who][ev] += v
gen = 0.0
for line in open(out + ".gen"):
    f = line.strip().split(",")
    if len(f) > 2 and f[2] == "task-clock":
        gen = float(f[0])
print(f"ops {d['ops']} ops/s {d['ops_per_sec']:.0f} errors {d['errors']} io_errors {d['io_errors']}; mcload cpu {gen*1e3/n:.2f}us (per {'key' if per>1 else 'request'})")
for p, evs in tot.items():
    label = names.get(p, p)
    cpu = evs.get("task-clock", 0) * 1e3 / n  # msec -> us
    row = [f"cpu {cpu:.2f}us"]
    if p in t0 and p in t1:
        u, s_ = ((t1[p][i] - t0[p][i]) * 1e6 / hz / n for i in (0, 1))
        row.append(f"(user {u:.2f} sys {s_:.2f})")
    row.append(f"syscalls {evs.get('raw_syscalls:sys_enter',0)/n:.2f}")
    for e in ["read","write","sendmsg","recvfrom","epoll_wait","epoll_pwait","futex","nanosleep"]:
        v = evs.get("syscalls:sys_enter_"+e, 0)/n
        if v >= 0.005: row.append(f"{e} {v:.2f}")
    row.append(f"cs {evs.get('context-switches',0)/n:.2f}")
    print(f"  {label}[{p}]: " + "  ".join(row))
PY
