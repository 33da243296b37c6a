# procs.sh, sourced by ab.sh and modes.sh: a work directory and the PIDs of
# everything the script starts, all stopped (and the directory removed) when
# it exits; mnemonic writes its data directory while it shuts down, so each
# process is waited for before the removal. Sets here, root, work, pids,
# user (memcached's -u when run as root) and base (a random port base).
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
pids=()
stop() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done; done
	rm -rf "$work"
}
trap stop EXIT
user=(); [ "$(id -u)" = 0 ] && user=(-u root)
base=$((20000 + RANDOM % 20000))
