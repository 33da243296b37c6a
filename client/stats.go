package client

import "sync/atomic"

// clientStats are the Client's counters; see Stats.
type clientStats struct {
	gets, hits, misses, fallbackHits, readFailures atomic.Uint64
	writes, writeFailures, bgWriteFailures         atomic.Uint64
	fills                                          atomic.Uint64
}

// Stats is a snapshot of a Client's counters since New.
type Stats struct {
	// Gets counts keys asked for (a GetMulti of n keys counts n).
	Gets uint64
	// Hits and Misses split Gets; FallbackHits are the hits served by a zone
	// other than the first one asked.
	Hits, Misses, FallbackHits uint64
	// ReadFailures counts read attempts on one server that failed (timeout,
	// connection error, server marked down); each may have fallen back.
	ReadFailures uint64
	// Writes counts write calls; WriteFailures those that returned
	// ErrUnavailable; BackgroundWriteFailures the writes to single zones
	// that failed after their call had returned.
	Writes, WriteFailures, BackgroundWriteFailures uint64
	// Fills counts copies written back to zones that missed a key another
	// zone had (FillOnFallback).
	Fills uint64
	// Servers has one entry per server, zone by zone.
	Servers []ServerStats
}

// ServerStats describes one server.
type ServerStats struct {
	Zone, Addr string
	// Down is true while the server is marked down and being probed.
	Down bool
	// Requests counts requests sent for calls (a pipelined batch counts
	// once; the probes of a down server are not counted);
	// Failures the ones that failed; Skipped the ones not sent because the
	// server was down; DownMarks how often it was marked down.
	Requests, Failures, Skipped, DownMarks uint64
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	s := Stats{
		Gets: c.stats.gets.Load(), Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(),
		FallbackHits: c.stats.fallbackHits.Load(), ReadFailures: c.stats.readFailures.Load(),
		Writes: c.stats.writes.Load(), WriteFailures: c.stats.writeFailures.Load(),
		BackgroundWriteFailures: c.stats.bgWriteFailures.Load(), Fills: c.stats.fills.Load(),
	}
	for _, z := range c.topo.Load().zones {
		for _, n := range z.nodes {
			s.Servers = append(s.Servers, ServerStats{
				Zone: z.name, Addr: n.addr, Down: n.isDown(),
				Requests: n.requests.Load(), Failures: n.failures.Load(),
				Skipped: n.skipped.Load(), DownMarks: n.downMarks.Load(),
			})
		}
	}
	return s
}
