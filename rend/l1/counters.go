package l1

import "sync/atomic"

// Counters are the L1 client's counters (atomics). orca.Stats embeds them,
// so they appear in rend's stats and metrics under their own names.
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
