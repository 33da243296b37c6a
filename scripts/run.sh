#!/usr/bin/env bash
# Starts the whole stack on loopback with embedded defaults (DESIGN §10):
#   memcached L1 on unix:./var/memcached.sock, mnemonic on unix:./var/mnemonic.sock
#   with data in ./var/mnemonic, rend on 127.0.0.1:11211 (regular) and :11212 (batch),
#   admin HTTP on 127.0.0.1:11299 (rend) and 127.0.0.1:11298 (mnemonic).
# Ctrl-C stops everything: rend first, then mnemonic (flushes RocksDB), then memcached.
set -euo pipefail
cd "$(dirname "$0")/.."
L1_MEMORY_MB=${L1_MEMORY_MB:-256}
mkdir -p var
pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping..."
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	echo "stopped."
	exit 0
}
trap stop INT TERM EXIT

wait_sock() { # path, name
	for _ in $(seq 1 100); do [ -S "$1" ] && return 0; sleep 0.1; done
	echo "$2 did not create $1" >&2
	exit 1
}

user=()
[ "$(id -u)" -eq 0 ] && user=(-u root)
rm -f var/memcached.sock
memcached "${user[@]}" -s var/memcached.sock -a 0700 -m "$L1_MEMORY_MB" &
pids+=($!)
wait_sock var/memcached.sock memcached

# mnemonic's default max_item_size (20 MiB) is rend's: every value rend accepts is stored.
bin/mnemonic -listen unix:./var/mnemonic.sock -data ./var/mnemonic -admin 127.0.0.1:11298 &
pids+=($!)
wait_sock var/mnemonic.sock mnemonic

bin/rend -listen 127.0.0.1:11211 -batch-listen 127.0.0.1:11212 \
	-l1 unix:./var/memcached.sock -l2 unix:./var/mnemonic.sock -admin 127.0.0.1:11299 &
pids+=($!)

cat <<MSG

moneta is running:
  clients   memcached protocol on 127.0.0.1:11211
            try: bin/mcload -addr 127.0.0.1:11211 -duration 5s -preload -verify
            or:  exec 3<>/dev/tcp/127.0.0.1/11211; printf 'set k 0 0 2\r\nhi\r\nget k\r\n' >&3; timeout 1 cat <&3
  batch     bulk loaders on       127.0.0.1:11212
  admin     http://127.0.0.1:11299/metrics  /healthz  /debug/pprof/   (mnemonic: 127.0.0.1:11298)
  data      ./var/  (L1 memcached ${L1_MEMORY_MB} MiB, L2 RocksDB in ./var/mnemonic)
Ctrl-C stops the stack.
MSG
# Exit (and stop the rest) as soon as any one of them dies.
wait -n "${pids[@]}"
echo "a process exited; stopping the stack" >&2
