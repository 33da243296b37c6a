package store

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"
)

// The flusher: writes the read state the table in access.go holds into the
// records, in batches. Measured on the beyond-RAM get workload (600k keys of
// 1 KiB, zipf, through rend): 98% of the reads that reached mnemonic wrote
// their record (the first fetch or a minute-old access), ~75 µs of CPU of
// the ~200 µs an L1 miss cost mnemonic; bench/results/l2path.md, "Deferred
// state writes", has the numbers of this change.

// stateBatch is how many records one flush writes per WriteBatch. Their
// stripes are held meanwhile, so it also bounds what one batch delays.
const stateBatch = 64

// flushStates runs until stop is closed: every interval, or when woken
// because enough state is due, it writes what is due.
func (s *Store) flushStates(interval time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-s.recent.wake:
		}
		if s.recent.due.Load() == 0 {
			continue
		}
		s.life.RLock()
		if !s.closed {
			// Errors stop the shard (commitWrites logs and counts
			// that); the state is best effort, as a read's write was.
			_ = s.persistState(false, time.Now())
		}
		s.life.RUnlock()
	}
}

// persistState writes the table's state into the records (a large item's
// into its side record): with all, everything it holds, for Close (which
// holds life exclusively, so no request runs and no stripe is taken);
// otherwise what is due, under the keys' stripes. Each entry is applied
// only to the version it belongs to and only where it adds to the record
// (OR of the bits, max of the access), so it cannot undo a write made
// since. One WriteBatch per shard per stateBatch records.
func (s *Store) persistState(all bool, now time.Time) error {
	ps := s.recent.collect(all, nil)
	if len(ps) == 0 {
		return nil
	}
	n := uint64(len(s.shards))
	slices.SortFunc(ps, func(a, b pendingState) int {
		return int(hashKey(unsafeBytes(a.key))%n) - int(hashKey(unsafeBytes(b.key))%n)
	})
	var errs []error
	for len(ps) > 0 {
		si := hashKey(unsafeBytes(ps[0].key)) % n
		j := 1
		for j < len(ps) && j < stateBatch && hashKey(unsafeBytes(ps[j].key))%n == si {
			j++
		}
		if err := s.writeStates(s.shards[si], ps[:j], !all, now); err != nil {
			errs = append(errs, fmt.Errorf("persist read state on %s: %w", s.shards[si].dir, err))
		}
		ps = ps[j:]
	}
	return errors.Join(errs...)
}

// writeStates writes the state of ps, all of shard sh, in one WriteBatch:
// the keys are read again in one lookup (under their stripes, taken in
// ascending order as a set run takes them, when lock), each merged into its
// record as above.
func (s *Store) writeStates(sh *shard, ps []pendingState, lock bool, now time.Time) error {
	if !sh.writable() {
		return nil
	}
	sc := mgPool.Get().(*mgScratch)
	defer s.putScratch(sc)
	var stripes []uint32
	for _, p := range ps {
		k := unsafeBytes(p.key)
		sc.keys = append(sc.keys, k)
		stripes = append(stripes, uint32((hashKey(k)>>32)%lockStripes))
	}
	if lock {
		slices.Sort(stripes)
		stripes = slices.Compact(stripes)
		for _, st := range stripes {
			s.locks[st].Lock()
		}
		defer func() {
			for _, st := range stripes {
				s.locks[st].Unlock()
			}
		}()
	}
	if err := s.lookupMany(sc.keys, sc); err != nil {
		return err
	}
	w := s.getWrite()
	defer s.putWrite(w)
	var kb [sideKeyLen]byte
	for i, p := range ps {
		key := sc.keys[i]
		it, ok := s.prefetched(sc, i, len(key), now)
		if !ok || it.h.cas != p.e.cas || it.h.stamp != p.e.stamp {
			continue // gone, or another version: its state is not ours
		}
		m := it.model()
		side := hasSideState(len(it.data))
		if side {
			s.mergeSide(sh, key, &m, now)
		}
		bits, access := m.Bits|p.e.bits, max(m.Access, p.e.access)
		if bits == m.Bits && access == m.Access {
			continue
		}
		m.Bits, m.Access = bits, access
		if side {
			if !s.guard.take(writeCost(len(key), 0)) {
				continue
			}
			h := header{cas: m.CAS, stamp: it.h.stamp, expiry: clampExpiry(m.Exptime), bits: uint8(m.Bits),
				access: uint32(max(m.Access, 1))}
			w.addPut(sideKey(kb[:0], key), h, nil)
			continue
		}
		if !s.guard.take(writeCost(len(key), len(it.data))) {
			continue
		}
		w.addPut(key, recordHeader(&m, it.h.stamp), it.data)
	}
	s.stats.stateWrites.Add(uint64(len(w.ops)))
	return s.commitJoined(sh, w)
}

// unsafeBytes is s's bytes without a copy, for reading only.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
