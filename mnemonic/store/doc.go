// Package store is mnemonic's item store: memcached semantics on top of N
// independent RocksDB instances ("shards"), implementing protocol.Handler.
//
// A key lives in shard fnv1a64(key) % N. Every shard has its own memtables,
// WAL and compactions, so a compaction in one shard never blocks writes or
// flushes in another; background IO of all shards goes through one shared
// rate limiter and one shared block cache. The shard count is recorded in
// the data directory on first start, and a later start with a different count
// is refused (the keys would hash to other shards and vanish).
//
// # Record
//
// The RocksDB key is the memcached key, unchanged. The value is a record:
//
//	 0               8              16       20       24
//	+---------------+---------------+--------+--------+---------------
//	| cas (u64 LE)  | stamp (u64 LE)| flags  | expiry | data ...
//	+---------------+---------------+--------+--------+---------------
//
//	cas     the version a client sees (gets, mg c, binary CAS): unique per
//	        write unless the client chose it (meta E, Request.NewCAS).
//	stamp   the store's own write stamp, always drawn from the store's
//	        counter even when the client chose the CAS; flush_all compares
//	        stamps, never client-chosen CAS values.
//	flags   client flags (u32 LE).
//	expiry  absolute unix seconds (u32 LE), 0 for never.
//
// A record whose item has meta state (shared/item: stale, W token sent,
// fetched) sets the stamp's top bit and carries 8 more bytes before the
// data: the state bits, three zero bytes, and the last access in unix
// seconds (u32 LE). Stamps are nanoseconds, below 2^63 until 2262, so
// records written before the extension existed read as having no state;
// for them the last access is the write time (the stamp's second). A read
// that hands out a W writes its record back before replying; the first fetch
// and last-access moves a read makes are kept in memory and written in
// batches (access.go, stateflush.go): a clean Close writes them all, a
// crash may lose the last Options.StateFlushInterval of them.
//
// # Versions and stamps
//
// CAS values and stamps come from one counter: each value is
// max(previous + 1, now in unix nanoseconds), starting above the reservation
// persisted by the previous run, so they are unique and increase across
// restarts even when the clock steps back, and they follow wall time, so a
// delayed flush_all (a point in time) can be compared with a stamp.
//
// # Visibility
//
// An item is invisible as soon as it has expired or a flush_all has covered
// it; reads treat it as a miss at once. The bytes go later: a compaction
// filter drops such records whenever RocksDB rewrites them, and FIFO
// compaction deletes whole old files when the disk budget is reached.
//
// # Atomicity
//
// Every write takes a per-key stripe lock (hash of the key) around its
// read-compare-write, so add/cas/append/incr/touch on one key are atomic
// with respect to each other and to plain sets. Reads take no lock: a
// RocksDB Get sees either the old or the new record, never a mixture.
package store
