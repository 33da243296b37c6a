package store

import (
	"errors"
	"fmt"
	"sync"
	"time"

	mcitem "github.com/moneta-cache/moneta/shared/item"
)

// Last access (mg l) with bounded writes.
//
// memcached moves an item's time on every fetch but its first. Writing the
// record back on each of those would turn every read into a write, so a
// read writes its record only as item.Persist says: when a state bit flips
// (the first fetch, a W token) or the access time moves by at least
// item.UpdateInterval (60 s). The smaller moves are remembered here, in
// memory, so that mg l is exact to the second: a key read over and over
// costs one record write a minute, not one per read.
//
// An entry belongs to one version of the item (its CAS), so a later write
// makes it stale without any bookkeeping. It is memory only until Close,
// which writes the moves out (persistRecent), so a clean restart keeps l
// exact; after a crash (kill -9), or for a key whose stripe was emptied
// (the bound), l may read up to UpdateInterval seconds too large.

const (
	accessStripes   = 64
	accessPerStripe = 4096 // 256Ki keys in all
)

// recentAccess is the table; the zero value is ready.
type recentAccess struct {
	stripes [accessStripes]accessStripe
}

type accessStripe struct {
	mu sync.Mutex
	m  map[string]*accessEntry // guarded by mu
}

type accessEntry struct {
	cas    uint64
	access int64
}

func (r *recentAccess) stripe(hk uint64) *accessStripe { return &r.stripes[hk%accessStripes] }

// apply raises it.Access to the time remembered for key's version it.CAS.
func (r *recentAccess) apply(hk uint64, key []byte, it *mcitem.Item) {
	st := r.stripe(hk)
	st.mu.Lock()
	if e, ok := st.m[string(key)]; ok && e.cas == it.CAS && e.access > it.Access {
		it.Access = e.access
	}
	st.mu.Unlock()
}

// note remembers access as the last access of key's version cas. Only a
// key not seen before allocates.
func (r *recentAccess) note(hk uint64, key []byte, cas uint64, access int64) {
	st := r.stripe(hk)
	st.mu.Lock()
	defer st.mu.Unlock()
	if e, ok := st.m[string(key)]; ok {
		e.cas, e.access = cas, access
		return
	}
	if st.m == nil || len(st.m) >= accessPerStripe {
		// Full: start over rather than track age. The keys dropped read
		// their persisted time (at most UpdateInterval old).
		st.m = make(map[string]*accessEntry)
	}
	st.m[string(key)] = &accessEntry{cas: cas, access: access}
}

// settle decides what the outcome o of a request against cur costs: true
// means write the record (item.Persist, judged against the access time the
// record holds, recAccess, so the record never lags more than the
// interval); otherwise a moved access time is remembered here and nothing
// is written.
func (r *recentAccess) settle(hk uint64, key []byte, o *mcitem.Outcome, cur *mcitem.Item, recAccess int64) bool {
	var rec mcitem.Item
	if cur != nil {
		rec = *cur
		rec.Access = recAccess
		if mcitem.Persist(o, &rec, mcitem.UpdateInterval) {
			return true
		}
	} else if mcitem.Persist(o, nil, mcitem.UpdateInterval) {
		return true
	}
	if o.Action == mcitem.Put && cur != nil && o.Next.Access != cur.Access {
		r.note(hk, key, cur.CAS, o.Next.Access)
	}
	return false
}

// take empties the table and returns what it held.
func (r *recentAccess) take() map[string]*accessEntry {
	all := make(map[string]*accessEntry)
	for i := range r.stripes {
		st := &r.stripes[i]
		st.mu.Lock()
		for k, e := range st.m {
			all[k] = e
		}
		st.m = nil
		st.mu.Unlock()
	}
	return all
}

// recentBatch is how many records persistRecent writes per WriteBatch.
const recentBatch = 256

// persistRecent writes the last-access moves the table holds into their
// records (a state-only write, as a read's; a large item's into its side
// record), for Close: a clean shutdown then loses none of them. An entry
// whose version is gone, or that the record already covers, is dropped.
// The caller holds life exclusively, so no request runs meanwhile and the
// writes need no stripe locks. Writes go in batches per shard; errors are
// returned together, each key's write being best effort as a read's is.
func (s *Store) persistRecent(now time.Time) error {
	moves := s.recent.take()
	if len(moves) == 0 {
		return nil
	}
	type staged struct {
		w   *writeScratch
		its []item // values staged in w, released after its write
	}
	byShard := make(map[*shard]*staged)
	var errs []error
	flush := func(sh *shard, st *staged) {
		if err := s.commitWrites(sh, st.w); err != nil {
			errs = append(errs, fmt.Errorf("persist last access on %s: %w", sh.dir, err))
		}
		for i := range st.its {
			st.its[i].release()
		}
		st.its = st.its[:0]
		st.w.reset()
	}
	var kb [sideKeyLen]byte
	for k, e := range moves {
		key := []byte(k)
		sh := s.shardFor(hashKey(key))
		if sh.db == nil || sh.readOnly || sh.fault() != nil {
			continue
		}
		it, ok, err := s.lookup(sh, key, now)
		if err != nil || !ok {
			continue
		}
		m := it.model()
		side := hasSideState(len(it.data))
		if side {
			s.mergeSide(sh, key, &m, now)
		}
		if m.CAS != e.cas || e.access <= m.Access || !s.guard.take(writeCost(len(key), 0)) {
			it.release()
			continue
		}
		m.Access = e.access
		st := byShard[sh]
		if st == nil {
			st = &staged{w: s.getWrite()}
			byShard[sh] = st
		}
		if side {
			h := header{cas: m.CAS, stamp: it.h.stamp, expiry: clampExpiry(m.Exptime), bits: uint8(m.Bits),
				access: uint32(max(m.Access, 1))}
			st.w.addPut(sideKey(kb[:0], key), h, nil)
			it.release()
		} else {
			st.w.addPut(key, recordHeader(&m, it.h.stamp), it.data)
			st.its = append(st.its, it)
		}
		if len(st.w.ops) >= recentBatch {
			flush(sh, st)
		}
	}
	for sh, st := range byShard {
		flush(sh, st)
		s.putWrite(st.w)
	}
	return errors.Join(errs...)
}
