#!/usr/bin/env bash
# paced.sh TAG BIN RATE [rend args]: a fresh beyond-RAM stack (l2stack.sh: L1 -m 64, mnemonic, BIN's rend), 600k x 1 KiB
# preloaded through rend, 3 s closed-loop warm-up, then RATE req/s of zipf gets paced over 20 connections for
# 6 s: achieved ops/s, p50, p99. Used for bench/results/l2path.md (end of the fifth round). Stops what it started.
set -uo pipefail
tag=$1 bin=$2 rate=$3; shift 3
cd "$(dirname "$0")/../.."
dir=/tmp/l2r/p-$tag; rm -rf $dir; mkdir -p /tmp/l2r; port=$((20000 + RANDOM % 20000))
bash bench/scripts/l2stack.sh $dir $bin $port "$@" >/dev/null 2>&1
trap 'for p in $(cat $dir/pids); do kill $p 2>/dev/null; done; for p in $(cat $dir/pids); do while kill -0 $p 2>/dev/null; do sleep 0.2; done; done; rm -rf $dir/data $dir/*.sock' EXIT
$bin/mcload -addr 127.0.0.1:$port -preload -duration 1ms -conns 16 -depth 32 -keys 600000 -value-size 1024 >/dev/null 2>&1
sleep 2
$bin/mcload -addr 127.0.0.1:$port -conns 20 -depth 4 -keys 600000 -dist zipf -mix get=1 -duration 3s >/dev/null 2>&1
out=$($bin/mcload -addr 127.0.0.1:$port -conns 20 -rate $rate -keys 600000 -dist zipf -mix get=1 -duration 6s -warmup 1s -json 2>/dev/null)
echo "$out" | python3 -c "
import json,sys; r=json.load(sys.stdin); L=r['latency']
print('$tag rate $rate: ops/s %.0f p50 %.0f p99 %.0f us' % (r['ops_per_sec'], L['p50_ns']/1e3, L['p99_ns']/1e3))"
