#!/usr/bin/env bash
# mnemonic-cpu.sh BIN PROCS MIX [mcload args...]
#
# Starts one mnemonic (4 shards, -max-procs PROCS) on a temporary socket,
# preloads 100k keys of 1 KiB, then measures MIX (e.g. get=1, set=1) for
# 10 s with 50 connections through perop.sh: server CPU, syscalls and
# context switches per request. Used for bench/results/l2path.md.
set -euo pipefail
bin=$1 procs=$2 mix=$3; shift 3
root=$(cd "$(dirname "$0")/../.." && pwd)
d=$(mktemp -d)
$bin -listen unix:$d/m.sock -data $d/data -admin "" -shards 4 -max-procs $procs -log-level warn -max-disk-bytes 2147483648 >$d/log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf $d' EXIT
for _ in $(seq 100); do [ -S $d/m.sock ] && break; sleep 0.1; done
"$root/bin/mcload" -addr unix:$d/m.sock -proto meta -keys 100000 -preload -mix get=1 -duration 1s -conns 8 >/dev/null 2>&1
"$root/bench/scripts/perop.sh" $pid 1 -- -addr unix:$d/m.sock -proto meta -keys 100000 -mix "$mix" -duration 10s -conns 50 "$@"
