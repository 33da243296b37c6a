#!/usr/bin/env bash
# Runs every go test -fuzz target in the workspace for $FUZZTIME each.
# Minimisation of new inputs is capped by count: on large inputs its default
# (60 s) outlasts a short run, which then fails with "context deadline exceeded".
set -euo pipefail
FUZZTIME=${FUZZTIME:-3s}
cd "$(dirname "$0")/.."
status=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		echo "fuzz $target in ./$dir for $FUZZTIME"
		if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=100x "./$dir" >"/tmp/moneta-fuzz-$target.log" 2>&1; then
			tail -n 1 "/tmp/moneta-fuzz-$target.log"
		else
			cat "/tmp/moneta-fuzz-$target.log"
			status=1
		fi
	done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' shared rend mnemonic client bench 2>/dev/null | sort)
exit $status
