package orca

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Writes in the L2 modes follow one rule (the invariant in rend/README,
// "Faults"): L1 never holds a copy that L2 may no longer hold. So a write
// takes the key's L1 copy out *before* asking L2 (takeOut), and puts the
// result back only after L2 accepted it (updateL1). Why before and not
// after: rend can die (kill -9, OOM) between any two steps. With
// "L2, then L1", a death after L2 applied the write leaves L1 with the
// previous value (or a deleted key) and nobody left to know it, served
// until it expires. With "take out, L2, put back" every death leaves L1
// without a copy or with L2's current one. The price is one L1 delete per
// write; reads are untouched (an L1 hit stays one L1 round trip). A reader
// that finds the key missing meanwhile goes to L2 under the stripe's shared
// lock, so it waits for the write and fills L2's new item.
//
// What L2 answered then decides nothing for L1 except whether to put the
// result back: OK puts it back; NOT_STORED, EXISTS and NOT_FOUND leave L2's
// item as it was (memcached does too), and any other refusal (object too
// large, out of memory: memcached unlinks the old item of a failed set) may
// have removed it; L1 is empty either way and the next read refills it.
// An ambiguous outcome (timeout, connection lost after sending) holds the
// key (Pending.hold): L2 may still apply the write later.

// takeOut deletes key's L1 copy before its L2 write (see above). It reports
// whether L1 had a copy (the batch port puts back only those) and whether
// the delete landed; if it did not, the key is pending (no L1 hit served
// until a background delete lands) and the write leaves L1 alone.
func (o *Orca) takeOut(ctx context.Context, key []byte) (hot, ok bool) {
	if !o.l1.Backend().Healthy() {
		// L1 down or its circuit open: do not wait for it.
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		return false, false
	}
	had, err := o.l1.Delete(ctx, key)
	if err != nil {
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		o.log.Debug("rend: L1 delete before write failed", "err", err)
		return false, false
	}
	return had, true
}

// takeOutKeys is takeOut for the keys of a multi-key write (gat), in one
// pipelined L1 batch. hot[i] says keys[i] was in L1; ok is false if the
// batch failed (every key is then pending).
func (o *Orca) takeOutKeys(ctx context.Context, keys [][]byte) (hot []bool, ok bool) {
	hot = make([]bool, len(keys))
	if len(keys) == 1 {
		hot[0], ok = o.takeOut(ctx, keys[0])
		return hot, ok
	}
	var err error = errL1Down
	if o.l1.Backend().Healthy() {
		err = o.l1.DeleteKeys(ctx, keys, hot)
	}
	if err != nil {
		for _, k := range keys {
			o.stats.L1InvalidationErrors.Add(1)
			o.pending.add(k)
		}
		return hot, false
	}
	return hot, true
}

// l2Failed handles a write whose L2 call returned an error: L2 may or may
// not apply it (a stalled mnemonic applies what it had queued when it
// resumes), so the keys are held until L2 settles.
func (o *Orca) l2Failed(resp *protocol.Response, keys [][]byte, err error) error {
	for _, k := range keys {
		o.pending.hold(k)
	}
	return o.fail(resp, "L2", err)
}

// updateL1 puts the result of a write L2 accepted into L1 (takeOut removed
// the old copy): on the regular port always, on the batch port only if the
// key was in L1 before (hot), so bulk loads do not evict the hot set. A
// failure deletes the key from L1 again: a missing copy only costs a
// refill, while a stale one would be served as a hit.
func (o *Orca) updateL1(ctx context.Context, key []byte, it l1.Item, hot bool) {
	if o.pol.l1Write == protocol.CmdReplace {
		o.stats.replaced(hot)
		if !hot {
			return
		}
	}
	if o.pending.suspect(key) {
		// L1 may still hold an older copy, or L2 an ambiguous write:
		// leave the key to L2 until that is resolved.
		return
	}
	if _, err := o.l1.Store(ctx, protocol.CmdSet, key, it); err != nil {
		o.invalidate(ctx, key)
	}
}

func (o *Orca) invalidate(ctx context.Context, key []byte) {
	o.stats.L1Invalidations.Add(1)
	if _, err := o.l1.Delete(ctx, key); err != nil {
		// L1 may still hold the value from before the write: no L1 hit
		// for this key is served until a background delete lands.
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		o.log.Debug("rend: L1 invalidation failed", "err", err)
	}
}

// lockKeys takes the stripes of keys exclusively and returns them for unlock.
func (o *Orca) lockKeys(buf []int, keys [][]byte) []int {
	s := o.locks.set(buf, keys)
	o.locks.lock(s)
	return s
}

// store serves set/add/replace/cas.
func (o *Orca) store(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdSet.Add(1)
	key := req.Key()
	exp := memcExp(req.Exptime, time.Now())
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))

	if o.pol.l2 {
		// Take L1's copy out, then L2 (the record, owner of the version),
		// then put the result back (see takeOut). An add needs no
		// take-out: it succeeds only if L2 has no item, and then L1 has
		// none either; if it fails L2 is unchanged.
		hot, l1ok := false, true
		if req.Command != protocol.CmdAdd {
			hot, l1ok = o.takeOut(ctx, key)
		}
		r, err := o.l2.do(ctx, req, exp)
		if err != nil {
			return o.l2Failed(resp, req.Keys[:1], err)
		}
		defer o.pool.PutResp(r)
		resp.Status, resp.CAS, resp.Message = r.Status, r.CAS, r.Message
		switch r.Status {
		case protocol.StatusOK:
			if l1ok {
				if req.Invalidate {
					// ms I may have stored a stale item, which lives in L2
					// only (see meta.go); L1's copy is out already.
				} else {
					o.updateL1(ctx, key, l1.Item{Value: req.Value, Flags: req.Flags, Exp: exp, Version: r.CAS}, hot)
				}
			}
		case protocol.StatusNotStored, protocol.StatusExists, protocol.StatusNotFound:
			// L2 kept its item unchanged.
		default:
			// Too large, out of memory, any other refusal: L2 may have
			// dropped its item. Only an add still has an L1 copy to drop.
			if req.Command == protocol.CmdAdd {
				o.invalidate(ctx, key)
			}
		}
		return nil
	}

	return o.l1onlyStore(ctx, req, resp, exp) // see l1only.go
}

