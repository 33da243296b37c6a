#!/usr/bin/env bash
# Prints a Markdown table of the runs kept by run.sh: one row per output
# file, with the baseline (reads only) and bulk-overwrite read latencies
# (scheduled, microseconds), the overwrite rate achieved, and two figures
# that resist bursts of unrelated load on a shared machine: the median of
# the per-second p99s during the overwrite, and how many of its seconds had
# a p99 under 1 ms.
#
#   bench/overwrite/summary.sh bench/results/mnemonic-overwrite/*.txt
set -euo pipefail
echo "| run | load before | baseline p50 / p99 / p99.9 | overwrite p50 / p99 / p99.9 / max | median per-second p99 | seconds with p99 < 1 ms | overwrites/s |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for f in "$@"; do
	awk -v name="$(basename "$f" .txt)" '
	/load average:/ && !load { for (i = 1; i <= NF; i++) if ($i == "average:") load = $(i+1) }
	/^## bulk/ { bulk = 1 }
	bulk && /^ *[0-9]+ / { secs++; p[secs] = $4 + 0; if ($4 + 0 < 1000) fast++ }
	/^TOTAL/ {
		n++
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			v = kv[2]; gsub(/us/, "", v)
			if (kv[1] == "p50" && !p50[n]) p50[n] = v
			else if (kv[1] == "p99" && !p99[n]) p99[n] = v
			else if (kv[1] == "p99.9" && !p999[n]) p999[n] = v
			else if (kv[1] == "max") mx[n] = v
			else if (kv[1] == "writes") { w = $(i+1); gsub(/[(\/s,]/, "", w); wr[n] = w }
		}
	}
	END {
		for (i = 2; i <= secs; i++) { v = p[i]; for (j = i - 1; j >= 1 && p[j] > v; j--) p[j+1] = p[j]; p[j+1] = v }
		med = secs ? p[int((secs + 1) / 2)] : 0
		printf "| %s | %s | %s / %s / %s | %s / %s / %s / %s | %s | %d / %d | %s |\n", name, load,
			p50[1], p99[1], p999[1], p50[2], p99[2], p999[2], mx[2], med, fast, secs, wr[2]
	}' "$f"
done
