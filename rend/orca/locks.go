package orca

import (
	"hash/maphash"
	"slices"
	"sync"
)

// Locks are the striped per-key read/write locks that keep the two-layer
// sequences of one key from interleaving (DESIGN §4). One Locks is shared by
// every orchestrator of a process (regular and batch port), because a batch
// write and a regular write of one key race just the same.
//
// Who takes what:
//   - A write (anything that changes a key in L2, or in L1 in l1only mode)
//     holds its stripe exclusively for the whole L2-then-L1 sequence.
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
}

type stripe struct {
	sync.RWMutex
	_ [64 - 24]byte // keep stripes on separate cache lines
}

// DefaultStripes is the stripe count when zero is asked for.
const DefaultStripes = 1024

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

func (l *Locks) runlock(idx []int) {
	for _, i := range idx {
		l.stripes[i].RUnlock()
	}
}
