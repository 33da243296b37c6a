#!/usr/bin/env bash
# Installs the Debian packages moneta builds and tests against, only when missing.
set -euo pipefail
need=()
command -v memcached >/dev/null 2>&1 || need+=(memcached)
# mnemonic's read path has a C++ file (mnemonic/store/mgshim.cc).
command -v g++ >/dev/null 2>&1 || need+=(g++)
dpkg -s librocksdb-dev >/dev/null 2>&1 || need+=(librocksdb-dev)
command -v memcstat >/dev/null 2>&1 || need+=(libmemcached-tools)
# twemproxy, for the fleet test (deploy/fleet) and deploy/nutcracker.yml.
command -v nutcracker >/dev/null 2>&1 || need+=(nutcracker)
if ((${#need[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
		exit 1
	fi
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${need[@]}"
	# The Debian package starts a system memcached on 11211; moneta's rend wants that port.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet memcached 2>/dev/null; then
		systemctl disable --now memcached || true
	fi
	# Likewise the package's own nutcracker on 22121: ours is configured from deploy/nutcracker.yml.
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nutcracker 2>/dev/null; then
		systemctl disable --now nutcracker || true
	fi
fi
if ! command -v go >/dev/null 2>&1; then
	echo "deps: Go is not installed (expected at /usr/local/go/bin/go)" >&2
	exit 1
fi
