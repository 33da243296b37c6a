package orca

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// The write handlers, one shape in every mode: hold the keys' stripes
// exclusively for the whole sequence, take L1's copy out (cache.go), apply
// the request to the record (record.go: L2, or L1 itself in l1only), then
// reflect the record's answer into L1 per the policy (policy.go).

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
	stripes := o.lockKeys(buf[:0], req.Keys)
	behind := false // the put-back behind the reply holds stripes (putBack)
	defer func() {
		if !behind {
			o.locks.unlock(stripes)
		}
	}()

	c := o.noCopy() // an add needs no take-out (see noCopy)
	if req.Command != protocol.CmdAdd {
		c = o.takeOut(ctx, key)
	}
	if err := o.rec.store(ctx, req, resp, exp); err != nil {
		return o.recordFailed(resp, req.Keys[:1], err)
	}
	switch resp.Status {
	case protocol.StatusOK:
		// ms I may have stored a stale item, which lives in the record
		// only (see meta.go); L1's copy is out already.
		if !req.Invalidate {
			behind = o.putBack(ctx, key, l1.Item{Value: req.Value, Flags: req.Flags, Exp: exp, Version: resp.CAS}, c, stripes)
		}
	case protocol.StatusNotStored, protocol.StatusExists, protocol.StatusNotFound:
		// The record kept its item unchanged.
	default:
		// Too large, out of memory, any other refusal: the record may have
		// dropped its item. Only an add still has an L1 copy to drop.
		if req.Command == protocol.CmdAdd && c.out {
			o.invalidate(ctx, key)
		}
	}
	return nil
}

// modify serves append/prepend/incr/decr.
func (o *Orca) modify(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	counter := req.Command == protocol.CmdIncr || req.Command == protocol.CmdDecr
	if counter {
		o.stats.CmdIncr.Add(1)
	} else {
		o.stats.CmdSet.Add(1)
	}
	key := req.Key()
	exp := memcExp(req.Exptime, time.Now())
	var buf [1]int
	stripes := o.lockKeys(buf[:0], req.Keys)
	behind := false // see store
	defer func() {
		if !behind {
			o.locks.unlock(stripes)
		}
	}()

	var c l1Copy
	if counter {
		// An incr in place keeps the item's fetched bit: the fetches only
		// L1's copy saw go to L2 with the ma (mnemonic's A flag).
		var acc int64
		c, acc = o.takeOutWithFetches(ctx, key)
		if acc > 0 {
			req.Mods.PeerAccess = acc
			defer func() { req.Mods.PeerAccess = 0 }()
		}
	} else {
		c = o.takeOut(ctx, key)
	}
	back, err := o.rec.modify(ctx, req, resp, exp)
	if err != nil {
		return o.recordFailed(resp, req.Keys[:1], err)
	}
	if back != nil {
		// The item as the record now holds it (rend does not know an
		// append's value or an incr's flags and expiry); a counter fetched
		// before (its read-back's h) counts a fetch of its copy, as a fill
		// does.
		h := &back.Hits[0]
		behind = o.putBack(ctx, key, l1.Item{Value: h.Value, Flags: h.Flags, Exp: h.Exptime, Version: h.CAS, CountFetch: h.Fetched}, c, stripes)
		o.pool.PutResp(back)
	}
	return nil
}

// deleteOrTouch serves delete and touch: the record drops the item or
// changes when it expires. L1's copy, which would keep the old value or
// expiry, goes first whatever the record will say (see takeOut): a delete
// must not leave a copy in L1 even if rend dies right after the record's,
// and a refused compare (EXISTS) only costs the next read a refill. Nothing
// is put back: the next read refills the key with its new expiry.
func (o *Orca) deleteOrTouch(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	touch := req.Command == protocol.CmdTouch
	if touch {
		o.stats.CmdTouch.Add(1)
	} else {
		o.stats.CmdDelete.Add(1)
	}
	key := req.Key()
	exp := memcExp(req.Exptime, time.Now()) // also md I T's: absolute, as any other
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))

	switch {
	case touch:
		// The item lives on in the record: keep the fetches L1 saw.
		o.takeOutKeepingFetches(ctx, key, true, exp)
	case req.Invalidate:
		o.takeOutKeepingFetches(ctx, key, false, 0)
	default:
		o.takeOut(ctx, key)
	}
	var err error
	if touch {
		err = o.rec.touch(ctx, req, resp, exp)
	} else {
		err = o.rec.delete(ctx, req, resp, exp)
	}
	if err != nil {
		return o.recordFailed(resp, req.Keys[:1], err)
	}
	return nil
}

