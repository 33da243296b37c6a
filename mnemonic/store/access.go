package store

import (
	"sync"
	"sync/atomic"

	mcitem "github.com/moneta-cache/moneta/shared/item"
)

// Read state (mg h, mg l) with bounded, deferred writes.
//
// memcached marks an item fetched on its first fetch and moves its time on
// every later one. Writing the record back on each read would turn every
// read into a write, so a read writes nothing itself unless it hands out a
// W token (that decides between clients: written under the key's stripe
// before the reply). What a read changes otherwise, the first fetch and the
// last access, goes into this table, in memory, at once, so every later
// request of this process sees it, and from here into the records:
//
//   - "due" state, the changes item.Persist says a store must keep (the
//     first fetch, an access moved by item.UpdateInterval, 60 s, or more
//     from the record's), is written by the flusher (stateflush.go) every
//     Options.StateFlushInterval (100 ms) or once StateFlushPending entries
//     are due: one WriteBatch per shard for many reads;
//   - smaller access moves are only remembered, so mg l is exact to the
//     second while a key read over and over costs one write a minute;
//   - Close writes everything the table holds, so a clean restart loses
//     nothing. A crash (kill -9) loses the last interval's due state and
//     the remembered moves: l may read up to UpdateInterval seconds too
//     large, h may read 0 for an item fetched just before the crash.
//
// An entry belongs to one version of the item (its CAS and stamp), so a
// later write makes it stale without any bookkeeping: it is neither applied
// to nor written over the new version. Within a version the state only
// grows (bits are set, the access moves on), so merging is OR and max.
//
// The table is bounded: accessPerStripe keys per stripe, 256Ki in all. A
// full stripe forgets its remembered moves (they read their persisted time,
// at most UpdateInterval old); a stripe full of due state makes the read
// that would add more write its record itself, as before this table.

const (
	accessStripes   = 64
	accessPerStripe = 4096 // 256Ki keys in all
)

// recentAccess is the table. Open sets deferOK, flushAt and wake.
type recentAccess struct {
	stripes [accessStripes]accessStripe
	// deferOK: due state waits for the flusher (Options.StateFlushInterval
	// >= 0); otherwise the read writes it, as item.Persist says.
	deferOK bool
	// due counts the entries waiting for a flush; at flushAt the flusher
	// is woken through wake (capacity 1) before its interval.
	due     atomic.Int64
	flushAt int64
	wake    chan struct{}
	// held is the bytes of data the entries' heldRecords hold.
	held atomic.Int64
}

type accessStripe struct {
	mu   sync.Mutex
	m    map[string]*accessEntry // guarded by mu
	dueN int                     // entries of m with due set, guarded by mu
	// dueKeys lists the keys that became due since the last collect (a
	// key may be listed for an entry no longer due or gone: skipped), so
	// a flush visits them, not the whole table. Guarded by mu.
	dueKeys []string
}

// accessEntry is the state of one version (cas, stamp) of a key that its
// record may lack.
type accessEntry struct {
	cas, stamp uint64
	access     int64
	bits       mcitem.Bits
	due        bool // to be written by the next flush
	// rec, when held, is the record of this version as a read found it
	// (due entries only), so that the flush need not read it again.
	rec  heldRecord
	held bool
}

// heldRecord is a copy of a record a read found, for the flusher: it
// rewrites the record from this copy instead of reading it again, when no
// write reached the key's stripe since the read looked the key up (the
// stripe's write generation, Store.wgen, is still gen; every write bumps
// its keys' stripes once it landed, while it holds them). Only records of
// up to heldRecordMax bytes of data are held, and heldBudget bytes in all,
// in buffers of heldRecordMax bytes that the flush returns to heldPool.
type heldRecord struct {
	h    header
	data []byte
	gen  uint64
}

var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, heldRecordMax); return &b }}

const (
	heldRecordMax = sideStateMin // larger items keep their state in a side record
	heldBudget    = 8 << 20
)

func (r *recentAccess) stripe(hk uint64) *accessStripe { return &r.stripes[hk%accessStripes] }

