package orca

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
)

// Locks are the striped per-key read/write locks that keep the two-layer
// sequences of one key from interleaving (DESIGN §4). One Locks is shared by
// every orchestrator of a process (regular and batch port), because a batch
// write and a regular write of one key race just the same.
//
// Who takes what:
//   - A write (anything that changes a key in L2, or in L1 in l1only mode)
//     holds its stripe exclusively for the whole L2-then-L1 sequence,
//     including an L1 put-back that runs behind the client's reply (the
//     fill worker releases the stripe once L1 answered: fill.go).
//   - A get that missed L1 holds the stripe shared for its L2 read and L1
//     fill, so no write can slip between "read v1 from L2" and "add v1 to
//     L1" (which would leave L1 at v1 after L2 moved to v2). Two fills may
//     run together; both add the same L2 version and one of them wins.
//   - A plain L1 hit takes no lock: L1 is only written under the exclusive
//     lock or by add-fills, and a chunked item is assembled from chunk keys
//     unique to its write, so a lock-free reader sees one whole version.
//
// Distinct keys may share a stripe; that only costs concurrency, never
// correctness. Multi-key operations lock their stripes in increasing index
// order, so they cannot deadlock with each other.
type Locks struct {
	seed    maphash.Seed
	stripes []stripe
	// landings counts the put-backs that landed in L1 behind their
	// writers' replies (land); see stripe.landed.
	landings atomic.Uint64
}

type stripe struct {
	sync.RWMutex
	// landed is landings as it was when the last put-back behind a reply
	// on this stripe landed in L1 (written under the exclusive lock, read
	// under the shared one): a read that took Locks.landings before its
	// L1 read and finds a larger landed here may have missed a copy that
	// landed after that read (lookup reads L1 again).
	landed atomic.Uint64
	_      [64 - 32]byte // keep stripes on separate cache lines
}

// DefaultStripes is the stripe count when zero is asked for. A read that
// misses L1 waits for any write holding its stripe, whatever the write's
// key, so the count bounds how many reads a bulk load delays: a loader with
// 128 sets in flight holds 128 stripes, 12.5% of 1024 (1% of reads waited
// in a 5k/s bulk overwrite, right at the p99; 0.04% with 65536, counted
// in Stats.ReadLockWaits, bench/results/l2path.md). 65536 stripes of 64
// bytes are 4 MiB, touched as keys hash to them.
const DefaultStripes = 65536

// NewLocks returns n stripes (DefaultStripes if n <= 0).
func NewLocks(n int) *Locks {
	if n <= 0 {
		n = DefaultStripes
	}
	return &Locks{seed: maphash.MakeSeed(), stripes: make([]stripe, n)}
}

func (l *Locks) index(key []byte) int {
	return int(maphash.Bytes(l.seed, key) % uint64(len(l.stripes)))
}

// set returns the sorted, distinct stripe indexes of keys, appended to dst.
func (l *Locks) set(dst []int, keys [][]byte) []int {
	for _, k := range keys {
		dst = append(dst, l.index(k))
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}

func (l *Locks) lock(idx []int) {
	for _, i := range idx {
		l.stripes[i].Lock()
	}
}

func (l *Locks) unlock(idx []int) {
	for _, i := range idx {
		l.stripes[i].Unlock()
	}
}

func (l *Locks) rlock(idx []int) {
	for _, i := range idx {
		l.stripes[i].RLock()
	}
}

// lockAll takes every stripe exclusively, in increasing order like any
// multi-key operation (flush_all: no key sequence is half done while it
// holds them).
func (l *Locks) lockAll() {
	for i := range l.stripes {
		l.stripes[i].Lock()
	}
}

func (l *Locks) unlockAll() {
	for i := range l.stripes {
		l.stripes[i].Unlock()
	}
}

// rlockCounted is rlock that reports how many stripes were held by a
// writer (they had to be waited for).
func (l *Locks) rlockCounted(idx []int) (waits int) {
	for _, i := range idx {
		if !l.stripes[i].TryRLock() {
			waits++
			l.stripes[i].RLock()
		}
	}
	return waits
}

func (l *Locks) runlock(idx []int) {
	for _, i := range idx {
		l.stripes[i].RUnlock()
	}
}

// land records that a put-back behind its writer's reply landed in L1 for
// the stripes idx, which the caller holds exclusively (fill.go runFills).
func (l *Locks) land(idx []int) {
	g := l.landings.Add(1)
	for _, i := range idx {
		l.stripes[i].landed.Store(g)
	}
}

// landedSince reports whether a put-back behind a reply landed on one of
// the stripes idx (held shared by the caller) after the caller read
// landings as since.
func (l *Locks) landedSince(idx []int, since uint64) bool {
	for _, i := range idx {
		if l.stripes[i].landed.Load() > since {
			return true
		}
	}
	return false
}