// gat serves gat/gats: a read that also sets a new expiry, so a write.
func (o *Orca) gat(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdGet.Add(uint64(len(req.Keys)))
	o.stats.CmdTouch.Add(uint64(len(req.Keys)))
	if needsRecord(req) || (o.pol.stateInL1 && req.Mods.Meta) {
		return o.recordRead(ctx, req, resp) // see meta.go
	}
	exp := memcExp(req.Exptime, time.Now())
	stripes := o.lockKeys(make([]int, 0, len(req.Keys)), req.Keys)
	defer o.locks.unlock(stripes)
	defer func() {
		l1.SortHits(resp)
		o.stats.GetHits.Add(uint64(len(resp.Hits)))
		o.stats.GetMisses.Add(uint64(len(req.Keys) - len(resp.Hits)))
	}()
	// L1's copies out first (a gat is a touch: see takeOut), then the
	// record, which returns each item with its new expiry (l1only: L1
	// rewrites the headers), then put the items back (putBackHits).
	// gat is a fetch: keep the ones only L1 saw (see meta.go).
	var c l1Copies
	if len(req.Keys) == 1 {
		k := o.takeOutKeepingFetches(ctx, req.Keys[0], true, exp)
		c = l1Copies{hot: []bool{k.hot}, out: k.out}
	} else {
		c = o.takeOutKeysKeepingFetches(ctx, req.Keys, exp)
	}
	if err := o.rec.read(ctx, req, resp, exp); err != nil {
		return o.recordFailed(resp, req.Keys, err)
	}
	if resp.Status == protocol.StatusOK {
		o.putBackHits(ctx, req.Keys, resp, exp, c)
	}
	return nil
}

// flush serves flush_all. With L2: L1, then L2 (the record), then L1
// again. The first L1 flush is takeOut for every key (rend may die after
// L2's flush); the second removes what reads filled from L2 before L2's
// flush. It runs with every key stripe held exclusively: a fill holds its
// keys' stripes shared from its L2 read until L1 acknowledged its add
// (also behind the reply, fill.go), and a write holds them from its L2
// write through its L1 put-back, so once all stripes are ours, every
// copy read or written before L2's flush has landed in L1 and the second
// flush removes it; what starts later reads the flushed L2. Without the
// stripes a fill queued behind a get's reply could land after the second
// flush and serve the flushed value (a client's get, flush_all, get).
// A delayed flush_all is followed by one more L1 flush once the delay
// has passed (flushLater).
func (o *Orca) flush(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdFlush.Add(1)
	o.flushCache(ctx, req)
	if err := o.rec.flush(ctx, req, resp); err != nil {
		return o.recordFailed(resp, nil, err)
	}
	if resp.Status == protocol.StatusOK {
		if o.pol.cache {
			o.locks.lockAll()
			o.flushCache(ctx, req)
			o.locks.unlockAll()
		}
		o.flushLater(req)
	}
	return nil
}

// flushSettle is how long after a delayed flush_all's moment rend flushes
// L1 once more: memcached and mnemonic apply the delay on their own clocks
// (memcached's ticks in whole seconds), so the extra flush waits until
// both have surely passed it.
const flushSettle = 2 * time.Second

// flushLater follows a delayed flush_all (Exptime > 0: seconds from now,
// or a unix time past 30 days, as memcached reads it) with an immediate
// L1 flush under every stripe once the moment has passed: a fill that
// read a value from L2 before the moment could add it to L1 after L1's
// own flush took effect, where nothing would remove it. Like memcached,
// whose newest flush_all replaces an earlier pending one, a new flush_all
// cancels the follow-up of the previous one.
func (o *Orca) flushLater(req *protocol.Request) {
	if !o.pol.cache {
		return
	}
	o.flushMu.Lock()
	defer o.flushMu.Unlock()
	if o.flushTimer != nil {
		o.flushTimer.Stop()
		o.flushTimer = nil
	}
	if !req.HasExptime || req.Exptime <= 0 {
		return
	}
	at := time.Now().Add(time.Duration(req.Exptime) * time.Second)
	if req.Exptime > protocol.MaxRelativeExptime {
		at = time.Unix(req.Exptime, 0)
	}
	o.flushTimer = time.AfterFunc(time.Until(at)+flushSettle, func() {
		flush := o.pool.Req()
		defer o.pool.PutReq(flush)
		flush.Command = protocol.CmdFlushAll
		o.locks.lockAll()
		o.flushCache(context.Background(), flush)
		o.locks.unlockAll()
	})
}
