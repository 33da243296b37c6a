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
