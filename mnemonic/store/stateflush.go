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
	s.persisting.Lock()
	defer s.persisting.Unlock()
	ps := s.recent.collect(all, nil)
	if len(ps) == 0 {
		return nil
	}
	n := uint64(len(s.shards))
	for i := range ps {
		ps[i].shard = hashKey(unsafeBytes(ps[i].key)) % n
	}
	slices.SortFunc(ps, func(a, b pendingState) int { return int(a.shard) - int(b.shard) })
	var errs []error
	for len(ps) > 0 {
		si := ps[0].shard
		j := 1
		for j < len(ps) && j < stateBatch && ps[j].shard == si {
			j++
		}
		if err := s.writeStates(s.shards[si], ps[:j], !all, now); err != nil {
			errs = append(errs, fmt.Errorf("persist read state on %s: %w", s.shards[si].dir, err))
		}
		ps = ps[j:]
	}
	return errors.Join(errs...)
}

// writeStates writes the state of ps, all of shard sh, in one WriteBatch,
// under the keys' stripes (taken in ascending order as a set run takes
// them, when lock): each entry is merged into its record as above. The
// record is the copy the read kept (heldRecord) when no write reached its
// stripe since; the others are read again, in one lookup.
func (s *Store) writeStates(sh *shard, ps []pendingState, lock bool, now time.Time) error {
	if !sh.writable() {
		return nil
	}
	sc := mgPool.Get().(*mgScratch)
	defer s.putScratch(sc)
	var stripes []uint32
	for _, p := range ps {
		stripes = append(stripes, uint32((hashKey(unsafeBytes(p.key))>>32)%lockStripes))
	}
	if lock {
		sorted := slices.Clone(stripes)
		slices.Sort(sorted)
		sorted = slices.Compact(sorted)
		for _, st := range sorted {
			s.locks[st].Lock()
		}
		defer func() {
			for _, st := range sorted {
				s.locks[st].Unlock()
			}
		}()
	}
	// reread[i] is entry i's position in the lookup, or -1: its held
	// record is current.
	reread := make([]int, len(ps))
	for i, p := range ps {
		if p.e.held && s.wgen[stripes[i]].Load() == p.e.rec.gen {
			reread[i] = -1
			s.stats.stateHeld.Add(1)
			continue
		}
		reread[i] = len(sc.keys)
		sc.keys = append(sc.keys, unsafeBytes(p.key))
	}
	if len(sc.keys) > 0 {
		if err := s.lookupMany(sc.keys, sc); err != nil {
			return err
		}
	}
	w := s.getWrite()
	defer s.putWrite(w)
	var kb [sideKeyLen]byte
	unix, nano := now.Unix(), now.UnixNano()
	for i, p := range ps {
		key := unsafeBytes(p.key)
		var it item
		if j := reread[i]; j >= 0 {
			var ok bool
			if it, ok = s.prefetched(sc, j, len(key), now); !ok {
				continue // gone
			}
		} else {
			it = item{h: p.e.rec.h, data: p.e.rec.data}
			if (it.h.expiry != 0 && int64(it.h.expiry) <= unix) || s.flush.load().covers(it.h.stamp, nano) {
				continue // no longer visible: nothing to keep
			}
		}
		if it.h.cas != p.e.cas || it.h.stamp != p.e.stamp {
			continue // another version: its state is not ours
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
	err := s.commitJoined(sh, w)
	// The batch is written (RocksDB copied the values): the held buffers
	// go back to the pool.
	for i := range ps {
		if ps[i].e.held {
			releaseHeld(&ps[i].e.rec)
		}
	}
	return err
}

// unsafeBytes is s's bytes without a copy, for reading only.
func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
