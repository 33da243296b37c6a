#!/usr/bin/env bash
# beyondram-perop.sh BIN TAG [rend args]: l2stack.sh with BIN's rend and mnemonic, KEYS (600000) x 1 KiB preloaded
# through rend, WARM (3s) of zipf gets, then perop.sh on memcached, mnemonic and rend for 8 s of zipf gets
# (20 conns x 4 in flight): CPU, syscalls, context switches per get; L1 miss share; mnemonic's RocksDB lookups
# and writes meanwhile. PROF=1 also saves 6 s CPU profiles of rend and mnemonic in /tmp/l2r/bm-TAG.
set -uo pipefail
bin=$1 tag=$2; shift 2
mkdir -p /tmp/l2r; dir=/tmp/l2r/bm-$tag; rm -rf "$dir"; port=$((20000 + RANDOM % 20000))
$(dirname "$0")/l2stack.sh "$dir" "$bin" "$port" "$@"
trap 'for p in $(cat $dir/pids); do kill $p 2>/dev/null; done; for p in $(cat $dir/pids); do while kill -0 $p 2>/dev/null; do sleep 0.2; done; done; rm -rf $dir/data $dir/*.sock' EXIT
mc=$bin/mcload
$mc -addr 127.0.0.1:$port -preload -duration 1ms -conns 16 -depth 32 -keys ${KEYS:-600000} -value-size 1024 >/dev/null 2>&1
sleep 2
$mc -addr 127.0.0.1:$port -conns 20 -depth 4 -keys ${KEYS:-600000} -dist zipf -mix get=1 -duration ${WARM:-3s} >/dev/null 2>&1  # warm
st() { curl -s 127.0.0.1:$((port+1))/stats | python3 -c "import json,sys;s=json.load(sys.stdin);print(s['cmd_get'],s['l1_misses'],s['l2_hits'])"; }
s0=$(st); n0=$(curl -s 127.0.0.1:$((port+3))/metrics | grep -E '^mnemonic_rocksdb_(read_calls|read_keys|write_commits|write_ops)_total' | awk '{print $2}' | xargs)
if [ "${PROF:-}" = 1 ]; then
  curl -s "127.0.0.1:$((port+1))/debug/pprof/profile?seconds=6" >$dir/rend.prof &
  curl -s "127.0.0.1:$((port+3))/debug/pprof/profile?seconds=6" >$dir/mn.prof &
fi
$(dirname "$0")/perop.sh $(paste -sd, $dir/pids) 1 -- -addr 127.0.0.1:$port -conns 20 -depth 4 -keys ${KEYS:-600000} -dist zipf -mix get=1 -duration 8s
wait
s1=$(st); n1=$(curl -s 127.0.0.1:$((port+3))/metrics | grep -E '^mnemonic_rocksdb_(read_calls|read_keys|write_commits|write_ops)_total' | awk '{print $2}' | xargs)
python3 -c "
a=[int(x) for x in '$s0'.split()]; b=[int(x) for x in '$s1'.split()]
d=[y-x for x,y in zip(a,b)]; print('gets %d, L1 misses %d (%.1f%%), L2 hits %d' % (d[0], d[1], 100*d[1]/max(d[0],1), d[2]))
n0=[float(x) for x in '$n0'.split()]; n1=[float(x) for x in '$n1'.split()]
print('mnemonic (read_calls, read_keys, write_commits, write_ops) delta', [b-a for a,b in zip(n0,n1)])
"
