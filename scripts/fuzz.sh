#!/usr/bin/env bash
# Runs every go test -fuzz target in the workspace for $FUZZTIME each.
# Minimisation of new inputs is capped by count: on large inputs its default
# (60 s) outlasts a short run, which then fails with "context deadline exceeded".
# FUZZTARGETS (an extended regexp) runs only the targets whose names match;
# FUZZPARALLEL sets the fuzzing workers (default: GOMAXPROCS), e.g. 1 for a
# long run that leaves the other cores alone. Logs: /tmp/moneta-fuzz-<target>.log.
set -euo pipefail
FUZZTIME=${FUZZTIME:-3s}
FUZZTARGETS=${FUZZTARGETS:-.}
parallel=()
if [ -n "${FUZZPARALLEL:-}" ]; then
	parallel=(-parallel "$FUZZPARALLEL")
fi
cd "$(dirname "$0")/.."
status=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}' | grep -E "$FUZZTARGETS" || true); do
		echo "fuzz $target in ./$dir for $FUZZTIME"
		log="/tmp/moneta-fuzz-$target.log"
		ok=0
		for attempt in 1 2; do
			if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=100x "${parallel[@]}" "./$dir" >"$log" 2>&1; then
				ok=1
				break
			fi
			# The Go fuzzing engine sometimes reports its own deadline as a
			# failure when a worker is mid-input as time runs out; that run
			# found nothing, so try once more. A real finding says
			# "Failing input written" and fails at once.
			if grep -q "Failing input written" "$log" || ! grep -q "context deadline exceeded" "$log"; then
				break
			fi
			echo "fuzz $target: engine deadline flake, running again"
		done
		if [ $ok -eq 1 ]; then
			tail -n 1 "$log"
		else
			cat "$log"
			status=1
		fi
	done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' shared rend mnemonic client bench 2>/dev/null | sort)
exit $status
