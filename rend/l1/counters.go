package l1

import (
	"sync/atomic"

	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Counters are the L1 client's counters (atomics). orca.Stats embeds them,
// and its table (orca.Fields) nests CounterFields, so they appear in rend's
// stats and metrics under the names given there.
type Counters struct {
	// ChunkMisses counts chunked L1 items found with a header but a lost,
	// foreign or short chunk (answered as misses). TornRetries counts reads
	// that found the header replaced while assembling and read again.
	ChunkMisses, TornRetries atomic.Uint64
	// ChunkTokenMismatches counts chunks whose token was not their
	// header's (a foreign item under a chunk key); each also ends as a
	// torn retry or a chunk miss.
	ChunkTokenMismatches atomic.Uint64
	// BadHeaders counts L1 items under a client key that are not rend
	// headers (written by something else): misses.
	BadHeaders atomic.Uint64
	// L1Errors counts L1 calls that failed (I/O, timeout, backend down,
	// or a server error status).
	L1Errors atomic.Uint64
}

// CounterFields lists the counters: their stats lines, in rend's stats
// order, and their Prometheus series.
var CounterFields = metrics.Fields[*Counters]{
	{Stat: "chunk_misses", Metric: "l1_inconsistencies_total", Labels: prometheus.Labels{"kind": "chunk_miss"},
		Help: "Inconsistent L1 items detected and answered as misses or read again, by kind.",
		Read: func(c *Counters) metrics.Value { return metrics.Uint(c.ChunkMisses.Load()) }},
	{Stat: "chunk_token_mismatches", Metric: "l1_inconsistencies_total", Labels: prometheus.Labels{"kind": "chunk_token_mismatch"},
		Read: func(c *Counters) metrics.Value { return metrics.Uint(c.ChunkTokenMismatches.Load()) }},
	{Stat: "torn_read_retries", Metric: "l1_inconsistencies_total", Labels: prometheus.Labels{"kind": "torn_read"},
		Read: func(c *Counters) metrics.Value { return metrics.Uint(c.TornRetries.Load()) }},
	{Stat: "l1_bad_headers", Metric: "l1_inconsistencies_total", Labels: prometheus.Labels{"kind": "bad_header"},
		Read: func(c *Counters) metrics.Value { return metrics.Uint(c.BadHeaders.Load()) }},
	{Stat: "l1_errors", Metric: "backend_errors_total", Labels: prometheus.Labels{"layer": "l1"},
		Help: "Backend calls that failed (I/O, timeout, backend down, or a server error status).",
		Read: func(c *Counters) metrics.Value { return metrics.Uint(c.L1Errors.Load()) }},
}
