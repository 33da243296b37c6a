#!/usr/bin/env python3
"""budget2md.py NAME=DIR...: Markdown tables from budget.sh outputs.

Each NAME=DIR is one budget.sh run (e.g. before=/tmp/B1 after=/tmp/A1);
the tables put the runs side by side per scenario, target and process, with
each target's ops/s relative to memcached direct in the same run.
"""
import re, sys, collections

def parse(path):
    out = collections.OrderedDict()  # scen -> target -> {ops, gen, procs: {name: dict}}
    scen = tgt = None
    for line in open(path):
        line = line.rstrip("\n")
        m = re.match(r"## (\w+):", line)
        if m:
            scen = m.group(1); out[scen] = collections.OrderedDict(); continue
        m = re.match(r"### (\S+)", line)
        if m:
            tgt = m.group(1); out[scen][tgt] = {"procs": collections.OrderedDict()}; continue
        m = re.match(r"ops \d+ ops/s (\d+) .*mcload cpu ([\d.]+)us", line)
        if m:
            out[scen][tgt]["ops"] = float(m.group(1)); out[scen][tgt]["gen"] = float(m.group(2)); continue
        m = re.match(r"\s+(\S+?)\[\d+\]: (.*)", line)
        if m and scen and tgt:
            name = re.sub(r"^rend.*", "rend", m.group(1))
            d = {}
            for k, v in re.findall(r"([a-z_]+) ([\d.]+)(?:us)?", m.group(2)):
                d[k] = float(v)
            out[scen][tgt]["procs"][name] = d
    return out

runs = [(a.split("=", 1)[0], parse(a.split("=", 1)[1] + "/budget.txt")) for a in sys.argv[1:]]
titles = {"depth1": "Hot set, 50 conns, depth 1 (per request)", "depth16": "Hot set, 50 conns, depth 16 (per request)",
          "multiget": "100-key multi-get, 20 conns (per key)"}
for scen in runs[0][1]:
    print(f"#### {titles.get(scen, scen)}\n")
    print("| run | target | ops/s | vs memcached | process | CPU µs | syscalls | reads | writes | ctx switches | generator CPU µs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in runs:
        if scen not in r or "memcached" not in r[scen]:
            continue
        base = r[scen]["memcached"].get("ops", 0)
        for tgt, t in r[scen].items():
            first = True
            for p, d in t["procs"].items():
                if d.get("cpu", 0) == 0 and d.get("syscalls", 0) == 0:
                    continue
                w = d.get("write", 0) + d.get("sendmsg", 0)
                cols = [name if first else "", tgt if first else "",
                        f"{t.get('ops', 0):.0f}" if first else "",
                        f"{t.get('ops', 0) / base:.2f}x" if first and base else "",
                        p, f"{d.get('cpu', 0):.2f}", f"{d.get('syscalls', 0):.2f}", f"{d.get('read', 0):.2f}",
                        f"{w:.2f}", f"{d.get('cs', 0):.2f}", f"{t.get('gen', 0):.2f}" if first else ""]
                print("| " + " | ".join(cols) + " |")
                first = False
    print()

# The closed-loop estimate: on a box where the generator and the servers
# share the cores and nothing else runs, a closed loop's ratio of ops/s is
# about the inverse ratio of the CPU each request costs the whole system:
# (memcached + its generator) / (every process of the target + its
# generator), per request. Less noisy than the ops/s measured under load.
print("#### Closed-loop estimate (M + G) / (target's processes + G)\n")
print("| scenario | target | " + " | ".join(name for name, _ in runs) + " |")
print("| --- | --- |" + " --- |" * len(runs))
for scen in runs[0][1]:
    for tgt in runs[0][1][scen]:
        if tgt == "memcached":
            continue
        cols = []
        for name, r in runs:
            m, t = r.get(scen, {}).get("memcached"), r.get(scen, {}).get(tgt)
            if not m or not t:
                cols.append("")
                continue
            num = sum(d.get("cpu", 0) for d in m["procs"].values()) + m.get("gen", 0)
            den = sum(d.get("cpu", 0) for d in t["procs"].values()) + t.get("gen", 0)
            cols.append(f"{num / den:.2f}" if den else "")
        print(f"| {scen} | {tgt} | " + " | ".join(cols) + " |")
print()
