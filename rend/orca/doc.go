// Package orca is rend's orchestrator: one protocol.Handler that serves
// memcached commands from two layers, L1 (a stock memcached holding the hot
// set in RAM, values chunked by package chunk) and L2 (mnemonic, the system
// of record on SSD), following DESIGN §4.
//
// The three modes (l1only, l1l2 for the regular port, l1l2batch for the batch
// port) are one code path parameterised by a small policy table (policy.go).
//
// Summary of what each command does with L2 configured (l1only runs the same
// command on L1 alone, under the same locks):
//
//	set/add/replace/cas      L2 first; on success write the value to L1 with
//	                         L2's version (set on the regular port, replace on
//	                         the batch port); if that fails delete from L1
//	append/prepend/incr/decr L2 first; on success read the result back from L2
//	                         and write it to L1 as above
//	delete                   L2, then L1 whatever L2 said
//	touch                    L2, then L1 (present keys only)
//	gat/gats                 L2 gat (the record), then touch L1; on the regular
//	                         port an L1 miss is filled with add
//	get/gets                 one L1 multi-get; the misses in one L2 batch; the
//	                         regular port fills L1 with add
//	flush_all                L2 then L1
//	stats/version/verbosity  answered by rend
//
// Expiry: rend turns every client exptime into an absolute unix time once
// (or -1 for "already expired") and sends that same number to both layers,
// so both expire an item in the same second and a fill copies the remaining
// lifetime exactly.
//
// # The path of a request, in three hops
//
// A get or a set goes from the listener to a backend through three named
// functions; every other step is a call inside one of them.
//
//  1. shared/server: conn.serve reads a burst of requests from the client
//     connection and, per request, conn.answer calls the handler's Handle
//     (a run of pipelined gets goes to HandleGets through conn.serveGets).
//     In bin/rend the handler is cmd/rend's observed, which counts the
//     request and passes it on.
//  2. orca: Orca.Handle (or Orca.HandleGets) dispatches on the command, to
//     get (read.go) or store (write.go). store holds the keys' stripe locks
//     for the whole write; get takes them (shared) only around its L2 part.
//  3. The layers. get: lookup asks L1 with l1.Client.Get (package
//     rend/l1), one pipelined multi-get of chunk headers and then of
//     chunks, over Config.L1, an mcclient.Client to memcached; the misses
//     go in one batch to L2 with Backend.Handle (Config.L2, an
//     mcclient.Client to mnemonic), and fill copies L2's hits into L1 with
//     add. set: store takes the key's L1 copy out (takeOut:
//     l1.Client.Delete), writes L2 with callL2, then puts L2's result back
//     with updateL1 (l1.Client.Store: chunks first, header last). In
//     l1only mode L1 is the record: store goes to l1onlyStore (l1only.go)
//     and a get ends at L1.
//
// In short:
//
//	client --> server.conn.serve --> Orca.Handle --+--> l1.Client ---------------> mcclient --> memcached
//	                                               +--> callL2 / l2.Handle ------> mcclient --> mnemonic
//
// Files: orca.go (Orca, Handle, L2 calls), config.go (Config, New),
// read.go, write.go, l1only.go, meta.go (the commands), fill.go,
// pending.go, locks.go, policy.go, stats.go, statsreply.go, metrics.go.
// The chunked L1 client and its pools are package rend/l1.
package orca
