package orca

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Meta state in the two-layer modes (issue 10 item 7; the item model and
// who stores which bit are in shared/item's package doc).
//
// L2 is the record and keeps each item's meta state (stale, W token sent,
// fetched, last access). L1 holds plain copies only, so an L1 hit is always
// an item without state, and rend keeps it that way:
//   - an item with state never enters L1: a read whose L2 hit carries W, X or
//     Z is not filled (and its L1 copy, if any, is taken out), an ms I does
//     not put its value into L1, md I deletes L1's copy as delete does;
//   - a read whose answer depends on the state, or that changes it (mg with
//     N, R, h or l), goes to L2 directly (recordRead), never to L1.
// A plain mg that misses L1 reads L2 and shows the W, X, Z it answered; a
// classic get, gets, gat or gats reads L2 with mnemonic's G flag
// (protocol.Mods.ClassicRead), so it leaves a stale item's W for the next
// mg, as memcached does.

// needsRecord reports whether req is a read only the record can answer
// (an L1 copy has no state to show or change).
func needsRecord(req *protocol.Request) bool {
	m := &req.Mods
	return m.Meta && (req.Vivify || m.HasRecache || m.NoBump ||
		req.Want&(protocol.WantFetched|protocol.WantAccess) != 0)
}

// anyNeedsRecord reports whether a batch of gets holds one that the record
// must answer (recordRead); the batch is then served request by request.
// A plain mg does not: HandleGets reads its L2 miss as an mg.
func (o *Orca) anyNeedsRecord(reqs []*protocol.Request) bool {
	for _, r := range reqs {
		if needsRecord(r) {
			return true
		}
	}
	return false
}

// hasMetaState reports whether an L2 hit shows state that L1 cannot keep.
func hasMetaState(h *protocol.Hit) bool {
	return h.Win || h.Stale || h.Won
}

// recordRead serves a read that only the record can answer (needsRecord;
// in l1only also an mg that found state and every meta gat), holding the
// keys' stripes exclusively since it may change the record's item (a W
// token, a created placeholder, the fetched bit) and L1's copy, which is
// then brought in line (reflectRead).
func (o *Orca) recordRead(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdGet.Add(uint64(len(req.Keys)))
	stripes := o.lockKeys(make([]int, 0, len(req.Keys)), req.Keys)
	defer o.locks.unlock(stripes)
	exp := memcExp(req.Exptime, time.Now())
	var vb [1]l1View
	views := vb[:0]
	if o.pol.cache && (req.Mods.NoBump || req.Want&(protocol.WantFetched|protocol.WantAccess) != 0) {
		for _, k := range req.Keys {
			views = append(views, o.viewL1(ctx, k, !req.Mods.NoBump))
		}
	}
	if err := o.rec.read(ctx, req, resp, exp); err != nil {
		return o.recordFailed(resp, req.Keys, err)
	}
	if resp.Status != protocol.StatusOK {
		return nil
	}
	noFill := req.Mods.NoBump
	for i := range resp.Hits {
		if h := &resp.Hits[i]; h.Index < len(views) {
			views[h.Index].merge(h)
			noFill = noFill || views[h.Index].present
		}
	}
	o.reflectRead(ctx, req, resp, noFill)
	l1.SortHits(resp)
	o.stats.GetHits.Add(uint64(len(resp.Hits)))
	o.stats.GetMisses.Add(uint64(len(req.Keys) - len(resp.Hits)))
	return nil
}

// mg h and l in the two-layer modes. L1 hits never reach L2, so the record
// does not see them; memcached (L1) counts them itself on the copy's header
// item. An mg that asks for h or l (the only reads that pay for this) reads
// the copy's own fetched bit and last access from L1 (one more L1 request,
// a fetch of the copy unless the mg has u, as the client's mg is one) and
// merges them with the record's. A copy enters L1 as a write (it and the
// record then start alike) or as a fill after a record read; from then on
// L1's fetches of it are the item's fetches. A fill after a read that was
// a later fetch (L2's h: the item was fetched before it) makes memcached
// count one fetch of the new copy (l1.Item.CountFetch), so its first hit
// moves its time as the item's next fetch moves the item's; the copy's
// unmoved time is then the read's, which the record's matches. After the
// item's first fetch the copy is not primed (its creation time would read
// as an access), and its first hit does not move l (README).

// l1View is what L1 knows of a key's copy.
type l1View struct {
	present      bool
	version      uint64 // the L2 version the copy holds
	fetched      bool   // memcached's own h of the header item
	stateFetched bool   // a header rewritten after a fetch (touch, gat)
	accessed     int64  // memcached's own last access, unix seconds
}

// viewL1 reads the copy's state (bump: as a fetch). L1 trouble reads as no
// copy: the record's answer stands alone.
func (o *Orca) viewL1(ctx context.Context, key []byte, bump bool) l1View {
	hh, r, ok, err := o.l1.HeaderState(ctx, key, bump)
	if err != nil {
		return l1View{}
	}
	o.pool.PutResp(r)
	if !ok || o.pending.suspect(key) {
		return l1View{}
	}
	return l1View{present: true, version: hh.Header.Version, fetched: hh.Fetched,
		stateFetched: hh.Header.State&uint8(mcitem.Fetched) != 0, accessed: hh.Accessed}
}

// merge folds the copy's fetches into the record's hit h: fetched if
// either saw a fetch; once the copy was fetched, its last access is at
// least as new as the record's (a fetch after the first moves it).
func (v *l1View) merge(h *protocol.Hit) {
	if !v.present || v.version != h.CAS {
		return
	}
	h.Fetched = h.Fetched || v.fetched || v.stateFetched
	if v.fetched && v.accessed > h.Accessed {
		h.Accessed = v.accessed
	}
}

// takeOutKeepingFetches is takeOut for a touch, each key of a gat or md I,
// after which the item lives on in the record. L1's fetches of the copy
// never reached L2, so it reads the copy's state in the same L1 round trip
// as the delete (DeleteWithState) and, when only L1 saw a fetch, tells the
// record before the command reaches it. A touch or gat is itself a fetch,
// so for them (fetch, exp their new expiry as memcExp gives it) the record
// gets one touch more with the same expiry, a fetch without the value: its
// fetches then end where memcached's would (the item fetched, last
// accessed now). md I (not fetch) must not move the access time, but
// must keep the copy's: syncFetched.
func (o *Orca) takeOutKeepingFetches(ctx context.Context, key []byte, fetch bool, exp int64) l1Copy {
	if !o.pol.cache || !o.l1.Backend().Healthy() {
		return o.takeOut(ctx, key) // L1 down: its rules (pending)
	}
	had, hh, found, err := o.l1.DeleteWithState(ctx, key)
	if err != nil {
		// As takeOut: L1 may still hold the copy.
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		o.log.Debug("rend: L1 delete before write failed", "err", err)
		return l1Copy{}
	}
	if found && !o.pending.suspect(key) && hh.FetchedBefore() {
		if fetch {
			o.touchL2(ctx, key, exp)
		} else {
			o.syncFetched(ctx, key, hh.Header.Version, hh.Accessed)
		}
	}
	return l1Copy{hot: had, out: true}
}

// takeOutKeysKeepingFetches is takeOutKeepingFetches for the keys of a
// multi-key gat: one L1 batch reads every copy's state and deletes it
// (DeleteKeysWithState), and the keys whose copies only L1 saw fetched get
// their touch in L2 in one burst (touchL2Keys): a fixed number of round
// trips whatever the number of keys. If the L1 batch fails every key is
// pending (as takeOutInto).
func (o *Orca) takeOutKeysKeepingFetches(ctx context.Context, keys [][]byte, exp int64) l1Copies {
	hot := make([]bool, len(keys))
	if !o.pol.cache {
		return l1Copies{hot: hot}
	}
	if !o.l1.Backend().Healthy() {
		return l1Copies{hot: hot, out: o.takeOutInto(ctx, keys, hot)} // L1 down: its rules
	}
	hhs := make([]l1.HeaderHit, len(keys))
	found := make([]bool, len(keys))
	if err := o.l1.DeleteKeysWithState(ctx, keys, hot, hhs, found); err != nil {
		for _, k := range keys {
			o.stats.L1InvalidationErrors.Add(1)
			o.pending.add(k)
		}
		o.log.Debug("rend: L1 delete before write failed", "err", err)
		return l1Copies{hot: hot}
	}
	var touch [][]byte
	for i, k := range keys {
		if found[i] && !o.pending.suspect(k) && hhs[i].FetchedBefore() {
			touch = append(touch, k)
		}
	}
	if len(touch) > 0 {
		o.l2.touchKeys(ctx, touch, exp)
	}
	return l1Copies{hot: hot, out: true}
}

// takeOutWithFetches is takeOut for an incr or decr: it also returns the
// last access of L1's copy if L1 saw it fetched (0 otherwise, or when L2
// takes no peer flags), for the ma to L2 to carry (Mods.PeerAccess): an
// incr in place keeps the item's fetched bit, so the fetches only L1 saw
// must reach the record. Same L1 round trip as takeOut's delete.
func (o *Orca) takeOutWithFetches(ctx context.Context, key []byte) (l1Copy, int64) {
	if !o.pol.cache || !o.l2.peer || !o.l1.Backend().Healthy() {
		return o.takeOut(ctx, key), 0
	}
	had, hh, found, err := o.l1.DeleteWithState(ctx, key)
	if err != nil {
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		o.log.Debug("rend: L1 delete before write failed", "err", err)
		return l1Copy{}, 0
	}
	if found && !o.pending.suspect(key) && hh.FetchedBefore() && hh.Accessed > 0 {
		return l1Copy{hot: had, out: true}, hh.Accessed
	}
	return l1Copy{hot: had, out: true}, 0
}

// touchL2 touches key in L2 with the absolute expiry exp. Best effort.
func (o *Orca) touchL2(ctx context.Context, key []byte, exp int64) {
	req := o.pool.Req()
	defer o.pool.PutReq(req)
	req.Command = protocol.CmdTouch
	req.AddKey(key)
	req.Exptime, req.HasExptime = exp, true
	if r, err := o.l2.do(ctx, req, exp); err == nil {
		o.pool.PutResp(r)
	}
}

// syncFetched makes the record count the fetches of key's version that
// only L1 saw, before an md I (which does not move the last access, so
// the copy's must not be lost): mnemonic's A flag (protocol.Mods.PeerAccess)
// on an mg u, one L2 request that marks the item fetched and raises its
// last access to the copy's, accessed (memcached's own time of the copy's
// header item). An L2 without peer flags gets what it can: a first fetch
// (a classic read, no W token) if it has none yet, which moves no access
// time. Best effort.
func (o *Orca) syncFetched(ctx context.Context, key []byte, version uint64, accessed int64) {
	req := o.pool.Req()
	defer o.pool.PutReq(req)
	req.Command = protocol.CmdGet
	req.AddKey(key)
	req.Mods.Meta, req.Mods.NoBump, req.Mods.ClassicRead = true, true, true // no W token
	req.Want = protocol.WantFetched
	resp := o.pool.Resp()
	defer o.pool.PutResp(resp)
	if o.l2.peer && accessed > 0 {
		req.Mods.PeerAccess = accessed
		_ = o.l2.read(ctx, req, resp, 0)
		return
	}
	if err := o.l2.read(ctx, req, resp, 0); err != nil || len(resp.Hits) == 0 ||
		resp.Hits[0].Fetched || resp.Hits[0].CAS != version {
		return
	}
	resp.Reset()
	keys := [1][]byte{key}
	_ = o.l2.get(ctx, keys[:], resp, readClassic)
}
