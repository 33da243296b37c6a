#!/usr/bin/env bash
# abstacks.sh A_BINDIR B_BINDIR ROUNDS: an A/B of two whole L1+L2 stacks
# (memcached L1, mnemonic, rend; each stack its own, from A_BINDIR and
# B_BINDIR, both holding rend and mnemonic), loaded at the same time by one
# generator each, so both see the same machine load at every instant (the
# way ab.sh PAR=1 compares two rends, but with mnemonic's share per side:
# ab.sh MODE=l1l2 shares one mnemonic). Each round is perop.sh over the
# three processes of each stack, plus mnemonic's RocksDB writes and the
# operations they carried (ops per write = commit group size).
#
# Environment: AARGS/BARGS extra rend arguments, AMN/BMN extra mnemonic
# arguments, MIX (default set=1), DURATION (default 6s); the load is 50
# connections, one request in flight each, 100k keys of 1 KiB, preloaded.
# Used for bench/results/l2path.md ("Fourth round"). Stops everything it
# started.
set -euo pipefail
a=$1 b=$2 rounds=$3
. "$(cd "$(dirname "$0")" && pwd)/procs.sh"
stack() { # side bindir port extra-rend-args extra-mnemonic-args
	local d=$work/$1 bin=$2 port=$3
	mkdir -p "$d"
	memcached "${user[@]}" -s "$d/l1.sock" -a 0700 -m 1024 -t 2 -c 4096 >/dev/null 2>&1 &
	pids+=("$!")
	echo $! >"$d/pids"
	# shellcheck disable=SC2086
	"$bin/mnemonic" -listen "unix:$d/l2.sock" -data "$d/data" -admin "127.0.0.1:$((port + 2))" -max-item-size 20971520 $5 >/dev/null 2>&1 &
	pids+=("$!")
	echo $! >>"$d/pids"
	for _ in $(seq 100); do [ -S "$d/l1.sock" ] && [ -S "$d/l2.sock" ] && break; sleep 0.05; done
	# shellcheck disable=SC2086
	"$bin/rend" -listen "127.0.0.1:$port" -l1 "unix:$d/l1.sock" -l2 "unix:$d/l2.sock" -batch-listen "" -admin "" $4 >"$d/rend.log" 2>&1 &
	pids+=("$!")
	echo $! >>"$d/pids"
	for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return; sleep 0.05; done
	echo "rend on $port did not start" >&2
	exit 1
}
stack a "$a" "$base" "${AARGS:-}" "${AMN:-}"
stack b "$b" $((base + 10)) "${BARGS:-}" "${BMN:-}"
pre=()
for p in "$base" $((base + 10)); do
	"$root/bin/mcload" -addr "127.0.0.1:$p" -preload -duration 1ms -conns 16 -depth 32 -keys 100000 -value-size 1024 >/dev/null 2>&1 &
	pre+=("$!")
done
wait "${pre[@]}"
load="-conns 50 -depth 1 -keys 100000 -value-size 1024 -mix ${MIX:-set=1} -duration ${DURATION:-6s}"
writes() { curl -s "127.0.0.1:$1/metrics" | awk '/^mnemonic_rocksdb_write_(commits|ops)_total/ {printf "%s ", $2}'; }
echo "# abstacks $(date -u +%FT%TZ) A=$a ${AARGS:-} / ${AMN:-}  B=$b ${BARGS:-} / ${BMN:-}  load: $(cat /proc/loadavg)"
for r in $(seq "$rounds"); do
	read -r ca oa <<<"$(writes $((base + 2)))"
	read -r cb ob <<<"$(writes $((base + 12)))"
	# shellcheck disable=SC2086
	"$here/perop.sh" "$(paste -sd, "$work/a/pids")" 1 -- -addr "127.0.0.1:$base" $load >"$work/a.out" &
	g=$!
	# shellcheck disable=SC2086
	"$here/perop.sh" "$(paste -sd, "$work/b/pids")" 1 -- -addr "127.0.0.1:$((base + 10))" $load >"$work/b.out"
	wait $g
	read -r ca2 oa2 <<<"$(writes $((base + 2)))"
	read -r cb2 ob2 <<<"$(writes $((base + 12)))"
	echo "## round $r A: mnemonic ops per RocksDB write $(awk -v c=$((ca2 - ca)) -v o=$((oa2 - oa)) 'BEGIN{printf "%.2f", c ? o/c : 0}')"
	cat "$work/a.out"
	echo "## round $r B: mnemonic ops per RocksDB write $(awk -v c=$((cb2 - cb)) -v o=$((ob2 - ob)) 'BEGIN{printf "%.2f", c ? o/c : 0}')"
	cat "$work/b.out"
done
echo "# load after: $(cat /proc/loadavg)"
