package store

/*
#cgo CXXFLAGS: -std=c++17 -O2
#cgo LDFLAGS: -lrocksdb -lstdc++
#include "mgshim.h"
*/
import "C"

import (
	"context"
	"errors"
	"math/bits"
	"sync"
	"time"
	"unsafe"

	"github.com/linxGnu/grocksdb"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Reads through mgshim (mgshim.cc) instead of grocksdb's Get and MultiGet.
//
// Why: grocksdb's Get is two cgo calls per key (rocksdb_get, then
// rocksdb_free of the malloc'ed copy) and a *Slice allocated per call; its
// MultiGet uses the C API's unbatched rocksdb_multi_get, mallocs a C copy of
// every key and allocates four Go slices per call. The shim makes one cgo
// call per shard of a request: RocksDB's batched MultiGet (Get for a single
// key) with the values copied straight into a pooled Go buffer. The numbers
// that justified it are in bench/results/l2path.md.

// mgScratch holds the buffers of one get request, pooled.
type mgScratch struct {
	shardOf []int32 // each key's shard
	idx     []int32 // keys of the shard being looked up, in request order
	kbuf    []byte  // their bytes, back to back
	klens   []C.size_t
	vlens   []C.size_t
	st      []C.uchar
	// outs[shard] holds the values found in that shard, back to back;
	// off[i] and vlen[i] locate key i's value in its shard's buffer.
	outs [][]byte
	off  []int
	vlen []int
	res  []uint8 // MN_MISS, MN_FOUND or MN_ERROR per key
	err  [256]C.char
	// pending receives mn_multi_get's handle; a field rather than a local,
	// whose address passed to C would move it to the heap on every call.
	pending unsafe.Pointer
	// held are the handles of values too large for a shard's buffer, read
	// in place (vptr[i] != nil, C memory) until release; vptrs receives
	// them per call.
	held  []unsafe.Pointer
	vptr  []unsafe.Pointer
	vptrs []unsafe.Pointer
	// keys and skip serve HandleGets: the keys of all its requests (they
	// alias the requests: cleared before the scratch is pooled), and which
	// requests were answered without a lookup.
	keys [][]byte
	skip []bool
	// gens[i] is key i's stripe write generation (Store.wgen) before the
	// lookup.
	gens []uint64
}

// value returns key i's record: in its shard's buffer, or in RocksDB's
// memory (held) when it did not fit.
func (sc *mgScratch) value(i int) []byte {
	if p := sc.vptr[i]; p != nil {
		return unsafe.Slice((*byte)(p), sc.vlen[i])
	}
	return sc.outs[sc.shardOf[i]][sc.off[i] : sc.off[i]+sc.vlen[i]]
}

// release frees the values read in place.
func (sc *mgScratch) release() {
	for _, p := range sc.held {
		C.mn_release(p)
	}
	clear(sc.held)
	sc.held = sc.held[:0]
}

var mgPool = sync.Pool{New: func() any { return new(mgScratch) }}

// maxPooledOut bounds the value buffer a pooled scratch keeps per shard, so a
// get of a 20 MiB value does not pin 20 MiB in the pool.
const maxPooledOut = 1 << 20

// rawDB returns the rocksdb_t* of a grocksdb DB: the struct's first field
// (grocksdb v1.7.14, pinned in go.mod). TestShimMatchesGrocksdb checks that
// lookups through it agree with grocksdb's own Get.
func rawDB(db *grocksdb.DB) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(db)) }

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/2)
	}
	return s[:n]
}

// prefetch looks up keys with one mgShard call per shard. The caller
// releases sc with putScratch once it no longer uses the items.
func (s *Store) prefetch(keys [][]byte) (*mgScratch, error) {
	sc := mgPool.Get().(*mgScratch)
	return sc, s.lookupMany(keys, sc)
}

// prefetched returns key i of a prefetch as lookup would: a visible item
// (its data aliasing sc; release is a no-op) or a miss, expired and flushed
// records counted.
func (s *Store) prefetched(sc *mgScratch, i, keyLen int, now time.Time) (item, bool) {
	if sc.res[i] != C.MN_FOUND {
		return item{}, false
	}
	h, data, ok := s.visible(sc.value(i), keyLen, now)
	if !ok {
		return item{}, false
	}
	return item{h: h, data: data}, true
}

// lookupOne is lookup through the shim (one cgo call, no allocation, where
// grocksdb's Get makes two and allocates): the re-read of a key under its
// stripe before a read's state write (readPrefetched). The item aliases
// sc, which the caller puts back (putScratch) once done with the item,
// also on an error.
func (s *Store) lookupOne(key []byte, now time.Time) (*mgScratch, item, bool, error) {
	sc := mgPool.Get().(*mgScratch)
	sc.keys = append(sc.keys[:0], key)
	if err := s.lookupMany(sc.keys, sc); err != nil {
		return sc, item{}, false, err
	}
	it, ok := s.prefetched(sc, 0, len(key), now)
	return sc, it, ok, nil
}

func (s *Store) putScratch(sc *mgScratch) {
	// What RocksDB holds for us goes once the hits are appended
	// (AppendHit copies each value).
	sc.release()
	clear(sc.keys)
	sc.keys = sc.keys[:0]
	for i, o := range sc.outs {
		if cap(o) > maxPooledOut {
			sc.outs[i] = nil
		}
	}
	mgPool.Put(sc)
}

