#!/usr/bin/env bash
# ab.sh A_REND B_REND ROUNDS SCENARIO [rend args...]: an A/B of two rend
# binaries in front of one shared memcached L1 (unix socket), L1-only, taken
# alternately (A, B, A, B, ...) so that both see the same machine load.
# SCENARIO is depth1, depth16 or multiget (the workloads of budget.sh), or
# custom (mcload arguments in ARGS, keys per request in PER). Each
# run is bench/scripts/perop.sh over rend and the L1 memcached: per-request
# CPU, syscalls and context switches, counted by the kernel. Extra arguments
# go to both rends (AARGS / BARGS add arguments to one side only).
# MODE=l1l2 also starts one mnemonic as both rends' L2 (and counts it).
# PAR=1 runs A and B at the same time instead (one generator each, same
# arguments): both then see the same machine load at every instant, which
# makes their CPU per request comparable on a shared, noisy machine (the
# absolute figures are those of a doubly loaded machine). Stops everything
# it started.
set -euo pipefail
a=$1 b=$2 rounds=$3 scen=$4
shift 4
. "$(cd "$(dirname "$0")" && pwd)/procs.sh"
memcached "${user[@]}" -s "$work/l1.sock" -a 0700 -m 1024 -t 2 -c 4096 >/dev/null 2>&1 &
l1=$!
pids+=("$l1")
for _ in $(seq 100); do [ -S "$work/l1.sock" ] && break; sleep 0.05; done
counted=$l1
l2=()
if [ "${MODE:-l1only}" = l1l2 ]; then
	"$root/bin/mnemonic" -listen "unix:$work/l2.sock" -data "$work/data" -admin "" -max-item-size 20971520 >/dev/null 2>&1 &
	pids+=("$!")
	counted="$l1,$!"
	for _ in $(seq 100); do [ -S "$work/l2.sock" ] && break; sleep 0.05; done
	l2=(-l2 "unix:$work/l2.sock" -batch-listen "")
fi
start() { # binary port extra...
	local bin=$1 port=$2
	shift 2
	"$bin" -listen "127.0.0.1:$port" -l1 "unix:$work/l1.sock" "${l2[@]}" -admin "" "$@" >"$work/rend-$port.log" 2>&1 &
	pids+=("$!")
	for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.05; done
	echo "rend on $port did not start" >&2
	exit 1
}
read -r -a aargs <<<"${AARGS:-}"
read -r -a bargs <<<"${BARGS:-}"
start "$a" "$base" "$@" "${aargs[@]}"
pa=${pids[-1]}
start "$b" $((base + 1)) "$@" "${bargs[@]}"
pb=${pids[-1]}
case $scen in
custom) per=${PER:-1} args="$ARGS" ;; # any mcload workload: ARGS, PER keys per request
depth1) per=1 args="-conns 50 -depth 1 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1" ;;
depth16) per=1 args="-conns 50 -depth 16 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1" ;;
multiget) per=100 args="-conns 20 -depth 1 -multiget 100 -keys 100000 -value-size 1024 -mix get=1" ;;
*) echo "unknown scenario $scen" >&2; exit 2 ;;
esac
"$root/bin/mcload" -addr 127.0.0.1:$base -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1
echo "# ab $scen $(date -u +%FT%TZ) A=$a B=$b args: $* load: $(cat /proc/loadavg)"
for r in $(seq "$rounds"); do
	if [ "${PAR:-0}" = 1 ]; then
		# shellcheck disable=SC2086
		"$here/perop.sh" "$pa" "$per" -- -addr 127.0.0.1:$base -duration "${DURATION:-5s}" $args >"$work/a.out" &
		ga=$!
		# shellcheck disable=SC2086
		"$here/perop.sh" "$pb" "$per" -- -addr 127.0.0.1:$((base + 1)) -duration "${DURATION:-5s}" $args >"$work/b.out"
		wait $ga
		echo "## round $r A (together with B)"
		cat "$work/a.out"
		echo "## round $r B (together with A)"
		cat "$work/b.out"
		continue
	fi
	for side in A B; do
		if [ $side = A ]; then p=$pa port=$base; else p=$pb port=$((base + 1)); fi
		echo "## round $r $side"
		# shellcheck disable=SC2086
		"$here/perop.sh" "$p,$counted" "$per" -- -addr 127.0.0.1:$port -duration "${DURATION:-5s}" $args
	done
done
echo "# load after: $(cat /proc/loadavg)"
