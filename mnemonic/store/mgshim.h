// mgshim: point and batched lookups in one cgo call each, values copied
// into a buffer the caller owns (see multiget.go).
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

#ifdef __cplusplus
}
#endif

#endif
