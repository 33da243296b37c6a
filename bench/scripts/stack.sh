#!/usr/bin/env bash
# stack.sh DIR MODE PORT [rend args...]: start memcached (L1, unix socket) and,
# for MODE l1l2, mnemonic, then bin/rend on 127.0.0.1:PORT with its admin
# (pprof) on PORT+1. MODE direct starts a plain memcached on PORT instead.
# Writes the PIDs to DIR/pids (rend last); stop them with `kill $(cat DIR/pids)`.
set -euo pipefail
dir=$1 mode=$2 port=$3
shift 3
bin=$(cd "$(dirname "$0")/../../bin" && pwd)
mkdir -p "$dir"
: >"$dir/pids"
user=(); [ "$(id -u)" = 0 ] && user=(-u root)
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }
wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return; sleep 0.05; done; echo "no $1" >&2; exit 1; }
if [ "$mode" = direct ]; then
	memcached "${user[@]}" -l 127.0.0.1 -p "$port" -U 0 -m 1024 -t 2 -c 4096 >"$dir/memcached.log" 2>&1 &
	echo $! >>"$dir/pids"
	wait_port "$port"
	exit 0
fi
memcached "${user[@]}" -s "$dir/l1.sock" -a 0700 -m 1024 -t 2 -c 4096 >"$dir/memcached.log" 2>&1 &
echo $! >>"$dir/pids"
wait_sock "$dir/l1.sock"
l2=()
if [ "$mode" = l1l2 ]; then
	"$bin/mnemonic" -listen "unix:$dir/l2.sock" -data "$dir/data" -admin "" -max-item-size 20971520 >"$dir/mnemonic.log" 2>&1 &
	echo $! >>"$dir/pids"
	wait_sock "$dir/l2.sock"
	l2=(-l2 "unix:$dir/l2.sock" -batch-listen "")
fi
"${REND:-$bin/rend}" -listen "127.0.0.1:$port" -l1 "unix:$dir/l1.sock" "${l2[@]}" -admin "127.0.0.1:$((port + 1))" "$@" >"$dir/rend.log" 2>&1 &
echo $! >>"$dir/pids"
wait_port "$port"
