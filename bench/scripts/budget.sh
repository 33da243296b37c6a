#!/usr/bin/env bash
# budget.sh OUTDIR [rend args...]: the hot-path budget of bench/results/hotpath.md.
# Starts memcached direct, rend L1-only and rend L1+L2 (bench/scripts/stack.sh,
# extra arguments go to both rends), preloads 100k 1 KiB keys into each, then
# for each scenario runs bench/scripts/perop.sh against each target (per-request
# CPU, syscalls, context switches of every server process, and the load
# generator's own CPU), and takes a 5 s pprof CPU profile of each rend under
# the same load (top 10 in OUTDIR/*.top). Run `make build` first. Stops
# everything it started. REND=path runs another rend binary (for before/after runs).
set -euo pipefail
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$out"
work=$(mktemp -d)
# Stop everything, wait for it to exit (mnemonic still writes its data
# directory while it shuts down), then remove the work directory.
stop() {
	local all=()
	for t in d a b; do [ -f "$work/$t/pids" ] && all+=($(cat "$work/$t/pids")); done
	[ ${#all[@]} -gt 0 ] && kill "${all[@]}" 2>/dev/null
	for p in "${all[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	done
	rm -rf "$work"
}
trap stop EXIT
base=$((20000 + RANDOM % 20000))
"$here/stack.sh" "$work/d" direct $base
"$here/stack.sh" "$work/a" l1only $((base + 10)) "$@"
"$here/stack.sh" "$work/b" l1l2 $((base + 20)) "$@"
port() { case $1 in d) echo $base ;; a) echo $((base + 10)) ;; b) echo $((base + 20)) ;; esac; }
name() { case $1 in d) echo memcached ;; a) echo rend-l1only ;; b) echo rend-l1l2 ;; esac; }
for t in d a b; do
	"$root/bin/mcload" -addr 127.0.0.1:$(port $t) -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1
done
scen=(
	"depth1|1|-conns 50 -depth 1 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1"
	"depth16|1|-conns 50 -depth 16 -keys 100000 -value-size 1024 -mix get=0.9,set=0.1"
	"multiget|100|-conns 20 -depth 1 -multiget 100 -keys 100000 -value-size 1024 -mix get=1"
)
{
	echo "# budget $(date -u +%FT%TZ) commit $(git -C "$root" rev-parse --short HEAD) rend args: $*"
	echo "# load before: $(cat /proc/loadavg)"
	for s in "${scen[@]}"; do
		IFS='|' read -r sname per args <<<"$s"
		echo "## $sname: mcload $args -duration 5s"
		for t in d a b; do
			echo "### $(name $t)"
			"$here/perop.sh" "$(paste -sd, "$work/$t/pids")" "$per" -- -addr 127.0.0.1:$(port $t) -duration 5s $args
		done
		for t in a b; do
			"$root/bin/mcload" -addr 127.0.0.1:$(port $t) -duration 7s $args >/dev/null 2>&1 &
			gen=$!
			sleep 1
			curl -s -o "$out/$sname-$(name $t).prof" "http://127.0.0.1:$(($(port $t) + 1))/debug/pprof/profile?seconds=5"
			wait $gen
			go tool pprof -top -nodecount=10 "${REND:-$root/bin/rend}" "$out/$sname-$(name $t).prof" 2>/dev/null | sed -n '/flat%/,$p' >"$out/$sname-$(name $t).top"
		done
	done
	echo "# load after: $(cat /proc/loadavg)"
} | tee "$out/budget.txt"
