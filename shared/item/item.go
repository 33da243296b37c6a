// Package item is memcached 1.6.18's item semantics, written once, as pure
// functions over one item: given a request, the key's current item (or
// none) and the time, it says what the reply is and what the store must
// write. memstore (the reference), mnemonic (the record on disk) and rend's
// L1-only mode (chunked items in a stock memcached) run it under their own
// locks, so the three cannot drift apart again.
//
// # The item model
//
//	Value, Flags     the client's data
//	Exptime          absolute unix seconds, 0 never
//	CAS              the version: every storage command, incr/decr and
//	                 md I give a fresh one; touch, gat and reads keep it
//	Bits: Stale      md I marked it (or ms I stored an older write): readers
//	                 see X, the first mg gets W
//	      WinSent    a reader was handed W; later mg readers get Z
//	      Fetched    it was read before (mg h)
//	Access           unix second of its last access (mg l)
//
// What moves them, as memcached 1.6.18 does (conformance meta/fetched,
// ttl/last-access, ttl/last-access-stale): a write (set, add, replace, cas,
// append, prepend, ms, a counter that grows longer) starts a new item,
// unfetched, accessed now. A fetch (get, gets, gat, gats, touch, mg, binary
// get, touch and gat) sets Fetched the first time and moves Access to now
// every later time (memcached's segmented LRU bumps on the second fetch,
// and its maintainer re-arms that within a second). incr, decr and ma in
// place, and an add that fails because the key exists, move Access without
// a fetch. mg u, md I and a failed cas move neither. mg h and l report the
// state before the request.
//
// # Who stores which bit
//
//   - memstore keeps the whole Item in memory.
//   - mnemonic keeps Value, Flags, Exptime, CAS in every record and Bits
//     plus Access in an optional record extension (old records, without
//     it, read as all bits clear, last access at the write). A request
//     writes its record back only as Persist says: for a change of Bits (a
//     W token, a stale mark, the first fetch) or when Access moves by at
//     least UpdateInterval (60 s); smaller moves are kept in memory
//     (mnemonic/store/access.go) and written out at Close, so l is exact
//     (a crash may lose them) while a key read over and over costs one
//     write a minute. A read's own state (the first fetch, a minute move)
//     is written in batches shortly after the reply, a W token before it.
//   - rend, l1only: the chunk header in L1 holds Value, Flags, Exptime, CAS
//     and Bits (in its kind byte); memcached itself counts the fetches and
//     last access of the header item, which rend's reads for clients are,
//     and rend reads those (mg h l, with u before a write) when an mg asks.
//     A header rewrite (md I, a W token, touch, gat, incr in place) starts
//     memcached's count over: Fetched travels in the header's Bits, and an
//     Access older than the rewrite in the header's Access field, which
//     holds until memcached counts a fetch of the new header item
//     (rend/orca/l1only.go).
//   - rend, l1l2 and l1l2batch: the record is L2 (mnemonic), which applies
//     this package. L1 holds only items without Stale or WinSent: an mg
//     with N, R, u, h or l reads L2 (recordRead), an L2 hit showing W, X or
//     Z is not copied into L1, md I and ms I take L1's copy out
//     (rend/orca/meta.go). L1 hits never reach L2, so for h and l rend also
//     reads the copy's own state from L1 and merges it with L2's; before a
//     touch, gat or md I takes the copy out, the fetches only L1 saw are
//     made known to L2 (for md I with mnemonic's A flag, Mods.PeerAccess,
//     which Read counts before the request).
//
// # Ownership
//
// An Outcome's Next.Value aliases one of: the request's Value (set), the
// current item's Value (touch, a read, md I), or the dst buffer passed in
// (append, prepend, incr, decr). The caller copies what it keeps beyond the
// request. No function here allocates.
package item

