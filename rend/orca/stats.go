package orca

import (
	"sync/atomic"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Stats are rend's orchestration counters, shared by the orchestrators of
// one process. All fields are atomics, readable at any time by the stats
// command (AppendStats) and the Prometheus collector (Collector), which
// both come from the Fields table.
type Stats struct {
	CmdGet, CmdSet, CmdTouch, CmdDelete, CmdIncr, CmdFlush atomic.Uint64

	// GetHits/GetMisses count keys of the get family as the client saw them.
	GetHits, GetMisses atomic.Uint64
	// L1Hits/L1Misses and L2Hits/L2Misses count keys looked up per layer.
	L1Hits, L1Misses, L2Hits, L2Misses atomic.Uint64
	// L1Fills counts L2 hits copied into L1; L1FillsLost the fills that
	// found the key already there (a racing fill or write won);
	// L1FillErrors the fills L1 failed (the rest of that read's fills are
	// skipped; the next read tries again).
	L1Fills, L1FillsLost, L1FillErrors atomic.Uint64
	// L1FillBatches counts the L1 writes of fills run behind their
	// replies: each carries every fill queued meanwhile (fill.go), so
	// fills (behind replies) per batch is how many misses share one write.
	L1FillBatches atomic.Uint64
	// L1PutBackBatches counts the L1 writes of write put-backs run behind
	// their replies (fill.go putBackLater), each carrying every put-back
	// queued meanwhile.
	L1PutBackBatches atomic.Uint64
	// L2Fallbacks counts reads that went to L2 for every key because L1
	// was down or failed the lookup.
	L2Fallbacks atomic.Uint64
	// ReadLockWaits counts reads that missed L1 and found a key stripe
	// held by a write (the same key, or another one hashing to the
	// stripe), so their L2 read waited for that write to finish.
	ReadLockWaits atomic.Uint64
	// BatchReplaces counts batch-port writes that refreshed a key already
	// in L1; BatchReplaceSkips those that left a cold key out of L1.
	BatchReplaces, BatchReplaceSkips atomic.Uint64
	// The L1 client's counters (ChunkMisses, TornRetries,
	// ChunkTokenMismatches, BadHeaders, L1Errors): see package l1.
	l1.Counters
	// L2Errors counts L2 calls that failed (I/O, timeout, backend down,
	// or a server error status).
	L2Errors atomic.Uint64
	// L1Invalidations counts keys deleted from L1 because updating them
	// after an L2 write failed; L1InvalidationErrors the deletes that failed
	// too (L1 may then serve the previous value until it expires, is
	// evicted, or is overwritten).
	L1Invalidations, L1InvalidationErrors atomic.Uint64

	// Detail is memcached's detail_enabled setting ("stats detail
	// on|off"), shown by "stats settings". Not a counter.
	Detail atomic.Bool
}

// Fields lists the counters: their stats lines (memcached's names where
// memcached has one), in the order rend's stats shows them, and their
// Prometheus series (ns_ plus):
//
//	layer_lookups_total{layer=l1|l2,result=hit|miss}  client keys looked up per layer
//	l1_fills_total{result=stored|lost|error}          L2 hits copied into L1
//	l2_fallbacks_total                                reads sent to L2 whole (L1 down)
//	batch_replaces_total{result=replaced|skipped}     batch-port L1 updates (hot/cold)
//	l1_inconsistencies_total{kind=...}                chunk_miss, chunk_token_mismatch,
//	                                                  torn_read, bad_header
//	backend_errors_total{layer=l1|l2}                 failed backend calls
//	l1_invalidations_total, l1_invalidation_errors_total
var Fields = append(append(metrics.Fields[*Stats]{
	{Stat: "cmd_get", Read: func(s *Stats) metrics.Value { return metrics.Uint(s.CmdGet.Load()) }},
	{Stat: "cmd_set", Read: func(s *Stats) metrics.Value { return metrics.Uint(s.CmdSet.Load()) }},
	{Stat: "cmd_touch", Read: func(s *Stats) metrics.Value { return metrics.Uint(s.CmdTouch.Load()) }},
	{Stat: "cmd_flush", Read: func(s *Stats) metrics.Value { return metrics.Uint(s.CmdFlush.Load()) }},
	{Stat: "get_hits", Read: func(s *Stats) metrics.Value { return metrics.Uint(s.GetHits.Load()) }},
	{Stat: "get_misses", Read: func(s *Stats) metrics.Value { return metrics.Uint(s.GetMisses.Load()) }},
	{Stat: "delete_cmds", Read: func(s *Stats) metrics.Value { return metrics.Uint(s.CmdDelete.Load()) }},
	{Stat: "incr_decr_cmds", Read: func(s *Stats) metrics.Value { return metrics.Uint(s.CmdIncr.Load()) }},
	{Stat: "l1_hits", Metric: "layer_lookups_total", Labels: prometheus.Labels{"layer": "l1", "result": "hit"},
		Help: "Client keys looked up in each layer, by result (L2 sees only L1's misses).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1Hits.Load()) }},
	{Stat: "l1_misses", Metric: "layer_lookups_total", Labels: prometheus.Labels{"layer": "l1", "result": "miss"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1Misses.Load()) }},
	{Stat: "l2_hits", Metric: "layer_lookups_total", Labels: prometheus.Labels{"layer": "l2", "result": "hit"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L2Hits.Load()) }},
	{Stat: "l2_misses", Metric: "layer_lookups_total", Labels: prometheus.Labels{"layer": "l2", "result": "miss"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L2Misses.Load()) }},
	{Stat: "l1_fills", Metric: "l1_fills_total", Labels: prometheus.Labels{"result": "stored"},
		Help: "L2 hits copied into L1: stored, lost (a racing fill or write was there first) or error (L1 failed).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1Fills.Load()) }},
	{Stat: "l1_fills_lost", Metric: "l1_fills_total", Labels: prometheus.Labels{"result": "lost"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1FillsLost.Load()) }},
	{Stat: "l1_fill_errors", Metric: "l1_fills_total", Labels: prometheus.Labels{"result": "error"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1FillErrors.Load()) }},
	{Stat: "l1_fill_batches", Metric: "l1_fill_batches_total", Help: "L1 writes that carried the fills queued behind replies.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1FillBatches.Load()) }},
	{Stat: "l1_put_back_batches", Metric: "l1_put_back_batches_total", Help: "L1 writes that carried the write put-backs queued behind replies.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1PutBackBatches.Load()) }},
	{Stat: "l2_fallbacks", Metric: "l2_fallbacks_total", Help: "Reads that went to L2 for every key because L1 was down or failed.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L2Fallbacks.Load()) }},
	{Stat: "read_lock_waits", Metric: "read_lock_waits_total", Help: "Reads that missed L1 and waited for a write holding their key's lock stripe.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.ReadLockWaits.Load()) }},
	{Stat: "batch_replaces", Metric: "batch_replaces_total", Labels: prometheus.Labels{"result": "replaced"},
		Help: "Batch-port writes reflected into L1 by replace: replaced (key was hot) or skipped (cold, left out of L1).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.BatchReplaces.Load()) }},
	{Stat: "batch_replace_skips", Metric: "batch_replaces_total", Labels: prometheus.Labels{"result": "skipped"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.BatchReplaceSkips.Load()) }},
}, metrics.Nest(l1.CounterFields, func(s *Stats) *l1.Counters { return &s.Counters })...), metrics.Fields[*Stats]{
	// Help comes from l1_errors' row (same metric, layer l1).
	{Stat: "l2_errors", Metric: "backend_errors_total", Labels: prometheus.Labels{"layer": "l2"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L2Errors.Load()) }},
	{Stat: "l1_invalidations", Metric: "l1_invalidations_total", Help: "Keys deleted from L1 because updating them after an L2 write failed.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1Invalidations.Load()) }},
	{Stat: "l1_invalidation_errors", Metric: "l1_invalidation_errors_total",
		Help: "L1 invalidations that failed too (the key is then never served from L1 until a background delete lands).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.L1InvalidationErrors.Load()) }},
}...)

// AppendStats appends the counters as stats lines (Fields).
func (s *Stats) AppendStats(dst []protocol.Stat) []protocol.Stat {
	return Fields.AppendStats(dst, "", s)
}

// replaced counts one batch-port L1 update (a replace): stored means the
// key was hot and got the new value.
func (s *Stats) replaced(stored bool) {
	if stored {
		s.BatchReplaces.Add(1)
	} else {
		s.BatchReplaceSkips.Add(1)
	}
}
