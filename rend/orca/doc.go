// Package orca is rend's orchestrator: one protocol.Handler that serves
// memcached commands from two layers, L1 (a stock memcached holding the hot
// set in RAM, values chunked by package chunk) and L2 (mnemonic, the system
// of record on SSD), following DESIGN §4.
//
// The three modes (l1only, l1l2 for the regular port, l1l2batch for the batch
// port) are one code path parameterised by a small policy table (policy.go).
// Every write has one shape: hold the key's stripe, take L1's copy out,
// apply the request to the record, reflect the record's answer into L1 per
// the policy. The record (record.go) is the layer that holds every item and
// decides every write: L2 in the two-layer modes (l2Client, l2.go), L1
// itself in l1only (l1Record, l1only.go: rend applies memcached's item
// semantics, package item, to the chunked L1 item and hands out versions),
// where taking out and reflecting do nothing.
//
// Summary of what each command does with L2 configured (l1only applies the
// same command to L1, the record, under the same locks):
//
//	set/add/replace/cas      take L1's copy out (not for add), L2; on success
//	                         put the value back into L1 with L2's version
//	                         (always on the regular port, only if L1 had the
//	                         key on the batch port), behind the reply with
//	                         the stripe held until L1 answered (putBackLater);
//	                         if that fails delete it
//	append/prepend/incr/decr take out, L2, read the result back from L2 and
//	                         put it back as above
//	delete, touch            take out, L2; nothing put back
//	gat/gats                 take out, L2 gat (the record); put back the
//	                         items (regular port) or the ones L1 had (batch)
//	get/gets/mg              one L1 multi-get; the misses in one L2 batch; the
//	                         regular port fills L1 with add, behind the reply,
//	                         all fills of a lookup in one L1 batch (pipelined
//	                         gets and plain mg: one lookup, HandleGets)
//	pipelined plain sets     one take-out batch, one L2 burst, one put-back
//	                         batch for the run (HandleSets, sets.go)
//	flush_all                L1, L2, L1 again
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
//     (a run of pipelined gets goes to HandleGets, a run of pipelined sets
//     to HandleSets, through conn.serveRun).
//     In bin/rend the handler is cmd/rend's observed, which counts the
//     request and passes it on.
//  2. orca: Orca.Handle (or Orca.HandleGets) dispatches on the command, to
//     get (read.go) or store (write.go). store holds the keys' stripe locks
//     for the whole write; get takes them (shared) only around its L2 part.
//  3. The layers. get: lookup asks L1 with l1.Client.Get (package
//     rend/l1), one pipelined multi-get of chunk headers and then of
//     chunks, over Config.L1, an mcclient.Client to memcached; the misses
//     go in one batch to L2 with l2Client.get (Config.L2, an
//     mcclient.Client to mnemonic), and fill copies L2's hits into L1 with
//     add (l1.Client.Store). set: store takes the key's L1 copy out
//     (takeOut: l1.Client.Delete), applies it to the record with
//     record.store (l2Client.store; in l1only l1Record.store, which is
//     l1.Client.Store), then puts the record's result back with putBack
//     (l1.Client.Store: chunks first, header last). In l1only a get ends at
//     L1 and take-out and put-back do nothing.
//
// In short:
//
//	client --> server.conn.serve --> Orca.Handle --+--> l1.Client --------------> mcclient --> memcached
//	                                               +--> record: l2Client -------> mcclient --> mnemonic
//	                                                    (l1only: l1Record --> l1.Client)
//
// Files: orca.go (Orca, Handle), config.go (Config, New), policy.go (the
// mode table), read.go (get, HandleGets, lookup, fill), fill.go (fills
// and put-backs behind the reply), write.go (the write handlers), sets.go (runs of
// pipelined sets), meta.go (reads only the record can answer), record.go (the record role), l2.go (the L2 client and
// record), l1only.go (the L1 record), cache.go (take out, put back,
// invalidate), pending.go, locks.go, stats.go, statsreply.go, metrics.go.
// The chunked L1 client and its pools are package rend/l1.
package orca
