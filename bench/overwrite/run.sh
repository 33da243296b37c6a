#!/usr/bin/env bash
# Runs the bulk-overwrite read-latency scenario against mnemonic in several
# RocksDB configurations and keeps each run's output under
# bench/results/mnemonic-overwrite/. Usage (from the repository root):
#
#   bench/overwrite/run.sh [config ...]     # default: every config below
#
# Environment: RUN (a suffix for the output file, for repetitions), KEYS (500000), READ_RATE (2000), WRITE_RATE (20000; 0 = as
# fast as the server takes), DURATION (60s), BASELINE (10s), NICE (-10).
# As root, server and client run at nice -10: the machine is shared with
# other builds and tests, and this makes a run behave more like one on a
# dedicated host (mnemonic itself runs its RocksDB threads at nice 19
# relative to that). The "memcached" config measures Debian's memcached with
# the same client, as the floor of the setup.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-500000}
READ_RATE=${READ_RATE:-2000}
WRITE_RATE=${WRITE_RATE:-20000}
DURATION=${DURATION:-60s}
BASELINE=${BASELINE:-10s}
OUT=${OUT:-bench/results/mnemonic-overwrite}
declare -A configs=(
	[fifo]=""
	[fifo-nocomp]="-compression none"
	[leveled]="-compaction-style leveled -max-disk-bytes 0"
	[leveled-blob]="-compaction-style leveled -max-disk-bytes 0 -blob-files"
	[universal]="-compaction-style universal -max-disk-bytes 0"
	[fifo-procs2]=""
	[fifo-wc1]="-write-concurrency 1"
	[fifo-cache2g]="-block-cache-bytes 2147483648"
)
# Environment for the run (client and started server): fifo-procs2 keeps
# mnemonic at GOMAXPROCS=2 (the client's default on 2 cores anyway), to
# measure mnemonic's own GOMAXPROCS choice.
declare -A envs=([fifo-procs2]="GOMAXPROCS=2")
names=("$@")
((${#names[@]})) || names=(memcached fifo fifo-nocomp leveled leveled-blob universal)
mkdir -p bin "$OUT"
go build -o bin/mnemonic ./mnemonic/cmd/mnemonic
go build -o bin/overwrite ./bench/overwrite
prio=()
if [ "$(id -u)" -eq 0 ]; then prio=(nice -n "${NICE:--10}"); fi
for name in "${names[@]}"; do
	file="$OUT/$name-w$WRITE_RATE${RUN:+-$RUN}.txt"
	if [ "$name" = memcached ]; then
		sock=$(mktemp -u /tmp/overwrite-mc.XXXXXX)
		"${prio[@]}" memcached -u root -s "$sock" -m 2048 &
		mc=$!
		for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
		target=(-addr "unix:$sock")
	else
		args=${configs[$name]}
		target=(-start bin/mnemonic -args "$args")
	fi
	echo "== $name (${target[*]}) -> $file"
	{
		echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "# ${envs[$name]-} ${prio[*]} bin/overwrite ${target[*]} -keys $KEYS -read-rate $READ_RATE -write-rate $WRITE_RATE -duration $DURATION -baseline $BASELINE"
		env ${envs[$name]-} "${prio[@]}" bin/overwrite "${target[@]}" -keys "$KEYS" -read-rate "$READ_RATE" \
			-write-rate "$WRITE_RATE" -duration "$DURATION" -baseline "$BASELINE" 2>/dev/null
		echo "# after: load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	} | tee "$file" | grep -E '^(TOTAL|==|#)'
	if [ "$name" = memcached ]; then kill "$mc"; wait "$mc" 2>/dev/null || true; rm -f "$sock"; fi
done
