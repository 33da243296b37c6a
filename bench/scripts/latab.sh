#!/usr/bin/env bash
# latab.sh REND ROUNDS RATE...: open-loop latency of two rends side by side
# (the same binary, AARGS and BARGS added to one side each) in front of one
# shared L1 memcached, L1-only: for each rate, ROUNDS runs of two paced mcload
# generators at the same time (50 conns, 90% get of 1 KiB values, 5 s after
# 1 s of warm-up), one per rend, printing ops/s and p50/p99/p99.9 of each.
# Side by side, both see the same machine load at every instant (see ab.sh).
# Stops everything it started.
set -euo pipefail
rend=$1 rounds=$2
shift 2
. "$(cd "$(dirname "$0")" && pwd)/procs.sh"
memcached "${user[@]}" -s "$work/l1.sock" -a 0700 -m 1024 -t 2 -c 4096 >/dev/null 2>&1 &
pids+=("$!")
for _ in $(seq 100); do [ -S "$work/l1.sock" ] && break; sleep 0.05; done
read -r -a aargs <<<"${AARGS:-}"
read -r -a bargs <<<"${BARGS:-}"
for side in 0 1; do
	if [ $side = 0 ]; then extra=("${aargs[@]}"); else extra=("${bargs[@]}"); fi
	"$rend" -listen "127.0.0.1:$((base + side))" -l1 "unix:$work/l1.sock" -admin "" "${extra[@]}" >"$work/rend-$side.log" 2>&1 &
	pids+=("$!")
	for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$((base + side))) 2>/dev/null && break; sleep 0.05; done
done
"$root/bin/mcload" -addr 127.0.0.1:$base -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1
echo "# latab $(date -u +%FT%TZ) A: ${AARGS:-} B: ${BARGS:-} load: $(cat /proc/loadavg)"
for rate in "$@"; do
	for r in $(seq "$rounds"); do
		args=(-conns 50 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1 -rate "$rate" -duration 5s -warmup 1s -json)
		"$root/bin/mcload" -addr 127.0.0.1:$base "${args[@]}" >"$work/a.json" 2>/dev/null &
		g=$!
		"$root/bin/mcload" -addr 127.0.0.1:$((base + 1)) "${args[@]}" >"$work/b.json" 2>/dev/null
		wait $g
		python3 - "$work/a.json" "$work/b.json" "$rate" "$r" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
def s(d):
    l = d["latency"]
    return "ops/s %.0f p50 %d p99 %d p99.9 %d us" % (d["ops_per_sec"], l["p50_ns"] // 1000, l["p99_ns"] // 1000, l["p999_ns"] // 1000)
print(f"rate {sys.argv[3]} round {sys.argv[4]} | A: {s(a)} | B: {s(b)}")
PY
	done
done
