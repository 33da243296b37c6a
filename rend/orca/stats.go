package orca

import (
	"strconv"
	"sync/atomic"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Stats are rend's orchestration counters, shared by the orchestrators of
// one process. All fields are atomics, readable at any time by the stats
// command (AppendStats) and the Prometheus collector (Collector).
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
	// L2Fallbacks counts reads that went to L2 for every key because L1
	// was down or failed the lookup.
	L2Fallbacks atomic.Uint64
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

// AppendStats appends the counters as stats lines (memcached's names where
// memcached has one).
func (s *Stats) AppendStats(dst []protocol.Stat) []protocol.Stat {
	u := func(name string, v *atomic.Uint64) {
		dst = append(dst, protocol.Stat{Name: name, Value: strconv.FormatUint(v.Load(), 10)})
	}
	u("cmd_get", &s.CmdGet)
	u("cmd_set", &s.CmdSet)
	u("cmd_touch", &s.CmdTouch)
	u("cmd_flush", &s.CmdFlush)
	u("get_hits", &s.GetHits)
	u("get_misses", &s.GetMisses)
	u("delete_cmds", &s.CmdDelete)
	u("incr_decr_cmds", &s.CmdIncr)
	u("l1_hits", &s.L1Hits)
	u("l1_misses", &s.L1Misses)
	u("l2_hits", &s.L2Hits)
	u("l2_misses", &s.L2Misses)
	u("l1_fills", &s.L1Fills)
	u("l1_fills_lost", &s.L1FillsLost)
	u("l1_fill_errors", &s.L1FillErrors)
	u("l2_fallbacks", &s.L2Fallbacks)
	u("batch_replaces", &s.BatchReplaces)
	u("batch_replace_skips", &s.BatchReplaceSkips)
	u("chunk_misses", &s.ChunkMisses)
	u("chunk_token_mismatches", &s.ChunkTokenMismatches)
	u("torn_read_retries", &s.TornRetries)
	u("l1_bad_headers", &s.BadHeaders)
	u("l1_errors", &s.L1Errors)
	u("l2_errors", &s.L2Errors)
	u("l1_invalidations", &s.L1Invalidations)
	u("l1_invalidation_errors", &s.L1InvalidationErrors)
	return dst
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