import (
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Bits are an item's meta protocol state.
type Bits uint8

const (
	Stale   Bits = 1 << iota // md I / ms I: served with X
	WinSent                  // W went out: later mg readers see Z
	Fetched                  // read at least once: mg h1
)

// Item is one cached item.
type Item struct {
	Value   []byte
	Flags   uint32
	Exptime int64 // absolute unix seconds, 0 never
	CAS     uint64
	Bits    Bits
	Access  int64 // unix second of the last recorded access (mg l)
}

// Live reports whether it is visible at now.
func (it *Item) Live(now int64) bool {
	return it.Exptime == 0 || it.Exptime > now
}

// Action is what the store must do with the key after a request.
type Action uint8

const (
	None   Action = iota // leave it as it is
	Put                  // store Next (replacing whatever is there)
	Delete               // remove the key
)

// Outcome is the result of applying one request to one item.
type Outcome struct {
	Status protocol.Status
	Action Action
	// Next is the item to Put. With NeedCAS it is a new version: the store
	// calls SetCAS with a fresh CAS before writing it.
	Next    Item
	NeedCAS bool
	// StateOnly says the Put changes only Bits and Access (a read, or an
	// add that failed against the item): a store decides with Persist
	// whether to write it.
	StateOnly bool
	// Number is the counter after incr/decr.
	Number uint64
	// HasHit says the reply shows Hit (reads; incr/decr, for ma's t and c).
	HasHit bool
	Hit    protocol.Hit
}

// SetCAS gives the new version its CAS (also shown in the reply).
func (o *Outcome) SetCAS(cas uint64) {
	o.Next.CAS = cas
	o.Hit.CAS = cas
}

// CAS is the CAS the reply reports for a write.
func (o *Outcome) CAS() uint64 {
	if o.Status != protocol.StatusOK {
		return 0
	}
	return o.Next.CAS
}

// Reply writes the outcome of a write command (not a read) into resp.
func (o *Outcome) Reply(resp *protocol.Response) {
	resp.Status = o.Status
	if o.Status != protocol.StatusOK {
		return
	}
	resp.CAS = o.Next.CAS
	resp.Number = o.Number
	if o.HasHit {
		o.AppendHit(resp, 0)
	}
}

// AppendHit appends the outcome's hit for key index i to resp.
func (o *Outcome) AppendHit(resp *protocol.Response, i int) {
	h := &o.Hit
	nh := resp.AppendHit(i, h.Value, h.Flags, h.CAS, h.Exptime)
	h.CopyMeta(nh)
}

// AbsExpiry turns a client exptime into an absolute expiry at now: 0
// never; otherwise a time that, when not after now, means already expired.
func AbsExpiry(exptime, now int64) int64 {
	switch {
	case exptime == 0:
		return 0
	case exptime < 0:
		return now
	case exptime <= protocol.MaxRelativeExptime:
		return now + exptime
	}
	return exptime
}

func expired(exp, now int64) bool { return exp != 0 && exp <= now }

// IsCompareAndSwap reports whether req is a compare-and-swap store:
// text cas, or a set/add/replace carrying a CAS (binary; meta ms C).
func IsCompareAndSwap(req *protocol.Request) bool {
	switch req.Command {
	case protocol.CmdCas:
		return true
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace:
		return req.CAS != 0
	}
	return false
}

// Apply runs the write command req (storage commands, delete, touch,
// incr, decr) against cur (nil: no live item) at now. maxItem bounds a
// value, also one grown by append. dst is scratch for a value the request
// computes (append, incr): Next.Value may alias it.
//
// The outcome of a plain set does not depend on cur, so a store may skip
// reading the key for it.
func Apply(req *protocol.Request, cur *Item, now int64, maxItem int, dst []byte) Outcome {
	if cur != nil && !cur.Live(now) {
		cur = nil
	}
	if cur != nil && req.Mods.PeerAccess != 0 {
		// Fetches only rend's L1 copy saw (mnemonic's A flag, which rend
		// sends with an incr or decr): counted first, as Read does.
		c := *cur
		c.Bits |= Fetched
		c.Access = max(c.Access, req.Mods.PeerAccess)
		cur = &c
	}
	switch req.Command {
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdCas,
		protocol.CmdAppend, protocol.CmdPrepend:
		return store(req, cur, now, maxItem, dst)
	case protocol.CmdDelete:
		return del(req, cur, now)
	case protocol.CmdTouch:
		return touch(req, cur, now)
	case protocol.CmdIncr, protocol.CmdDecr:
		return arith(req, cur, now, dst)
	}
	return Outcome{Status: protocol.StatusClientError}
}

func store(req *protocol.Request, cur *Item, now int64, maxItem int, dst []byte) Outcome {
	cmd := req.Command
	app := cmd == protocol.CmdAppend || cmd == protocol.CmdPrepend
	if !app && len(req.Value) > maxItem {
		// memcached unlinks the old item of a set too large to store, so
		// a failed set never leaves the old value readable.
		o := Outcome{Status: protocol.StatusTooLarge}
		if cmd == protocol.CmdSet {
			o.Action = Delete
		}
		return o
	}
	switch {
	case IsCompareAndSwap(req):
		switch {
		case cur == nil:
			return Outcome{Status: protocol.StatusNotFound}
		case cur.CAS != req.CAS && req.Invalidate && req.CAS < cur.CAS:
			// ms I: a write based on an older version is still stored,
			// marked stale, keeping the current TTL and token state.
			return Outcome{Status: protocol.StatusOK, Action: Put, NeedCAS: true, Next: Item{
				Value: req.Value, Flags: req.Flags, Exptime: cur.Exptime,
				Bits: Stale | cur.Bits&WinSent, Access: now,
			}}
		case cur.CAS != req.CAS:
			return Outcome{Status: protocol.StatusExists}
		}
	case cmd == protocol.CmdAdd && cur != nil:
		// memcached promotes the item an add failed against
		// (do_item_update): its last access moves, nothing else does.
		n := *cur
		n.Access = now
		return Outcome{Status: protocol.StatusNotStored, Action: Put, StateOnly: true, Next: n}
	case cmd == protocol.CmdReplace && cur == nil,
		app && cur == nil:
		return Outcome{Status: protocol.StatusNotStored}
	case app && req.CAS != 0 && cur.CAS != req.CAS:
		// A CAS on append/prepend is a precondition.
		return Outcome{Status: protocol.StatusExists}
	}
	if app {
		if len(cur.Value)+len(req.Value) > maxItem {
			// memcached cannot allocate the combined item: NOT_STORED.
			return Outcome{Status: protocol.StatusNotStored}
		}
		v := dst[:0]
		if cmd == protocol.CmdAppend {
			v = append(append(v, cur.Value...), req.Value...)
		} else {
			v = append(append(v, req.Value...), cur.Value...)
		}
		// The old item's flags and expiry; the request's are ignored.
		return Outcome{Status: protocol.StatusOK, Action: Put, NeedCAS: true,
			Next: Item{Value: v, Flags: cur.Flags, Exptime: cur.Exptime, Access: now}}
	}
	exp := AbsExpiry(req.Exptime, now)
	o := Outcome{Status: protocol.StatusOK, Action: Put, NeedCAS: true,
		Next: Item{Value: req.Value, Flags: req.Flags, Exptime: exp, Access: now}}
	if expired(exp, now) {
		// memcached answers STORED for an item born expired, and the old
		// value is gone.
		o.Action = Delete
	}
	return o
}

func del(req *protocol.Request, cur *Item, now int64) Outcome {
	switch {
	case cur == nil:
		return Outcome{Status: protocol.StatusNotFound}
	case req.CAS != 0 && cur.CAS != req.CAS:
		return Outcome{Status: protocol.StatusExists}
	case req.Invalidate:
		// md I: keep the item but mark it stale with a new version, so
		// the next mg wins the right to refresh it.
		n := *cur
		n.Bits = n.Bits&^WinSent | Stale
		if req.HasExptime {
			n.Exptime = AbsExpiry(req.Exptime, now)
		}
		o := Outcome{Status: protocol.StatusOK, Action: Put, NeedCAS: true, Next: n}
		if expired(n.Exptime, now) {
			o.Action = Delete
		}
		return o
	}
	return Outcome{Status: protocol.StatusOK, Action: Delete}
}

func touch(req *protocol.Request, cur *Item, now int64) Outcome {
	if cur == nil {
		return Outcome{Status: protocol.StatusNotFound}
	}
	// A touch is a fetch (memcached bumps the item) that changes the
	// expiry, not the version.
	n := *cur
	fetch(&n, now)
	n.Exptime = AbsExpiry(req.Exptime, now)
	o := Outcome{Status: protocol.StatusOK, Action: Put, Next: n}
	if expired(n.Exptime, now) {
		o.Action = Delete
	}
	return o
}

// fetch records a read of it at now as memcached's segmented LRU does: the
// first fetch sets Fetched, a later one moves the access time.
func fetch(it *Item, now int64) {
	if it.Bits&Fetched != 0 {
		it.Access = now
	}
	it.Bits |= Fetched
}

func arith(req *protocol.Request, cur *Item, now int64, dst []byte) Outcome {
	incr := req.Command == protocol.CmdIncr
	if cur == nil {
		if !req.Vivify {
			return Outcome{Status: protocol.StatusNotFound}
		}
		// Auto-vivify (binary incr with an exptime, meta ma N): create
		// the counter with the initial value; the delta is not applied.
		exp := req.Exptime
		flags := req.Flags
		if req.Mods.Meta {
			// ma creates the item with flags 0, then applies N and T in
			// flag order.
			exp, flags = 0, 0
		}
		n := Item{Value: AppendCounter(dst[:0], req.Initial, nil), Flags: flags, Access: now}
		n.Exptime = AbsExpiry(exp, now)
		early := n.Exptime
		if req.Mods.Meta {
			n.Exptime, early = metaTTL(req, true, 0, now)
		}
		o := Outcome{Status: protocol.StatusOK, Action: Put, NeedCAS: true, Next: n, Number: req.Initial}
		o.hitOf(&n, early)
		if expired(n.Exptime, now) {
			o.Action = Delete
		}
		return o
	}
	if req.CAS != 0 && cur.CAS != req.CAS {
		// memcached compares the CAS before it looks at the number.
		return Outcome{Status: protocol.StatusExists}
	}
	v, ok := ParseCounter(cur.Value)
	if !ok {
		return Outcome{Status: protocol.StatusNonNumeric}
	}
	v = Delta(v, req.Delta, incr)
	n := *cur
	n.Value = AppendCounter(dst[:0], v, cur.Value)
	// In place, memcached keeps the item's state bits and bumps its last
	// access (do_item_update); a longer number is a new item whose state
	// starts over. Neither is a fetch.
	n.Access = now
	if !InPlace(v, cur.Value) {
		n.Bits = 0
	}
	early := n.Exptime
	if req.Mods.SetTTL {
		// ma T sets the TTL of a hit (after a t that came before it is
		// printed). A binary incr's exptime only applies to a created item.
		n.Exptime, early = metaTTL(req, false, n.Exptime, now)
	}
	o := Outcome{Status: protocol.StatusOK, Action: Put, NeedCAS: true, Next: n, Number: v}
	o.hitOf(&n, early)
	if expired(n.Exptime, now) {
		o.Action = Delete
	}
	return o
}

// metaTTL applies mg/ma's T (and N, for a created item) in flag order to
// an item whose expiry is exp, and returns the final expiry and the one
// the reply's t shows.
func metaTTL(req *protocol.Request, created bool, exp, now int64) (final, shown int64) {
	m := &req.Mods
	t := AbsExpiry(req.Exptime, now)
	v := AbsExpiry(m.VivifyExptime, now)
	final, shown = exp, exp
	// Steps in flag order; t is printed where it stands among them.
	type step struct {
		on  bool
		val int64
	}
	var first, second step
	setT := step{on: m.SetTTL, val: t}
	setN := step{on: created && req.Vivify, val: v}
	if m.VivifyAfterSet {
		first, second = setT, setN
	} else {
		first, second = setN, setT
	}
	beforeFirst, beforeSecond := m.TTLBeforeVivify, m.TTLBeforeSet
	if m.VivifyAfterSet {
		beforeFirst, beforeSecond = m.TTLBeforeSet, m.TTLBeforeVivify
	}
	shownSet := false
	if first.on {
		if beforeFirst {
			shown, shownSet = final, true
		}
		final = first.val
	}
	if second.on {
		if beforeSecond && !shownSet {
			shown, shownSet = final, true
		}
		final = second.val
	}
	if !shownSet {
		shown = final
	}
	return final, shown
}

// hitOf fills o's hit from it, with early as the expiry t shows.
func (o *Outcome) hitOf(it *Item, early int64) {
	o.HasHit = true
	o.Hit = protocol.Hit{Value: it.Value, Flags: it.Flags, CAS: it.CAS, Exptime: it.Exptime}
	if early != it.Exptime {
		o.Hit.EarlyTTL, o.Hit.EarlyExptime = true, early
	}
}

// UpdateInterval is memcached's ITEM_UPDATE_INTERVAL (60 s). memcached
// 1.6's segmented LRU moves an item's time on every fetch but its first
// (give or take its background LRU maintainer, up to a second), so this is
// not a rule of the reply: stores that keep items outside memory use it to
// bound how often a fetch alone makes them write (see Persist).
const UpdateInterval = 60

// Persist reports whether a store that keeps items outside memory
// (mnemonic's records) must write back the outcome o of a request against
// cur: always for a new version, a new expiry, a created or deleted item,
// or a change of Bits (a W token, a stale mark, the first fetch: at most a
// few writes in an item's life); a moved access time alone only when it
// moves by at least step seconds. So a key read over and over costs one
// write per step, not one per read; the store remembers smaller moves
// elsewhere (in memory) if it wants l exact.
func Persist(o *Outcome, cur *Item, step int64) bool {
	switch {
	case o.Action == None:
		return false
	case o.Action == Delete, !o.StateOnly, cur == nil:
		return true
	case o.Next.Bits != cur.Bits:
		return true
	}
	return o.Next.Access-cur.Access >= step
}

// Read runs a read (get, gets, gat, gats, mg) of one key against cur (nil:
// no live item) at now. A hit's reply is in Hit; Action Put means the item
// changed (gat's expiry, a vivified placeholder: NeedCAS; or, StateOnly,
// just its meta state). A miss is Status NotFound.
func Read(req *protocol.Request, cur *Item, now int64) Outcome {
	if cur != nil && !cur.Live(now) {
		cur = nil
	}
	m := &req.Mods
	var o Outcome
	created := false
	var n Item
	if cur == nil {
		if !req.Vivify {
			return Outcome{Status: protocol.StatusNotFound}
		}
		// mg N: create an empty placeholder; this caller wins the right
		// to recompute it (W). It starts with no expiry; N and T then
		// apply in flag order.
		n = Item{Value: []byte{}, Access: now}
		created = true
		o.NeedCAS = true
	} else {
		n = *cur
		if m.PeerAccess != 0 {
			// Fetches only rend's L1 copy saw (mnemonic's A flag):
			// counted first, so h and l show them.
			n.Bits |= Fetched
			n.Access = max(n.Access, m.PeerAccess)
		}
	}
	o.Status = protocol.StatusOK
	before := n
	early := n.Exptime
	touchTTL := req.Command == protocol.CmdGat || req.Command == protocol.CmdGats
	switch {
	case m.Meta:
		n.Exptime, early = metaTTL(req, created, n.Exptime, now)
	case touchTTL:
		n.Exptime = AbsExpiry(req.Exptime, now)
		early = n.Exptime
	}
	if !m.NoBump {
		// A created placeholder is bumped too: the next mg sees h1.
		fetch(&n, now)
	}
	o.hitOf(&n, early)
	h := &o.Hit
	h.Fetched = before.Bits&Fetched != 0
	h.Accessed = before.Access
	if m.Meta {
		// memcached's mg: Z if a token went out before, X if stale, and W
		// for a created item, the first reader of a stale one, or (R) the
		// first reader of one about to expire.
		win := created
		if m.HasRecache && !created && before.Bits&WinSent == 0 &&
			n.Exptime != 0 && n.Exptime < now+m.Recache {
			win = true
		}
		h.Won = before.Bits&WinSent != 0
		h.Stale = before.Bits&Stale != 0
		if h.Stale && !h.Won {
			win = true
		}
		if win && !m.ClassicRead {
			h.Win = true
			n.Bits |= WinSent
		}
	}
	o.Next = n
	switch {
	case created || n.Exptime != before.Exptime:
		o.Action = Put
	case n.Bits != before.Bits || n.Access != before.Access,
		cur != nil && (n.Bits != cur.Bits || n.Access != cur.Access):
		o.Action, o.StateOnly = Put, true
	}
	if o.Action == Put && expired(n.Exptime, now) {
		// gat with a past time: the hit is answered, then the item is gone.
		o.Action, o.StateOnly = Delete, false
	}
	return o
}
