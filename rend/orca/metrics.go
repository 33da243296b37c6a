package orca

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Instrument wraps be so that every call to it is counted and timed in c
// (the per-layer requests, key hits/misses and latency of /metrics). It
// records after the call returns, into counters resolved when c was made,
// so it adds no allocation and no lock to a backend call.
//
// The wrapped backend sees what memcached or mnemonic see, not what clients
// asked: on L1 a chunked hit is one header get plus one get of its chunks,
// and each of those is a request here (with keys counted per item). The
// requests of one pipelined Do are each timed from the start of the batch,
// since their replies arrive together.
func Instrument(be Backend, c *metrics.Commands) Backend {
	return &instrumented{be: be, cmds: c}
}

type instrumented struct {
	be   Backend
	cmds *metrics.Commands
}

func (b *instrumented) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	start := time.Now()
	err := b.be.Handle(ctx, req, resp)
	b.cmds.Request(req, resp, err, start)
	return err
}

func (b *instrumented) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	start := time.Now()
	err := b.be.Do(ctx, reqs, resps)
	for i, r := range reqs {
		b.cmds.Request(r, resps[i], err, start)
	}
	return err
}

func (b *instrumented) Healthy() bool { return b.be.Healthy() }

// Collector exports s (and the backlog of p, if not nil) to Prometheus,
// read at scrape time: the request path keeps its plain atomic adds. The
// names are ns_ plus:
//
//	layer_lookups_total{layer=l1|l2,result=hit|miss}  client keys looked up per layer
//	l1_fills_total{result=stored|lost|error}          L2 hits copied into L1
//	l2_fallbacks_total                                reads sent to L2 whole (L1 down)
//	batch_replaces_total{result=replaced|skipped}     batch-port L1 updates (hot/cold)
//	l1_inconsistencies_total{kind=...}                chunk_miss, chunk_token_mismatch,
//	                                                  torn_read, bad_header
//	backend_errors_total{layer=l1|l2}                 failed backend calls
//	l1_invalidations_total, l1_invalidation_errors_total, l1_pending_invalidations
func Collector(ns string, s *Stats, p *Pending) prometheus.Collector {
	snap := metrics.NewSnapshot(func() *Stats { return s })
	c := func(name, help string, labels prometheus.Labels, get func(*Stats) uint64) {
		snap.Counter(ns+"_"+name, help, labels, func(s *Stats) float64 { return float64(get(s)) })
	}
	l := func(kv ...string) prometheus.Labels {
		m := prometheus.Labels{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	const lookups = "Client keys looked up in each layer, by result (L2 sees only L1's misses)."
	c("layer_lookups_total", lookups, l("layer", "l1", "result", "hit"), func(s *Stats) uint64 { return s.L1Hits.Load() })
	c("layer_lookups_total", lookups, l("layer", "l1", "result", "miss"), func(s *Stats) uint64 { return s.L1Misses.Load() })
	c("layer_lookups_total", lookups, l("layer", "l2", "result", "hit"), func(s *Stats) uint64 { return s.L2Hits.Load() })
	c("layer_lookups_total", lookups, l("layer", "l2", "result", "miss"), func(s *Stats) uint64 { return s.L2Misses.Load() })
	const fills = "L2 hits copied into L1: stored, lost (a racing fill or write was there first) or error (L1 failed)."
	c("l1_fills_total", fills, l("result", "stored"), func(s *Stats) uint64 { return s.L1Fills.Load() })
	c("l1_fills_total", fills, l("result", "lost"), func(s *Stats) uint64 { return s.L1FillsLost.Load() })
	c("l1_fills_total", fills, l("result", "error"), func(s *Stats) uint64 { return s.L1FillErrors.Load() })
	c("l2_fallbacks_total", "Reads that went to L2 for every key because L1 was down or failed.", nil,
		func(s *Stats) uint64 { return s.L2Fallbacks.Load() })
	const repl = "Batch-port writes reflected into L1 by replace: replaced (key was hot) or skipped (cold, left out of L1)."
	c("batch_replaces_total", repl, l("result", "replaced"), func(s *Stats) uint64 { return s.BatchReplaces.Load() })
	c("batch_replaces_total", repl, l("result", "skipped"), func(s *Stats) uint64 { return s.BatchReplaceSkips.Load() })
	const inc = "Inconsistent L1 items detected and answered as misses or read again, by kind."
	c("l1_inconsistencies_total", inc, l("kind", "chunk_miss"), func(s *Stats) uint64 { return s.ChunkMisses.Load() })
	c("l1_inconsistencies_total", inc, l("kind", "chunk_token_mismatch"), func(s *Stats) uint64 { return s.ChunkTokenMismatches.Load() })
	c("l1_inconsistencies_total", inc, l("kind", "torn_read"), func(s *Stats) uint64 { return s.TornRetries.Load() })
	c("l1_inconsistencies_total", inc, l("kind", "bad_header"), func(s *Stats) uint64 { return s.BadHeaders.Load() })
	const berr = "Backend calls that failed (I/O, timeout, backend down, or a server error status)."
	c("backend_errors_total", berr, l("layer", "l1"), func(s *Stats) uint64 { return s.L1Errors.Load() })
	c("backend_errors_total", berr, l("layer", "l2"), func(s *Stats) uint64 { return s.L2Errors.Load() })
	c("l1_invalidations_total", "Keys deleted from L1 because updating them after an L2 write failed.", nil,
		func(s *Stats) uint64 { return s.L1Invalidations.Load() })
	c("l1_invalidation_errors_total", "L1 invalidations that failed too (the key is then never served from L1 until a background delete lands).", nil,
		func(s *Stats) uint64 { return s.L1InvalidationErrors.Load() })
	if p != nil {
		snap.Gauge(ns+"_l1_pending_invalidations", "Keys whose L1 copy awaits a background delete.", nil,
			func(*Stats) float64 { return float64(p.Len()) })
	}
	return snap
}
