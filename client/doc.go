// Package client is a Go client for a moneta cluster (or any memcached
// cluster): replicated zones, ketama sharding, tunable write replication and
// zone fallback for reads, in the style of Netflix's EVCache.
//
// # Cluster model
//
//	            zone "a" (local)        zone "b"               zone "c"
//	key ──ketama──> a1 | a2        ──> b1 | b2           ──> c1 | c2
//
// Each zone holds a full copy of the keyspace, spread over its servers by
// ketama (package ketama: MD5, 160 points per server). A write goes to every
// zone (or to ReplicaWrites zones, the local one first) in parallel and
// returns once Policy is met (none, one, quorum, all-minus-one, all); the
// other zones finish in the background, each bounded by WriteTimeout. A read
// asks the local zone first and, on a miss or a failure, the next zones; a
// GetMulti asks the next zone only for the keys still missing.
//
// # Failures
//
// Every attempt is bounded by ReadTimeout or WriteTimeout (and the caller's
// context). A server that fails FailureThreshold times in a row, over at
// least FailureWindow, is marked down: it is skipped at once, as a failure,
// so reads fall back without waiting, and a background probe (a version
// command) retries it with back-off until it answers. When every server a
// request could use is marked down, they are tried anyway, since marks can be
// stale. Reads never return a transport error: a key no
// zone could serve is ErrCacheMiss. Writes report ErrUnavailable when fewer
// zones than the policy needs answered.
//
// # Concurrency
//
// A Client is safe for concurrent use. Each server has one pipelined
// connection pool (shared/mcclient). A single-zone read runs on the caller's
// goroutine; fan-outs (writes to several zones, GetMulti over several
// servers) use one goroutine per zone or server, because a write must be able
// to outlive the call that started it.
//
// # Ownership
//
// Calls do not keep the caller's Item or its Value after they return (a
// write that continues in the background works on a copy). Items returned by
// reads are new and belong to the caller.
package client