// l1Version reads the version of key's L1 header.
func (o *Orca) l1Version(ctx context.Context, key []byte) (bool, uint64, error) {
	hdrs, hresp, err := o.l1.Headers(ctx, [][]byte{key}, nil)
	if err != nil {
		return false, 0, err
	}
	defer o.pool.PutResp(hresp)
	if len(hdrs) == 0 {
		return false, 0, nil
	}
	return true, hdrs[0].Header.Version, nil
}

// modify serves append/prepend/incr/decr.
func (o *Orca) modify(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if req.Command == protocol.CmdIncr || req.Command == protocol.CmdDecr {
		o.stats.CmdIncr.Add(1)
	} else {
		o.stats.CmdSet.Add(1)
	}
	key := req.Key()
	now := time.Now()
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))

	if o.pol.l2 {
		hot, l1ok := o.takeOut(ctx, key) // see takeOut
		r, err := o.l2.do(ctx, req, memcExp(req.Exptime, now))
		if err != nil {
			return o.l2Failed(resp, req.Keys[:1], err)
		}
		resp.Status, resp.CAS, resp.Number, resp.Message = r.Status, r.CAS, r.Number, r.Message
		early, hasEarly := int64(0), len(r.Hits) > 0
		if hasEarly {
			early = r.Hits[0].Exptime // the TTL before an ma T (mcclient sends T after t)
		}
		o.pool.PutResp(r)
		if resp.Status != protocol.StatusOK {
			return nil // L1's copy is out; L2 kept or dropped its item
		}
		// rend does not know the new value (append) or its flags and
		// expiry (incr), so it reads the result back from L2 while still
		// holding the stripe: no rend write of this key can come between
		// L2's change and this read, so L1 gets exactly L2's new item.
		if exp, ok := o.refreshL1(ctx, key, hot && l1ok, l1ok); ok && (req.Command == protocol.CmdIncr || req.Command == protocol.CmdDecr) {
			// The meta ma reply can show the item's TTL (t); the codec
			// takes it from a hit.
			h := resp.AppendHit(0, nil, 0, resp.CAS, exp)
			if hasEarly && req.Mods.Meta && early != exp {
				// L2 applied the client's T and N and printed t in the
				// client's order (mcclient keeps it): show its t.
				h.EarlyTTL, h.EarlyExptime = true, early
			}
		}
		return nil
	}

	return o.l1onlyApply(ctx, req, resp, true) // see l1only.go
}

// refreshL1 copies key's current L2 item into L1 per the mode's policy
// (updateL1; only if put, since takeOut failed otherwise). It returns the
// item's expiry when L2 had it.
func (o *Orca) refreshL1(ctx context.Context, key []byte, hot, put bool) (exp int64, ok bool) {
	keys := [1][]byte{key}
	resp := o.pool.Resp()
	defer o.pool.PutResp(resp)
	if err := o.l2.get(ctx, keys[:], resp); err != nil || len(resp.Hits) == 0 {
		return 0, false // L1's copy is out already
	}
	h := &resp.Hits[0]
	if put {
		o.updateL1(ctx, key, l1.Item{Value: h.Value, Flags: h.Flags, Exp: h.Exptime, Version: h.CAS}, hot)
	}
	return h.Exptime, true
}

// delete serves delete.
func (o *Orca) delete(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdDelete.Add(1)
	key := req.Key()
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))
	if o.pol.l2 {
		// L1 first, whatever L2 will say (see takeOut): a delete must not
		// leave a copy in L1 even if rend dies right after L2's, and a
		// refused compare (EXISTS) only costs the next read a refill.
		o.takeOut(ctx, key)
		// md I T: the new TTL goes to L2 as an absolute time like any other.
		r, err := o.l2.do(ctx, req, memcExp(req.Exptime, time.Now()))
		if err != nil {
			return o.l2Failed(resp, req.Keys[:1], err)
		}
		resp.Status, resp.Message = r.Status, r.Message
		o.pool.PutResp(r)
		return nil
	}
	if req.Invalidate {
		// md I keeps the item, stale, with a new version (see l1only.go).
		return o.l1onlyApply(ctx, req, resp, true)
	}
	if req.CAS != 0 {
		present, version, err := o.l1Version(ctx, key)
		if err != nil {
			return o.fail(resp, "L1", err)
		}
		if present && version != req.CAS {
			resp.Status = protocol.StatusExists
			return nil
		}
	}
	had, err := o.l1.Delete(ctx, key)
	if err != nil {
		return o.fail(resp, "L1", err)
	}
	if !had {
		resp.Status = protocol.StatusNotFound
	}
	return nil
}

