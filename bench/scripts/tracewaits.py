#!/usr/bin/env python3
"""tracewaits.py PARSED: where rend's goroutines wait, from a runtime trace.

PARSED is `go tool trace -d=parsed TRACE` of a trace taken from rend's admin
port (`curl -o TRACE 'http://ADMIN/debug/pprof/trace?seconds=2'`) under load.
Prints, for hotpath.md's sixth round: how long goroutines waited, by where
they blocked and who woke them (sched = the scheduler's own netpoll,
sysmon = sysmon's forced netpoll); how long they then waited for the P; the
event loop's batches (spawn -> done, L1 round trip included); and the
lengths of the P's busy periods (the scheduler polls the network only when
its run queue is empty, so an L1 reply can wait up to one busy period).
"""
import collections
import re
import sys

pat = re.compile(r'^M=(-?\d+) P=(-?\d+) G=(-?\d+) (\w+) Time=(\d+)(.*)$')
st = re.compile(r'GoID=(\d+) (\w+)->(\w+) Reason="([^"]*)"')
ev, cur, mode = [], None, None
for line in open(sys.argv[1]):
    if line.startswith('M='):
        cur, mode = None, None
        m = pat.match(line)
        if not m or m.group(4) != 'StateTransition':
            continue
        s = st.search(m.group(6))
        if s:
            cur = dict(P=int(m.group(2)), G=int(m.group(3)), t=int(m.group(5)), go=int(s.group(1)),
                       fr=s.group(2), to=s.group(3), why=s.group(4), ts=[], st=[])
            ev.append(cur)
        continue
    if cur is None:
        continue
    if line.startswith('TransitionStack='):
        mode = 'ts'
    elif line.startswith('Stack='):
        mode = 'st'
    elif line.startswith('\t') and not line.startswith('\t\t') and mode:
        f = line.strip().split(' @')[0]
        if 'moneta' in f or not cur[mode]:
            cur[mode].append(f.split('moneta/')[-1])
ev.sort(key=lambda e: e['t'])


def q(a, p):
    a = sorted(a)
    return a[min(len(a) - 1, int(len(a) * p))]


def row(v):
    return "%6d  p50 %8.1f  p90 %8.1f  p99 %8.1f  max %8.1f us" % (
        len(v), q(v, .5) / 1e3, q(v, .9) / 1e3, q(v, .99) / 1e3, max(v) / 1e3)


def frame(stack):
    return stack[1] if len(stack) > 1 else (stack[0] if stack else '?')


blocked, rq, spawned = {}, {}, {}
waits, lat, batches = collections.defaultdict(list), collections.defaultdict(list), []
for e in ev:
    g = e['go']
    if e['to'] == 'Waiting':
        blocked[g] = (e['why'] + ':' + frame(e['ts']), e['t'])
        if g in spawned and 'workers' in frame(e['ts']):
            batches.append(e['t'] - spawned.pop(g))
    elif e['fr'] == 'Waiting' and e['to'] == 'Runnable' and g in blocked:
        k, tw = blocked.pop(g)
        waker = 'sysmon' if e['P'] == -1 else ('sched' if e['G'] == -1 else 'G:' + frame(e['st']))
        waits[(k, waker)].append(e['t'] - tw)
        rq[g] = (e['t'], k)
        if any('spawn' in f for f in e['st']):
            spawned[g] = e['t']
    elif e['fr'] == 'Running' and e['to'] == 'Runnable':
        rq[g] = (e['t'], 'yield:' + e['why'])
    elif e['fr'] == 'Runnable' and e['to'] == 'Running' and g in rq:
        tr, k = rq.pop(g)
        lat[k].append(e['t'] - tr)
print("blocked (where, woken by):")
for k, v in sorted(waits.items(), key=lambda kv: -len(kv[1]))[:10]:
    print(" ", row(v), k)
print("runnable -> running (waiting for the P):")
for k, v in sorted(lat.items(), key=lambda kv: -len(kv[1]))[:6]:
    print(" ", row(v), k)
if batches:
    print("loop batches, spawn -> done:\n ", row(batches))
n, start, periods = 0, None, []
for e in ev:
    was = n
    n += (e['to'] == 'Running') - (e['fr'] == 'Running')
    n = max(n, 0)
    if was == 0 and n > 0:
        start = e['t']
    elif was > 0 and n == 0 and start is not None:
        periods.append(e['t'] - start)
span = ev[-1]['t'] - ev[0]['t']
print("P busy %.0f%% of %.2f s; busy periods:\n  %s" % (100 * sum(periods) / span, span / 1e9, row(periods)))
for x in (100, 300, 1000):
    print("  share of busy time in periods > %d us: %.0f%%" % (x, 100 * sum(p for p in periods if p > x * 1e3) / sum(periods)))
