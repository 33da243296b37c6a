package store

import (
	"sync"

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
// makes it stale without any bookkeeping. It is memory only: after a
// restart, or for a key whose stripe was emptied (the bound), l may read up
// to UpdateInterval seconds too large.

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
