#!/usr/bin/env bash
# latab.sh REND ROUNDS RATE...: open-loop latency of two rends side by side
# (the same binary, AARGS and BARGS added to one side each) in front of one
# shared L1 memcached, L1-only: for each rate, ROUNDS runs of two paced mcload
# generators at the same time (50 conns, 90% get of 1 KiB values, 5 s after
# 1 s of warm-up), one per rend, printing ops/s and p50/p99/p99.9 of each.
# Side by side, both see the same machine load at every instant (see ab.sh).
# BREND=BIN runs BIN as side B instead of REND. MODE=l1l2 also starts one
# mnemonic as both rends' L2, and each line adds the sets' own p50/p99.
# Stops everything it started.
set -euo pipefail
rend=$1 rounds=$2
shift 2
. "$(cd "$(dirname "$0")" && pwd)/procs.sh"
memcached "${user[@]}" -s "$work/l1.sock" -a 0700 -m 1024 -t 2 -c 4096 >/dev/null 2>&1 &
pids+=("$!")
for _ in $(seq 100); do [ -S "$work/l1.sock" ] && break; sleep 0.05; done
l2=()
if [ "${MODE:-l1only}" = l1l2 ]; then
	"$root/bin/mnemonic" -listen "unix:$work/l2.sock" -data "$work/data" -admin "" -max-item-size 20971520 >/dev/null 2>&1 &
	pids+=("$!")
	for _ in $(seq 100); do [ -S "$work/l2.sock" ] && break; sleep 0.05; done
	l2=(-l2 "unix:$work/l2.sock" -batch-listen "")
fi
read -r -a aargs <<<"${AARGS:-}"
read -r -a bargs <<<"${BARGS:-}"
for side in 0 1; do
	bin=$rend
	if [ $side = 0 ]; then extra=("${aargs[@]}"); else extra=("${bargs[@]}") bin=${BREND:-$rend}; fi
	"$bin" -listen "127.0.0.1:$((base + side))" -l1 "unix:$work/l1.sock" "${l2[@]}" -admin "" "${extra[@]}" >"$work/rend-$side.log" 2>&1 &
	pids+=("$!")
	for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$((base + side))) 2>/dev/null && break; sleep 0.05; done
done
"$root/bin/mcload" -addr 127.0.0.1:$base -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1
echo "# latab ${MODE:-l1only} $(date -u +%FT%TZ) A: $rend ${AARGS:-} B: ${BREND:-$rend} ${BARGS:-} load: $(cat /proc/loadavg)"
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
    out = "ops/s %.0f p50 %d p99 %d p99.9 %d us" % (d["ops_per_sec"], l["p50_ns"] // 1000, l["p99_ns"] // 1000, l["p999_ns"] // 1000)
    st = (d.get("per_op") or {}).get("set")
    if st:
        out += " (sets p50 %d p99 %d)" % (st["p50_ns"] // 1000, st["p99_ns"] // 1000)
    return out
print(f"rate {sys.argv[3]} round {sys.argv[4]} | A: {s(a)} | B: {s(b)}")
PY
	done
done
