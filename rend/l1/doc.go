// Package l1 is rend's client for L1, a stock memcached that holds the hot
// set: it stores each client item as a header item under the client's key
// plus, for values larger than one chunk, chunk items (formats in package
// chunk), and reads them back verified, over a pipelined Backend
// (mcclient.Client). Package orca is its only user; orca decides when L1 is
// read, written or bypassed.
//
// Contract:
//
//   - A miss is any key that cannot be served whole and correct: absent,
//     not a rend header (BadHeaders), a chunk lost, short or of another
//     item (ChunkMisses, ChunkTokenMismatches). A miss is not an error; an
//     error means L1 failed (I/O, timeout, an unexpected status) and says
//     nothing about the key.
//   - Bytes passed in (keys, Item.Value) are not retained after the call.
//   - Get appends hits to the caller's response: their values live in that
//     response's arena (or a fresh slice for values of several chunks) and
//     stay valid until the caller resets or pools that response. Headers
//     returns headers whose Header.Inline aliases the response it returns,
//     valid until that response goes back with Pool.PutResp.
//   - Every method costs a fixed number of pipelined round trips whatever
//     the number of keys or chunks; ordering between writers of one key is
//     the caller's job (orca's stripe locks).
//
// Counters are atomics the caller owns (orca embeds them in its Stats);
// Pool is shared with the caller so its L2 calls reuse the same buffers.
package l1
