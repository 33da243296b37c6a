#!/usr/bin/env bash
# l2stack.sh DIR BIN PORT [rend args]: the beyond-RAM/overwrite stack by hand: L1 memcached -m 64 -t 2
# (unix socket), mnemonic (admin PORT+3; MNARGS: extra mnemonic args), rend from BIN (regular PORT, admin PORT+1, batch port PORT+2).
# PIDs in DIR/pids; stop them by PID.
set -euo pipefail
dir=$1 bin=$2 port=$3; shift 3
mkdir -p "$dir"; : >"$dir/pids"
user=(); [ "$(id -u)" = 0 ] && user=(-u root)
memcached "${user[@]}" -s "$dir/l1.sock" -a 0700 -m 64 -t 2 -c 4096 >"$dir/memcached.log" 2>&1 &
echo $! >>"$dir/pids"
for _ in $(seq 100); do [ -S "$dir/l1.sock" ] && break; sleep 0.05; done
"$bin/mnemonic" -listen "unix:$dir/l2.sock" -data "$dir/data" -admin "127.0.0.1:$((port+3))" ${MNARGS:-} >"$dir/mnemonic.log" 2>&1 &
echo $! >>"$dir/pids"
for _ in $(seq 100); do [ -S "$dir/l2.sock" ] && break; sleep 0.05; done
"$bin/rend" -listen "127.0.0.1:$port" -l1 "unix:$dir/l1.sock" -l2 "unix:$dir/l2.sock" -batch-listen "127.0.0.1:$((port+2))" -admin "127.0.0.1:$((port+1))" "$@" >"$dir/rend.log" 2>&1 &
echo $! >>"$dir/pids"
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