// touch serves touch.
func (o *Orca) touch(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdTouch.Add(1)
	key := req.Key()
	exp := memcExp(req.Exptime, time.Now())
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))
	if o.pol.l2 {
		// A touch changes when L2 drops the item, so L1's copy (whose
		// expiry would be the old one) goes first, as for any write
		// (takeOut). touch returns no value to put back: the next read
		// refills the key with its new expiry.
		o.takeOut(ctx, key)
		r, err := o.l2.do(ctx, req, exp)
		if err != nil {
			return o.l2Failed(resp, req.Keys[:1], err)
		}
		resp.Status, resp.Message = r.Status, r.Message
		o.pool.PutResp(r)
		return nil
	}
	had, err := o.l1.Touch(ctx, key, exp)
	if err != nil {
		return o.fail(resp, "L1", err)
	}
	if !had {
		resp.Status = protocol.StatusNotFound
	}
	return nil
}

// gat serves gat/gats: a read that also sets a new expiry, so a write.
func (o *Orca) gat(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdGet.Add(uint64(len(req.Keys)))
	o.stats.CmdTouch.Add(uint64(len(req.Keys)))
	if o.pol.l2 && needsRecord(req) {
		return o.recordRead(ctx, req, resp) // see meta.go
	}
	if !o.pol.l2 && req.Mods.Meta {
		return o.l1onlyMetaRead(ctx, req, resp) // see l1only.go
	}
	exp := memcExp(req.Exptime, time.Now())
	stripes := o.lockKeys(make([]int, 0, len(req.Keys)), req.Keys)
	defer o.locks.unlock(stripes)
	defer func() {
		l1.SortHits(resp)
		o.stats.GetHits.Add(uint64(len(resp.Hits)))
		o.stats.GetMisses.Add(uint64(len(req.Keys) - len(resp.Hits)))
	}()
	if !o.pol.l2 {
		// Holding the stripes exclusively, l1.get may rewrite the headers.
		if err := o.l1.Get(ctx, req.Keys, resp, true, exp); err != nil {
			return o.fail(resp, "L1", err)
		}
		return nil
	}
	// L1's copies out first (a gat is a touch: see takeOut), then L2 (the
	// record), which returns each item with its new expiry, then put the
	// items back: on the regular port all of them, on the batch port
	// those L1 had (both ports give L1 the new expiry; Rend's batch port
	// left L1 copies at their old one, immortal ones included).
	hot, l1ok := o.takeOutKeys(ctx, req.Keys)
	if err := o.l2.read(ctx, req, resp, exp); err != nil {
		return o.l2Failed(resp, req.Keys, err)
	}
	if resp.Status != protocol.StatusOK {
		return nil
	}
	for i := range resp.Hits {
		h := &resp.Hits[i]
		if !l1ok || (!o.pol.fill && !hot[h.Index]) || hasMetaState(h) {
			continue
		}
		key := req.Keys[h.Index]
		if o.pending.suspect(key) {
			continue
		}
		if _, err := o.l1.Store(ctx, protocol.CmdSet, key, l1.Item{Value: h.Value, Flags: h.Flags, Exp: exp, Version: h.CAS}); err != nil {
			o.invalidate(ctx, key)
		} else if !hot[h.Index] {
			o.stats.L1Fills.Add(1)
		}
	}
	return nil
}

// flush serves flush_all. With L2: L1, then L2 (the record), then L1
// again. The first L1 flush is takeOut for every key (rend may die after
// L2's flush); the second removes what reads filled from L2 in between (a
// flush takes no key locks). If an L1 flush fails, all of L1 is pending
// (no hit served until a flush lands).
func (o *Orca) flush(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdFlush.Add(1)
	if !o.pol.l2 {
		if err := o.l1.Flush(ctx, req); err != nil {
			return o.fail(resp, "L1", err)
		}
		return nil
	}
	l1flush := func() {
		if !o.l1.Backend().Healthy() || o.l1.Flush(ctx, req) != nil {
			o.stats.L1InvalidationErrors.Add(1)
			o.pending.flushL1()
		}
	}
	l1flush()
	r, err := o.l2.do(ctx, req, req.Exptime)
	if err != nil {
		o.pending.holdEvery()
		return o.fail(resp, "L2", err)
	}
	st := r.Status
	o.pool.PutResp(r)
	if st != protocol.StatusOK {
		resp.ServerError("L2 flush failed")
		return nil
	}
	l1flush()
	return nil
}
