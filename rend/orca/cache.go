package orca

import (
	"context"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// L1 as a cache of the record (the two-layer modes; in l1only L1 is the
// record and every function here does nothing).
//
// Writes follow one rule (the invariant in rend/README, "Faults"): L1 never
// holds a copy that L2 may no longer hold. So a write takes the key's L1
// copy out *before* asking L2 (takeOut), and puts the result back only
// after L2 accepted it (putBack). Why before and not after: rend can die
// (kill -9, OOM) between any two steps. With "L2, then L1", a death after
// L2 applied the write leaves L1 with the previous value (or a deleted key)
// and nobody left to know it, served until it expires. With "take out, L2,
// put back" every death leaves L1 without a copy or with L2's current one.
// The price is one L1 delete per write; reads are untouched (an L1 hit
// stays one L1 round trip). A reader that finds the key missing meanwhile
// goes to L2 under the stripe's shared lock, so it waits for the write and
// fills L2's new item.
//
// What L2 answered then decides nothing for L1 except whether to put the
// result back: OK puts it back; NOT_STORED, EXISTS and NOT_FOUND leave L2's
// item as it was (memcached does too), and any other refusal (object too
// large, out of memory: memcached unlinks the old item of a failed set) may
// have removed it; L1 is empty either way and the next read refills it.
// An ambiguous outcome (timeout, connection lost after sending) holds the
// key (recordFailed): L2 may still apply the write later.

// l1Copy is what a write did to its key's L1 copy before asking the record.
type l1Copy struct {
	// hot: L1 had a copy (the batch port puts back only those).
	hot bool
	// out: L1 holds no copy now (taken out, or none possible), so the
	// record's result may be put back. False when the take-out failed (the
	// key is pending) and in l1only.
	out bool
}

// noCopy is the l1Copy of a write that needs no take-out: an add succeeds
// only if the record has no item, and then L1 has no copy either (if it
// fails, the record is unchanged).
func (o *Orca) noCopy() l1Copy { return l1Copy{out: o.pol.cache} }

// takeOut deletes key's L1 copy before its record write (see above). If
// the delete does not land, the key is pending (no L1 hit served until a
// background delete lands) and the write leaves L1 alone.
func (o *Orca) takeOut(ctx context.Context, key []byte) l1Copy {
	if !o.pol.cache {
		return l1Copy{}
	}
	if !o.l1.Backend().Healthy() {
		// L1 down or its circuit open: do not wait for it.
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		return l1Copy{}
	}
	had, err := o.l1.Delete(ctx, key)
	if err != nil {
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		o.log.Debug("rend: L1 delete before write failed", "err", err)
		return l1Copy{}
	}
	return l1Copy{hot: had, out: true}
}

// l1Copies is l1Copy for the keys of a multi-key write (gat): hot[i] for
// keys[i]; out if any copy was taken out (a key whose copy was not is
// pending).
type l1Copies struct {
	hot []bool
	out bool
}

// takeOutInto takes the L1 copies of a run of keys out in one pipelined
// batch (takeOut for each), into the caller's hot (len(keys), false on
// entry; a run of sets passes pooled scratch). It reports out: false if
// the batch failed and every key is pending.
func (o *Orca) takeOutInto(ctx context.Context, keys [][]byte, hot []bool) bool {
	var err error = errL1Down
	if o.l1.Backend().Healthy() {
		err = o.l1.DeleteKeys(ctx, keys, hot)
	}
	if err != nil {
		for _, k := range keys {
			o.stats.L1InvalidationErrors.Add(1)
			o.pending.add(k)
		}
		return false
	}
	return true
}

// putBack puts the result of a write the record accepted into L1 (takeOut
// removed the old copy): on the regular port always, on the batch port only
// if the key was in L1 before (hot), so bulk loads do not evict the hot
// set. A failure deletes the key from L1 again: a missing copy only costs a
// refill, while a stale one would be served as a hit.
//
// The caller holds the key's stripe exclusively; stripes are its stripes
// if the put-back may go behind the reply (putBackLater), nil if it must
// be done on return. It reports whether it went behind: then the job owns
// stripes and releases them once L1 answered.
func (o *Orca) putBack(ctx context.Context, key []byte, it l1.Item, c l1Copy, stripes []int) (behind bool) {
	if !o.putBackWanted(key, c.hot, c.out) {
		return false
	}
	if stripes != nil {
		keys, items := [1][]byte{key}, [1]l1.Item{it}
		if o.putBackLater(keys[:], items[:], stripes) {
			return true
		}
	}
	if _, err := o.l1.Store(ctx, protocol.CmdSet, key, it); err != nil {
		o.invalidate(ctx, key)
	}
	return false
}

// putBackWanted reports whether a write's result goes into L1 (putBack):
// the take-out landed (out), the port's policy wants it (the batch port
// only the keys L1 had before, hot; counted), and no pending L1 delete or
// ambiguous L2 write holds the key.
func (o *Orca) putBackWanted(key []byte, hot, out bool) bool {
	if !out {
		return false
	}
	if o.pol.l1Write == protocol.CmdReplace {
		o.stats.replaced(hot)
		if !hot {
			return false
		}
	}
	// L1 may still hold an older copy, or L2 an ambiguous write: leave
	// the key to L2 until that is resolved.
	return !o.pending.suspect(key)
}

// putBackHits puts the items a gat read from the record (resp's hits,
// each with its new expiry exp) back into L1, as putBack does for one
// key: on the regular port all of them (a key L1 did not have counts as a
// fill), on the batch port those L1 had (both ports give L1 the new
// expiry; Rend's batch port left L1 copies at their old one, immortal ones
// included). An item with meta state stays out (see meta.go). All of
// them go in one L1 batch (StoreMany).
func (o *Orca) putBackHits(ctx context.Context, keys [][]byte, resp *protocol.Response, exp int64, c l1Copies) {
	if !c.out {
		return
	}
	j := o.job() // its fillBuf: one L1 batch for all the items
	defer o.putJob(j)
	fb := &j.buf
	defer fb.reset()
	for i := range resp.Hits {
		h := &resp.Hits[i]
		if (!o.pol.fill && !c.hot[h.Index]) || hasMetaState(h) {
			continue
		}
		key := keys[h.Index]
		if o.pending.suspect(key) {
			continue
		}
		fb.keys = append(fb.keys, key)
		// A gat that was a later fetch: see fill.
		fb.items = append(fb.items, l1.Item{Value: h.Value, Flags: h.Flags, Exp: exp, Version: h.CAS, CountFetch: h.Fetched})
		fb.hot = append(fb.hot, c.hot[h.Index])
	}
	if len(fb.keys) == 0 {
		return
	}
	err := o.l1.StoreMany(ctx, protocol.CmdSet, fb.keys, fb.items, fb.statuses())
	for i, k := range fb.keys {
		switch {
		case err != nil || fb.sts[i] != protocol.StatusOK:
			o.invalidate(ctx, k)
		case !fb.hot[i]:
			o.stats.L1Fills.Add(1)
		}
	}
}

// reflectRead brings L1 in line with a read the record answered
// (recordRead), holding the keys' stripes exclusively: an item with meta
// state, or whose expiry the read changed (gat), loses its L1 copy; a
// plain one is filled into L1 as a get's L2 hit would be (add).
//
// noFill leaves L1 alone for plain hits: L1 has a copy already (a failed
// fill's add would count as a bump of it in memcached), or the read was an
// mg u, which must not change what L1 knows of the key.
func (o *Orca) reflectRead(ctx context.Context, req *protocol.Request, resp *protocol.Response, noFill bool) {
	if !o.pol.cache {
		return
	}
	for i := range resp.Hits {
		h := &resp.Hits[i]
		key := req.Keys[h.Index]
		switch {
		case hasMetaState(h), req.Command == protocol.CmdGat:
			o.invalidate(ctx, key)
		case o.pol.fill && !noFill && !o.pending.suspect(key):
			// A read that was a later fetch: see fill (an mg u does not fill).
			if st, err := o.l1.Store(ctx, protocol.CmdAdd, key, l1.Item{Value: h.Value, Flags: h.Flags, Exp: h.Exptime, Version: h.CAS, CountFetch: h.Fetched}); err == nil && st == protocol.StatusOK {
				o.stats.L1Fills.Add(1)
			}
		}
	}
}

// invalidate deletes key's L1 copy after the record changed or refused a
// write; if that fails the key is pending.
func (o *Orca) invalidate(ctx context.Context, key []byte) {
	if !o.pol.cache {
		return
	}
	o.stats.L1Invalidations.Add(1)
	if _, err := o.l1.Delete(ctx, key); err != nil {
		// L1 may still hold the value from before the write: no L1 hit
		// for this key is served until a background delete lands.
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		o.log.Debug("rend: L1 invalidation failed", "err", err)
	}
}

// flushCache flushes L1 around a record flush_all (see flush); if it
// fails, all of L1 is pending (no hit served until a flush lands).
func (o *Orca) flushCache(ctx context.Context, req *protocol.Request) {
	if !o.pol.cache {
		return
	}
	if !o.l1.Backend().Healthy() || o.l1.Flush(ctx, req) != nil {
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.flushL1()
	}
}
