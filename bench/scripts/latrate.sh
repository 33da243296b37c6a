#!/usr/bin/env bash
# latrate.sh ROUNDS RATES REND_A [REND_B]: open-loop latency against the
# offered rate, memcached direct and one or two rends L1-only side by side
# in the same run. RATES is a comma-separated list of req/s. Targets:
# memcached on TCP (-t 2, as benchrun), and each rend on TCP in front of its
# own L1 memcached (unix socket, -t 2); AARGS / BARGS add rend arguments to
# one side. For each rate and round the targets run one after the other
# (the order rotates each round), each with benchrun's open-loop command
# (50 conns, 90% get of 1 KiB, 5 s after 1 s of warm-up). Per run it prints
# ops/s, p50/p99/p99.9 and, for a rend, its threads' run-queue wait per
# request (schedstat: time runnable but not running). Stops what it started.
set -euo pipefail
rounds=$1 rates=$2
shift 2
reads=("$@")
. "$(cd "$(dirname "$0")" && pwd)/procs.sh"
memcached "${user[@]}" -l 127.0.0.1 -p "$base" -U 0 -m 1024 -t 2 -c 4096 >/dev/null 2>&1 &
pids+=("$!")
names=(memcached) ports=("$base") rpids=(0)
read -r -a aargs <<<"${AARGS:-}"
read -r -a bargs <<<"${BARGS:-}"
i=0
for bin in "${reads[@]}"; do
	i=$((i + 1))
	memcached "${user[@]}" -s "$work/l1-$i.sock" -a 0700 -m 1024 -t 2 -c 4096 >/dev/null 2>&1 &
	pids+=("$!")
	for _ in $(seq 100); do [ -S "$work/l1-$i.sock" ] && break; sleep 0.05; done
	if [ $i = 1 ]; then extra=("${aargs[@]}"); else extra=("${bargs[@]}"); fi
	"$bin" -listen "127.0.0.1:$((base + i))" -l1 "unix:$work/l1-$i.sock" -admin "${ADMIN:+127.0.0.1:$((base + 10 + i))}" "${extra[@]}" >"$work/rend-$i.log" 2>&1 &
	pids+=("$!")
	names+=("rend-$(printf "\\x$(printf %x $((64 + i)))")") ports+=($((base + i))) rpids+=("$!")
done
for p in "${ports[@]}"; do
	for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null && break; sleep 0.05; done
	"$root/bin/mcload" -addr "127.0.0.1:$p" -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1
done
echo "# latrate $(date -u +%FT%TZ) A=${reads[0]} ${AARGS:-} B=${reads[1]:-} ${BARGS:-} load: $(cat /proc/loadavg)"
[ -n "${ADMIN:-}" ] && echo "# admin: A 127.0.0.1:$((base + 11)) B 127.0.0.1:$((base + 12)); pids ${rpids[*]}"
# runq: summed run-queue wait (ns) of every thread of a process.
runq() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {printf "%.0f\n", s}'; }
n=${#names[@]}
for rate in ${rates//,/ }; do
	for r in $(seq "$rounds"); do
		for k in $(seq 0 $((n - 1))); do
			t=$(((k + r - 1) % n))
			p=${rpids[$t]}
			w0=0
			[ "$p" != 0 ] && w0=$(runq "$p")
			"$root/bin/mcload" -addr "127.0.0.1:${ports[$t]}" -conns 50 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1 -rate "$rate" -duration "${DURATION:-5s}" -warmup 1s -json >"$work/out.json" 2>/dev/null
			w1=0
			[ "$p" != 0 ] && w1=$(runq "$p")
			python3 - "$work/out.json" "$rate" "$r" "${names[$t]}" "$((w1 - w0))" "${DURATION:-5s}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
l = d["latency"]
dur = float(sys.argv[6].rstrip("s"))
wait = int(sys.argv[5]) / 1e3 / max(1, d["ops"] * (dur + 1) / dur)  # the warm-up second counts too
print("rate %6s round %s %-9s ops/s %6.0f p50 %7.1f p99 %8.1f p99.9 %8.1f us  runq %5.1f us/req" % (
    sys.argv[2], sys.argv[3], sys.argv[4], d["ops_per_sec"], l["p50_ns"] / 1e3, l["p99_ns"] / 1e3, l["p999_ns"] / 1e3, wait))
PY
		done
	done
done
echo "# load after: $(cat /proc/loadavg)"