// apply merges into it the state remembered for key's version (it.CAS,
// stamp).
func (r *recentAccess) apply(hk uint64, key []byte, it *mcitem.Item, stamp uint64) {
	st := r.stripe(hk)
	st.mu.Lock()
	if e, ok := st.m[string(key)]; ok && e.cas == it.CAS && e.stamp == stamp {
		it.Bits |= e.bits
		it.Access = max(it.Access, e.access)
	}
	st.mu.Unlock()
}

// note remembers access and bits for key's version (cas, stamp), due or
// not, and reports whether it did: false means the stripe is full of due
// state and the caller must write this due state itself. A key not in the
// table allocates, and a key already there that becomes due (listed for
// the flush); nothing else does.
func (r *recentAccess) note(hk uint64, key []byte, cas, stamp uint64, access int64, bits mcitem.Bits, due bool) bool {
	stored, _ := r.noteHeld(hk, key, cas, stamp, access, bits, due, nil, 0, nil)
	return stored
}

// noteHeld is note with the record the read found (src, nil if none) and
// the write generation of its stripe taken before the lookup: a due entry
// keeps a copy of it (see heldRecord). seen, if not nil, is the item as the
// read saw it (apply's merge included); raced reports that another read
// noted a fetch or a later access of this version since then, so the
// read's answer (h0, its l) is no longer the item's: two reads that both
// found an item never fetched must not both answer h0, as memcached's
// item lock ensures.
func (r *recentAccess) noteHeld(hk uint64, key []byte, cas, stamp uint64, access int64, bits mcitem.Bits, due bool, src *item, gen uint64, seen *mcitem.Item) (stored, raced bool) {
	st := r.stripe(hk)
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.m[string(key)]
	switch {
	case ok && stamp < e.stamp:
		// A read of a version already replaced: the newer one's state
		// stays, and the old version's needs no write.
		return true, false
	case ok && stamp > e.stamp:
		if e.due {
			st.dueN--
			r.due.Add(-1)
		}
		r.drop(e, true)
		*e = accessEntry{cas: cas, stamp: stamp, access: access, bits: bits}
	case ok:
		if seen != nil && (e.bits&^seen.Bits&mcitem.Fetched != 0 || e.access > seen.Access) {
			raced = true
		}
		e.access = max(e.access, access)
		e.bits |= bits
	default:
		if len(st.m) >= accessPerStripe && !st.evict() {
			return !due, false
		}
		if st.m == nil {
			st.m = make(map[string]*accessEntry)
		}
		e = &accessEntry{cas: cas, stamp: stamp, access: access, bits: bits}
		ks := string(key)
		st.m[ks] = e
		if due {
			e.rec, e.held = r.hold(src, stamp, gen)
			// The map's copy of the key serves the list too.
			e.due = true
			st.dueN++
			st.dueKeys = append(st.dueKeys, ks)
			r.dueAdded()
		}
		return true, false
	}
	if due && !e.held {
		e.rec, e.held = r.hold(src, stamp, gen)
	}
	if due && !e.due {
		e.due = true
		st.dueN++
		st.dueKeys = append(st.dueKeys, string(key))
		r.dueAdded()
	}
	return true, raced
}

// hold copies src, the record of version stamp read at write generation
// gen, for a due entry, if it is small enough and the budget allows.
func (r *recentAccess) hold(src *item, stamp, gen uint64) (heldRecord, bool) {
	if src == nil || src.h.stamp != stamp || len(src.data) > heldRecordMax {
		return heldRecord{}, false
	}
	if r.held.Add(heldRecordMax) > heldBudget {
		r.held.Add(-heldRecordMax)
		return heldRecord{}, false
	}
	b := heldPool.Get().(*[]byte)
	return heldRecord{h: src.h, data: append((*b)[:0], src.data...), gen: gen}, true
}

// drop returns e's held record to the budget, and its buffer to the pool
// with free (false: the caller still uses it and calls release).
func (r *recentAccess) drop(e *accessEntry, free bool) {
	if !e.held {
		return
	}
	r.held.Add(-heldRecordMax)
	if free {
		releaseHeld(&e.rec)
	}
	e.rec, e.held = heldRecord{}, false
}

