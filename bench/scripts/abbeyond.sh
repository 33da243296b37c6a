#!/usr/bin/env bash
# abbeyond.sh A_BIN B_BIN ROUNDS: two beyond-RAM stacks (l2stack.sh: L1 -m 64, mnemonic, rend) at once,
# 600k x 1 KiB preloaded in each; each round loads both at the same instant: closed loop 20x4 zipf 6 s,
# then paced RATE (5000) req/s over 20 conns 6 s. Prints ops/s, latency, L1 misses, fills per L1 fill write.
# Used for bench/results/l2path.md ("Fifth round: rend's miss path"). Stops everything it started.
set -uo pipefail
A=$(cd "$1" && pwd) B=$(cd "$2" && pwd) rounds=$3
cd "$(dirname "$0")/../.."
pa=$((20000 + RANDOM % 10000)); pb=$((pa + 10))
mkdir -p /tmp/l2r; da=/tmp/l2r/abb-a; db=/tmp/l2r/abb-b; rm -rf $da $db
bash bench/scripts/l2stack.sh $da $A $pa
bash bench/scripts/l2stack.sh $db $B $pb
trap 'for d in $da $db; do for p in $(cat $d/pids); do kill $p 2>/dev/null; done; done; for d in $da $db; do for p in $(cat $d/pids); do while kill -0 $p 2>/dev/null; do sleep 0.2; done; done; rm -rf $d/data $d/*.sock; done' EXIT
$A/mcload -addr 127.0.0.1:$pa -preload -duration 1ms -conns 16 -depth 32 -keys 600000 -value-size 1024 >/dev/null 2>&1 &
$B/mcload -addr 127.0.0.1:$pb -preload -duration 1ms -conns 16 -depth 32 -keys 600000 -value-size 1024 >/dev/null 2>&1
wait; sleep 2
st() { curl -s 127.0.0.1:$(( $1 + 1 ))/stats | python3 -c "import json,sys;s=json.load(sys.stdin);print(s['cmd_get'],s['l1_misses'],s.get('l1_fills',0),s.get('l1_fill_batches',0))"; }
run() { # side port args
  local s0=$(st $2)
  local out=$($A/mcload -addr 127.0.0.1:$2 -conns 20 $3 -keys 600000 -dist zipf -mix get=1 -duration 6s -warmup 1s 2>&1 | grep -E '^ops=|^latency' | tr '\n' ' ')
  local s1=$(st $2)
  echo "$1 $out $(python3 -c "
a=[int(x) for x in '$s0'.split()]; b=[int(x) for x in '$s1'.split()]
d=[y-x for x,y in zip(a,b)]; print('L1miss %.1f%% fills/batch %s' % (100*d[1]/max(d[0],1), '%.1f' % (d[2]/d[3]) if d[3] else '-'))")"
}
$A/mcload -addr 127.0.0.1:$pa -conns 20 -depth 4 -keys 600000 -dist zipf -mix get=1 -duration 3s >/dev/null 2>&1 &
$A/mcload -addr 127.0.0.1:$pb -conns 20 -depth 4 -keys 600000 -dist zipf -mix get=1 -duration 3s >/dev/null 2>&1; wait
for r in $(seq $rounds); do
  echo "# round $r load $(cut -d' ' -f1 /proc/loadavg)"
  run "A$r closed" $pa "-depth 4" > $da.out & run "B$r closed" $pb "-depth 4"; wait; cat $da.out
  run "A$r rate${RATE:-5000}" $pa "-rate ${RATE:-5000}" > $da.out & run "B$r rate${RATE:-5000}" $pb "-rate ${RATE:-5000}"; wait; cat $da.out
done
