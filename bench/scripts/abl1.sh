#!/usr/bin/env bash
# abl1.sh A_REND B_REND ROUNDS SCENARIO: an A/B of two whole L1-only stacks
# (each its own memcached L1 and rend), loaded at the same time by one
# generator each, so both see the same machine load at every instant (as
# ab.sh PAR=1 does, but with L1's CPU per request split per side: ab.sh
# shares one L1). SCENARIO as in ab.sh: depth1, depth16, multiget, or
# custom (mcload arguments in ARGS, keys per request in PER). AARGS / BARGS
# add rend arguments to one side, AL1 / BL1 memcached arguments (replacing
# "-t 2"). Each round is perop.sh over each side's
# rend and memcached. Used for bench/results/hotpath.md ("Sixth round").
# Stops everything it started.
set -euo pipefail
a=$1 b=$2 rounds=$3 scen=$4
. "$(cd "$(dirname "$0")" && pwd)/procs.sh"
stack() { # side rend port extra-rend-args memcached-args
	local d=$work/$1 bin=$2 port=$3
	mkdir -p "$d"
	# shellcheck disable=SC2086
	memcached "${user[@]}" -s "$d/l1.sock" -a 0700 -m 1024 -c 4096 $5 >/dev/null 2>&1 &
	pids+=("$!")
	for _ in $(seq 100); do [ -S "$d/l1.sock" ] && break; sleep 0.05; done
	# shellcheck disable=SC2086
	"$bin" -listen "127.0.0.1:$port" -l1 "unix:$d/l1.sock" -admin "" $4 >"$d/rend.log" 2>&1 &
	pids+=("$!")
	echo "${pids[-1]},${pids[-2]}" >"$d/pids"
	for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.05; done
	echo "rend on $port did not start" >&2
	exit 1
}
stack a "$a" "$base" "${AARGS:-}" "${AL1:--t 2}"
stack b "$b" $((base + 10)) "${BARGS:-}" "${BL1:--t 2}"
case $scen in
custom) per=${PER:-1} args="$ARGS" ;;
depth1) per=1 args="-conns 50 -depth 1 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1" ;;
depth16) per=1 args="-conns 50 -depth 16 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1" ;;
multiget) per=100 args="-conns 20 -depth 1 -multiget 100 -keys 100000 -value-size 1024 -mix get=1" ;;
*) echo "unknown scenario $scen" >&2; exit 2 ;;
esac
pre=()
for p in "$base" $((base + 10)); do
	"$root/bin/mcload" -addr "127.0.0.1:$p" -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1 &
	pre+=("$!")
done
wait "${pre[@]}"
echo "# abl1 $scen $(date -u +%FT%TZ) A=$a ${AARGS:-} L1 ${AL1:--t 2}  B=$b ${BARGS:-} L1 ${BL1:--t 2}  args: $args  load: $(cat /proc/loadavg)"
for r in $(seq "$rounds"); do
	# shellcheck disable=SC2086
	"$here/perop.sh" "$(cat "$work/a/pids")" "$per" -- -addr "127.0.0.1:$base" -duration "${DURATION:-5s}" $args >"$work/a.out" &
	g=$!
	# shellcheck disable=SC2086
	"$here/perop.sh" "$(cat "$work/b/pids")" "$per" -- -addr "127.0.0.1:$((base + 10))" -duration "${DURATION:-5s}" $args >"$work/b.out"
	wait $g
	echo "## round $r A"
	cat "$work/a.out"
	echo "## round $r B"
	cat "$work/b.out"
done
echo "# load after: $(cat /proc/loadavg)"
