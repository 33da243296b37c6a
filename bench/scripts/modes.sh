#!/usr/bin/env bash
# modes.sh A_REND B_REND ROUNDS SCENARIO: rend A in l1only and rend B in l1l2
# (the same binary twice to compare the modes), each with its own L1
# memcached (B also a mnemonic), each driven by its own generator at the same
# time, so both see the same machine load (as ab.sh with PAR=1). Each round is
# bench/scripts/perop.sh over the rend, its L1 and (B) mnemonic. Scenarios:
# those of budget.sh (depth1, depth16, multiget) and get1/get16 (the same
# with gets only: every request an L1 hit). PROF=1 takes a 3 s CPU profile
# of each rend in round 1 (into OUT, default a temp dir, printed). Stops
# everything it started.
set -euo pipefail
a=$1 b=$2 rounds=$3 scen=$4
. "$(cd "$(dirname "$0")" && pwd)/procs.sh"
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
memcached "${user[@]}" -s "$work/l1a.sock" -a 0700 -m 1024 -t 2 -c 4096 >/dev/null 2>&1 & pids+=("$!"); l1a=$!
memcached "${user[@]}" -s "$work/l1b.sock" -a 0700 -m 1024 -t 2 -c 4096 >/dev/null 2>&1 & pids+=("$!"); l1b=$!
"$root/bin/mnemonic" -listen "unix:$work/l2.sock" -data "$work/data" -admin "" -max-item-size 20971520 >/dev/null 2>&1 & pids+=("$!"); mn=$!
for s in l1a l1b l2; do for _ in $(seq 200); do [ -S "$work/$s.sock" ] && break; sleep 0.05; done; done
"$a" -listen "127.0.0.1:$base" -l1 "unix:$work/l1a.sock" -admin "127.0.0.1:$((base+10))" ${AARGS:-} >"$work/a.log" 2>&1 & pids+=("$!"); pa=$!
"$b" -listen "127.0.0.1:$((base+1))" -l1 "unix:$work/l1b.sock" -l2 "unix:$work/l2.sock" -batch-listen "" -admin "127.0.0.1:$((base+11))" ${BARGS:-} >"$work/b.log" 2>&1 & pids+=("$!"); pb=$!
for port in $base $((base+1)); do for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done; done
case $scen in
custom) per=${PER:-1} args="$ARGS" ;; # any mcload workload: ARGS, PER keys per request
depth1) per=1 args="-conns 50 -depth 1 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1" ;;
get1) per=1 args="-conns 50 -depth 1 -keys 100000 -value-size 1024 -mix get=1" ;;
depth16) per=1 args="-conns 50 -depth 16 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1" ;;
get16) per=1 args="-conns 50 -depth 16 -keys 100000 -value-size 1024 -mix get=1" ;;
multiget) per=100 args="-conns 20 -depth 1 -multiget 100 -keys 100000 -value-size 1024 -mix get=1" ;;
*) echo "unknown scenario $scen" >&2; exit 2 ;;
esac
"$root/bin/mcload" -addr 127.0.0.1:$base -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1
"$root/bin/mcload" -addr 127.0.0.1:$((base+1)) -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1
echo "# modes $scen $(date -u +%FT%TZ) A=$a(l1only) B=$b(l1l2) load: $(cat /proc/loadavg)"
for r in $(seq "$rounds"); do
	if [ "${PROF:-0}" = 1 ] && [ $r = 1 ]; then
		(sleep 1; curl -s -o "$OUT/a-$scen.prof" "http://127.0.0.1:$((base+10))/debug/pprof/profile?seconds=3") &
		c1=$!
		(sleep 1; curl -s -o "$OUT/b-$scen.prof" "http://127.0.0.1:$((base+11))/debug/pprof/profile?seconds=3") &
		c2=$!
	fi
	"$here/perop.sh" "$pa,$l1a" "$per" -- -addr 127.0.0.1:$base -duration "${DURATION:-5s}" $args >"$work/a.out" &
	ga=$!
	"$here/perop.sh" "$pb,$l1b,$mn" "$per" -- -addr 127.0.0.1:$((base + 1)) -duration "${DURATION:-5s}" $args >"$work/b.out"
	wait $ga
	if [ "${PROF:-0}" = 1 ] && [ $r = 1 ]; then wait $c1 $c2; fi
	echo "## round $r A l1only"; cat "$work/a.out"
	echo "## round $r B l1l2"; cat "$work/b.out"
done
echo "# load after: $(cat /proc/loadavg)"
[ "${PROF:-0}" = 1 ] && echo "# profiles: $OUT"
exit 0