// releaseHeld returns rec's buffer to heldPool.
func releaseHeld(rec *heldRecord) {
	b := rec.data[:0]
	heldPool.Put(&b)
	rec.data = nil
}

// dueAdded counts one more due entry and wakes the flusher at flushAt.
func (r *recentAccess) dueAdded() {
	if r.due.Add(1) >= r.flushAt {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// evict drops the entries that are not due (remembered moves, or state
// already written) and reports whether that made room.
func (st *accessStripe) evict() bool {
	if st.dueN >= accessPerStripe {
		return false
	}
	for k, e := range st.m {
		if !e.due {
			delete(st.m, k)
		}
	}
	return len(st.m) < accessPerStripe
}

// settle decides what the outcome o of a request against cur (of record
// stamp stamp) costs: true means write the record now. The write item.Persist
// asks for (judged against the access time the record holds, recAccess, so
// the record never lags more than the interval) is deferred to the flusher
// when it is only a read's state (the first fetch, an access move); a
// smaller access move is remembered and never due.
func (r *recentAccess) settle(hk uint64, key []byte, o *mcitem.Outcome, cur *mcitem.Item, recAccess int64, stamp uint64) bool {
	write, _ := r.settleHeld(hk, key, o, cur, recAccess, stamp, nil, 0)
	return write
}

// settleHeld is settle for a read that found the record src (its data
// cur's value) with its stripe's write generation at gen: deferred state
// keeps a copy of it for the flusher (see heldRecord). raced: another read
// changed the version's remembered state since cur was taken (noteHeld);
// the caller answers from the state as it is now.
func (r *recentAccess) settleHeld(hk uint64, key []byte, o *mcitem.Outcome, cur *mcitem.Item, recAccess int64, stamp uint64, src *item, gen uint64) (write, raced bool) {
	if cur == nil {
		return mcitem.Persist(o, nil, mcitem.UpdateInterval), false
	}
	rec := *cur
	rec.Access = recAccess
	if !mcitem.Persist(o, &rec, mcitem.UpdateInterval) {
		if o.Action == mcitem.Put && o.Next.Access != cur.Access {
			_, raced = r.noteHeld(hk, key, cur.CAS, stamp, o.Next.Access, 0, false, nil, 0, cur)
		}
		return false, raced
	}
	if !r.deferOK || !readState(o, cur) {
		return true, false
	}
	stored, raced := r.noteHeld(hk, key, cur.CAS, stamp, o.Next.Access, o.Next.Bits&mcitem.Fetched, true, src, gen, cur)
	return !stored, raced
}

// readState reports whether o changes nothing of cur but what a read may
// defer: the Fetched bit and the access time. A W token (WinSent), a stale
// mark, a new expiry or version are written before the reply.
func readState(o *mcitem.Outcome, cur *mcitem.Item) bool {
	return o.Action == mcitem.Put && o.StateOnly && o.Next.CAS == cur.CAS &&
		o.Next.Exptime == cur.Exptime && o.Next.Bits&^cur.Bits&^mcitem.Fetched == 0
}

// pendingState is an entry taken out for a flush.
type pendingState struct {
	key   string
	shard uint64 // set by persistState
	e     accessEntry
}

// collect appends to dst the entries to write: with all, every entry, and
// the table is emptied (Close); otherwise the due ones, which stay in the
// table (their state stays visible) no longer due. An entry noted due again
// meanwhile is written by the next flush.
func (r *recentAccess) collect(all bool, dst []pendingState) []pendingState {
	for i := range r.stripes {
		st := &r.stripes[i]
		st.mu.Lock()
		if all {
			for k, e := range st.m {
				dst = append(dst, pendingState{key: k, e: *e})
				r.drop(e, false)
			}
			st.m = nil
		} else {
			for _, k := range st.dueKeys {
				if e, ok := st.m[k]; ok && e.due {
					dst = append(dst, pendingState{key: k, e: *e})
					r.drop(e, false)
					e.due = false
				}
			}
		}
		clear(st.dueKeys)
		st.dueKeys = st.dueKeys[:0]
		r.due.Add(-int64(st.dueN))
		st.dueN = 0
		st.mu.Unlock()
	}
	return dst
}
