#!/usr/bin/env python3
# histdelta.py BEFORE AFTER: two /metrics scrapes (rend or mnemonic); per (layer, command) the request_seconds
# histogram's delta: count and p50/p90/p99/p99.9 as bucket upper bounds in µs (buckets double from 10 µs).
import sys, re, collections
def load(fn):
    h = collections.defaultdict(dict)
    for line in open(fn):
        if not line.startswith(("rend_request_seconds_bucket", "mnemonic_request_seconds_bucket")): continue
        m = re.match(r'(\w+)_request_seconds_bucket\{(.*)\} (\S+)', line)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        key = (m.group(1), labels.get("layer", ""), labels["command"])
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        h[key][le] = float(m.group(3))
    return h
a, b = load(sys.argv[1]), load(sys.argv[2])
for key in sorted(b):
    les = sorted(b[key])
    cum = [b[key][le] - a.get(key, {}).get(le, 0) for le in les]
    n = cum[-1]
    if n < 10: continue
    def q(p):
        for le, c in zip(les, cum):
            if c >= p * n: return le * 1e6
    print(f"{key[0]:9s} {key[1]:7s} {key[2]:6s} n={n:8.0f} p50<={q(.5):9.0f}us p90<={q(.9):9.0f}us p99<={q(.99):9.0f}us p99.9<={q(.999):9.0f}us")
