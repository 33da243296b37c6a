#!/usr/bin/env bash
# overwrite-breakdown.sh BIN RATE TAG [rend args]: l2stack.sh with BIN's rend and mnemonic, 400k x 1 KiB preloaded
# through rend; then at once a writer at RATE/s (8 conns x 16 in flight, uniform) into the batch port (RATE none:
# no writer) and readers at 2000/s (20 conns, zipf) into the regular port (READ_ADDR=host:port reads a plain
# memcached instead: the floor under the same load). Prints the readers' latency, machine and per-process CPU,
# rend's and mnemonic's per-layer latency (histdelta.py), RocksDB LOG counts and rend's read_lock_waits.
set -uo pipefail
bin=$1 rate=$2 tag=$3; shift 3
mkdir -p /tmp/l2r; dir=/tmp/l2r/s-$tag; rm -rf "$dir"; port=$((20000 + RANDOM % 20000))
$(dirname "$0")/l2stack.sh "$dir" "$bin" "$port" "$@"
trap 'for p in $(cat $dir/pids); do kill $p 2>/dev/null; done; for p in $(cat $dir/pids); do while kill -0 $p 2>/dev/null; do sleep 0.2; done; done; rm -rf $dir/data $dir/*.sock' EXIT
mc=$bin/mcload
# Experiment hook: NICE_PROC=comm:N renices every thread of that process (memcached, mnemonic, rend).
for np in ${NICE_PROC:-}; do for p in $(cat $dir/pids); do [ "$(cat /proc/$p/comm)" = "${np%%:*}" ] && for t in /proc/$p/task/*; do renice -n ${np##*:} -p ${t##*/} >/dev/null; done; done; done
$mc -addr 127.0.0.1:$port -preload -duration 1ms -conns 16 -depth 32 -keys 400000 -value-size 1024 >/dev/null 2>&1
sleep 2
curl -s 127.0.0.1:$((port+1))/metrics >$dir/m0; curl -s 127.0.0.1:$((port+3))/metrics >$dir/n0
# sched: per process, the sum over its threads of /proc/PID/task/*/schedstat (ns on CPU, ns runnable but
# waiting for a CPU, timeslices).
sched() { for p in $(cat $dir/pids); do echo "$p $(cat /proc/$p/comm) $(cat /proc/$p/task/*/schedstat 2>/dev/null | awk '{a+=$1;b+=$2;c+=$3} END {printf "%.0f %.0f %.0f", a,b,c}')"; done; }
ticks() { for p in $(cat $dir/pids); do echo "$p $(cat /proc/$p/comm) $(sed 's/.*) //' /proc/$p/stat | awk '{print $12+$13}')"; done; }
ticks >$dir/t0; head -1 /proc/stat >$dir/c0; sched >$dir/q0
if [ "$rate" != none ]; then
$mc -addr 127.0.0.1:$((port+2)) -conns 8 -depth 16 -rate $rate -keys 400000 -value-size 1024 -mix set=1 -duration 17s -json >$dir/w.json 2>/dev/null &
wp=$!
fi
$mc -addr ${READ_ADDR:-127.0.0.1:$port} -conns 20 -rate 2000 -keys 400000 -dist zipf -mix get=1 -duration 15s -warmup 2s -verify -json >$dir/r.json 2>/dev/null
[ "$rate" != none ] && wait $wp
ticks >$dir/t1; head -1 /proc/stat >$dir/c1; sched >$dir/q1
curl -s 127.0.0.1:$((port+1))/metrics >$dir/m1; curl -s 127.0.0.1:$((port+3))/metrics >$dir/n1
python3 - $dir <<'PY'
import json,sys
d=sys.argv[1]
r=json.load(open(d+"/r.json"))
try: w=json.load(open(d+"/w.json"))
except Exception: w={"ops_per_sec":0}
L=r["latency"]
print("reader: ops/s %.0f p50 %.0f p99 %.0f p99.9 %.0f us; writer %.0f/s" % (r["ops_per_sec"], L["p50_ns"]/1e3, L["p99_ns"]/1e3, L["p999_ns"]/1e3, w.get("ops_per_sec",0)))
t0={l.split()[0]:(l.split()[1],int(l.split()[2])) for l in open(d+"/t0")}
t1={l.split()[0]:(l.split()[1],int(l.split()[2])) for l in open(d+"/t1")}
c0=[int(x) for x in open(d+"/c0").read().split()[1:]]; c1=[int(x) for x in open(d+"/c1").read().split()[1:]]
tot=sum(c1)-sum(c0); idle=(c1[3]-c0[3])+(c1[4]-c0[4])
print("machine busy %.0f%% of 2 cores; " % (100*(1-idle/tot)) + ", ".join("%s %.0f%%" % (t1[p][0], (t1[p][1]-t0[p][1])/ (tot/2) *100) for p in t1))
PY
python3 - $dir <<'PY'
import sys
d=sys.argv[1]
q0={l.split()[0]:l.split()[1:] for l in open(d+"/q0")}; q1={l.split()[0]:l.split()[1:] for l in open(d+"/q1")}
for p in q1:
    n=q1[p][0]; a=[int(x)-int(y) for x,y in zip(q1[p][1:],q0[p][1:])]
    print("%s: waited for a CPU %.0f ms in %d timeslices (%.0f us each), ran %.0f ms" % (n, a[1]/1e6, a[2], a[1]/max(a[2],1)/1e3, a[0]/1e6))
PY
python3 $(dirname "$0")/histdelta.py $dir/m0 $dir/m1
for f in $dir/data/*/LOG; do echo "$f: stalls $(grep -c -i 'stall' $f) flushes $(grep -c 'flush_started' $f) compactions $(grep -c 'compaction_started' $f)"; grep -i 'Stalling writes\|Stopping writes\|stall' $f | head -3; done
python3 $(dirname "$0")/histdelta.py $dir/n0 $dir/n1
for f in rend mnemonic; do [ -s $dir/$f.log ] && echo "$f GCs: $(grep -c '^gc ' $dir/$f.log)" && grep '^gc ' $dir/$f.log | tail -2; done
curl -s 127.0.0.1:$((port+1))/stats | python3 -c "
import json,sys;s=json.load(sys.stdin);print('rend stats: l1_misses',s.get('l1_misses'),'read_lock_waits',s.get('read_lock_waits'),'l2_hits',s.get('l2_hits'))"
for m in rocksdb_write_ops_total rocksdb_write_commits_total; do
  echo "mnemonic $m: $(( $(grep "^mnemonic_$m " $dir/n1 | awk '{printf "%d", $2}') - $(grep "^mnemonic_$m " $dir/n0 | awk '{printf "%d", $2}') ))"
done
