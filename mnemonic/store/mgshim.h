// mgshim: point and batched lookups in one cgo call each, values copied
// into a buffer the caller owns (see multiget.go); a batch of writes in one
// cgo call (see writebatch.go).
#ifndef MNEMONIC_MGSHIM_H
#define MNEMONIC_MGSHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Per-key results.
enum { MN_MISS = 0, MN_FOUND = 1, MN_ERROR = 2 };

// mn_multi_get looks up n keys (concatenated in keys, lengths in klens) in
// the rocksdb_t db with RocksDB's batched MultiGet (n == 1: Get). For each
// key st[i] is MN_MISS, MN_FOUND or MN_ERROR and vlens[i] the value's length.
// It returns the total length of the values found. If that fits in outcap,
// the values are copied into out back to back, in key order, and *pending is
// NULL; otherwise nothing is copied: *pending holds the values, vptrs[i]
// points at value i (found keys only) until the caller frees them with
// mn_release. err receives the message of the first MN_ERROR
// (NUL-terminated, truncated to errcap).
size_t mn_multi_get(void* db, size_t n, const char* keys, const size_t* klens,
                    char* out, size_t outcap, size_t* vlens, unsigned char* st,
                    void** pending, const char** vptrs, char* err, size_t errcap);

// mn_release frees the values held by pending.
void mn_release(void* pending);

// Write operations of mn_write.
enum { MN_PUT = 0, MN_DELETE = 1 };

// mn_write commits n operations to the rocksdb_t db as one WriteBatch with
// the WAL on and fsync if sync: ops[i] is MN_PUT or MN_DELETE of key i
// (concatenated in keys, lengths in klens); a put's value is its header
// (concatenated in hdrs, lengths in hlens) followed by vals[i] (vlens[i]
// bytes), copied once, into the batch. It returns 0, or 1 with err holding
// RocksDB's message (NUL-terminated, truncated to errcap).
int mn_write(void* db, int sync, size_t n, const unsigned char* ops, const char* keys,
             const size_t* klens, const char* hdrs, const size_t* hlens, const char* const* vals,
             const size_t* vlens, char* err, size_t errcap);

#ifdef __cplusplus
}
#endif

#endif