// HandleGets answers gets a client pipelined (server.GetBatcher; mg lines
// too, server.RunBatcher) with one lookup of all their keys: one cgo call
// per shard for the whole run. rend sends the L2 misses of its clients as
// a pipeline of one-key mg requests on a few backend connections, so a run
// of them costs a MultiGet per shard instead of a Get per key. Each
// request is then answered from the lookup as read answers it alone
// (writes a read implies, such as mg's W token, still take the key's lock
// and read again).
func (s *Store) HandleGets(_ context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	s.life.RLock()
	defer s.life.RUnlock()
	now := time.Now()
	sc := mgPool.Get().(*mgScratch)
	defer s.putScratch(sc)
	sc.skip = grow(sc.skip, len(reqs))
	all := sc.keys[:0]
	for i, req := range reqs {
		sc.skip[i] = true
		switch {
		case s.closed:
			resps[i].ServerError("shutting down")
			errs[i] = errClosed
		case validKeys(req, resps[i]):
			sc.skip[i] = false
			all = append(all, req.Keys...)
		}
	}
	sc.keys = all
	err := s.lookupMany(all, sc)
	base := 0
	for i, req := range reqs {
		if sc.skip[i] {
			continue
		}
		if err == nil {
			errs[i] = s.readPrefetched(req, resps[i], sc, base, now)
		} else {
			errs[i] = err
		}
		if errs[i] != nil {
			s.failed(req, resps[i], errs[i])
		}
		base += len(req.Keys)
	}
}

// visible decodes rec and reports whether it is a live item: not corrupt,
// expired or flushed (each counted as lookup counts them).
func (s *Store) visible(rec []byte, keyLen int, now time.Time) (header, []byte, bool) {
	h, data, valid := decodeRecord(rec)
	switch {
	case !valid:
		s.log.Warn("ignoring corrupt record", "key_len", keyLen, "len", len(rec))
	case h.expiry != 0 && int64(h.expiry) <= now.Unix():
		s.stats.getExpired.Add(1)
	case s.flush.load().covers(h.stamp, now.UnixNano()):
		s.stats.getFlushed.Add(1)
	default:
		return h, data, true
	}
	return header{}, nil, false
}

// lookupMany looks up keys, filling sc.res, sc.off, sc.vlen and sc.outs.
func (s *Store) lookupMany(keys [][]byte, sc *mgScratch) error {
	n := len(keys)
	sc.shardOf = grow(sc.shardOf, n)
	sc.res = grow(sc.res, n)
	sc.off = grow(sc.off, n)
	sc.vlen = grow(sc.vlen, n)
	sc.vptr = grow(sc.vptr, n)
	sc.gens = grow(sc.gens, n)
	sc.outs = grow(sc.outs, len(s.shards))
	var used [8]uint64 // bitmap of shards with keys (up to 512 shards)
	for i, k := range keys {
		hk := hashKey(k)
		sc.gens[i] = s.wgen[(hk>>32)%lockStripes].Load()
		si := int32(hk % uint64(len(s.shards)))
		sc.shardOf[i] = si
		used[si/64] |= 1 << (si % 64)
	}
	for si := range s.shards {
		if used[si/64]&(1<<(si%64)) == 0 {
			continue
		}
		sc.idx = sc.idx[:0]
		for i := range keys {
			if sc.shardOf[i] == int32(si) {
				sc.idx = append(sc.idx, int32(i))
			}
		}
		if err := s.mgShard(s.shards[si], si, keys, sc); err != nil {
			return err
		}
	}
	return nil
}

// mgShard looks up the keys sc.idx of shard sh in one cgo call.
func (s *Store) mgShard(sh *shard, si int, keys [][]byte, sc *mgScratch) error {
	if sh.db == nil {
		return errShardDown
	}
	m := len(sc.idx)
	sc.kbuf = sc.kbuf[:0]
	sc.klens = sc.klens[:0]
	for _, i := range sc.idx {
		sc.kbuf = append(sc.kbuf, keys[i]...)
		sc.klens = append(sc.klens, C.size_t(len(keys[i])))
	}
	sc.vlens = grow(sc.vlens, m)
	sc.st = grow(sc.st, m)
	sc.vptrs = grow(sc.vptrs, m)
	out := sc.outs[si]
	if cap(out) < 4096 {
		out = make([]byte, 4096)
	}
	out = out[:cap(out)]
	sc.pending = nil
	start := s.clock()
	total := int(C.mn_multi_get(rawDB(sh.db), C.size_t(m), (*C.char)(unsafe.Pointer(&sc.kbuf[0])), &sc.klens[0],
		(*C.char)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &sc.vlens[0], &sc.st[0], &sc.pending,
		(**C.char)(unsafe.Pointer(&sc.vptrs[0])), &sc.err[0], C.size_t(len(sc.err))))
	s.stats.readCalls.Add(1)
	s.stats.readKeys.Add(uint64(m))
	inPlace := sc.pending != nil
	sc.outs[si] = out
	if inPlace {
		// The values did not fit: they are read where RocksDB holds
		// them (no Go garbage for a large value). A buffer that was
		// merely too small for many small values grows for next time.
		sc.held = append(sc.held, sc.pending)
		sc.pending = nil
		if total <= maxPooledOut {
			sc.outs[si] = make([]byte, 1<<bits.Len(uint(total)))
		}
	}
	var err error
	off := 0
	for j, i := range sc.idx {
		r := uint8(sc.st[j])
		sc.res[i] = r
		sc.off[i], sc.vlen[i], sc.vptr[i] = off, int(sc.vlens[j]), nil
		if inPlace {
			sc.vptr[i] = sc.vptrs[j]
		}
		off += int(sc.vlens[j])
		if r == C.MN_ERROR && err == nil {
			err = errors.New(C.GoString(&sc.err[0]))
		}
	}
	if s.opts.ObserveShard != nil {
		// One observation per key, as the per-key Get reported: the
		// shard's get count stays a count of keys read.
		d := time.Since(start) / time.Duration(m)
		for range m {
			s.opts.ObserveShard(sh.idx, ShardGet, d, err)
		}
	}
	return err
}
