package orca

import (
	"context"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// get serves get/gets (and gat without a new exptime).
func (o *Orca) get(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if needsRecord(req) {
		return o.recordRead(ctx, req, resp) // see meta.go
	}
	one := [1]*protocol.Request{req}
	layer, err := o.lookup(ctx, req.Keys, resp, one[:])
	if err == nil && o.needsState(req, resp.Hits) {
		// An L1 item with meta state: the answer (and W) needs the
		// record's item semantics.
		resp.Reset()
		return o.recordRead(ctx, req, resp)
	}
	if err != nil && (layer == "L1" || len(resp.Hits) == 0) {
		return o.fail(resp, layer, err)
	}
	// A failed L2 read still serves the L1 hits, if there are any (a text
	// multi-get cannot report a per-key error); the rest read as misses.
	return nil
}

// needsState reports whether req, a plain read whose lookup found hits,
// must be answered by the record after all: an mg that found an L1 item
// with meta state (l1only, where the chunk header is the record).
func (o *Orca) needsState(req *protocol.Request, hits []protocol.Hit) bool {
	if !o.pol.stateInL1 || !req.Mods.Meta {
		return false
	}
	for i := range hits {
		if hasMetaState(&hits[i]) {
			return true
		}
	}
	return false
}

// HandleGets serves several get/gets/mg requests that a client pipelined
// (server.GetBatcher, RunBatcher for mg) with one lookup of all their
// keys: one L1 multi-get and one L2 burst instead of one of each per
// request. Each request gets exactly what get would have given it alone,
// failures included: an L1 failure in l1only mode fails them all, a failed
// L2 read fails those that had no L1 hit. A plain mg's L2 miss is read as
// an mg (it may take a W token) and a classic read's as a classic one, in
// request order (lookup). Only reads the record must answer (mg with h, l,
// u, N or R: needsRecord) make the batch go request by request.
func (o *Orca) HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	if len(reqs) == 1 || o.anyNeedsRecord(reqs) {
		for i := range reqs {
			errs[i] = o.get(ctx, reqs[i], resps[i])
		}
		return
	}
	all := o.pool.Req()
	defer o.pool.PutReq(all)
	for _, r := range reqs {
		all.Keys = append(all.Keys, r.Keys...)
	}
	defer clear(all.Keys) // they alias the client's requests
	// Look everything up into the first response. Its hits are then in key
	// order, so each request's hits are a run: the first keeps its own,
	// the others move to their request's response with their values left
	// in the first one's arena (no copy; GetBatcher allows it). Failing a
	// response resets only its lengths, so the arena stays intact.
	first := resps[0]
	layer, err := o.lookup(ctx, all.Keys, first, reqs)
	hits := first.Hits
	h, off := 0, 0
	for i, r := range reqs {
		end, resp := off+len(r.Keys), resps[i]
		start := h
		for h < len(hits) && hits[h].Index < end {
			h++
		}
		if i == 0 {
			first.Hits = hits[:h]
		} else {
			for _, x := range hits[start:h] {
				x.Index -= off
				resp.Hits = append(resp.Hits, x)
			}
		}
		if err != nil && (layer == "L1" || h == start) {
			errs[i] = o.fail(resp, layer, err)
		}
		off = end
	}
	if err != nil && layer == "L1" {
		return
	}
	// l1only: an mg that found state is answered by the record, as get
	// does. It may change the item (take its W token), so from there on
	// the batch is served one by one, as the client sent it: a later read
	// of the key sees the change. (Rare: state exists only after md I or
	// mg N.)
	for i, r := range reqs {
		if !o.needsState(r, resps[i].Hits) {
			continue
		}
		// Values of the requests before i stay in resps[0]'s arena,
		// which is reset only if i is 0, and then every request is
		// answered again.
		for j := i; j < len(reqs); j++ {
			resp := resps[j]
			resp.Reset()
			if j == i {
				errs[j] = o.recordRead(ctx, r, resp)
			} else {
				errs[j] = o.get(ctx, reqs[j], resp)
			}
		}
		return
	}
}

// lookup reads keys into resp: L1 first, then (with L2) the misses from L2
// in one burst, filling L1 per the policy; resp.Hits end in key order.
// reqs are the client requests the keys come from, in order (their keys
// are keys): a classic get/gets's keys are read from L2 without taking a
// stale item's W token (protocol.Mods.ClassicRead), as memcached's get
// leaves it for the next mg; a plain mg's take it. A
// failure is returned with its layer, resp keeping what was found before
// it: nothing after an L1 failure in l1only mode, the L1 hits after a
// failed L2 read. The caller decides what the client sees.
func (o *Orca) lookup(ctx context.Context, keys [][]byte, resp *protocol.Response, reqs []*protocol.Request) (layer string, err error) {
	o.stats.CmdGet.Add(uint64(len(keys)))
	// Put-backs that landed so far (see reReadL1), taken before L1 is read.
	var landings uint64
	if o.pol.cache {
		landings = o.locks.landings.Load()
	}
	var l1err error
	if o.pol.cache && !o.l1.Backend().Healthy() {
		// L1 is down: serve from L2 alone rather than wait on it.
		l1err = errL1Down
	} else {
		l1err = o.l1.Get(ctx, keys, resp, false, 0)
	}
	if l1err != nil && !o.pol.cache {
		return "L1", l1err
	}
	if l1err != nil {
		o.stats.L2Fallbacks.Add(1)
	}
	if o.pol.cache && o.pending.any.Load() {
		// Drop hits for keys whose L1 copy may predate a write (see
		// Pending); they are read from L2 below like misses.
		kept := resp.Hits[:0]
		for _, h := range resp.Hits {
			if !o.pending.suspect(keys[h.Index]) {
				kept = append(kept, h)
			}
		}
		resp.Hits = kept
	}
	nL1 := len(resp.Hits)
	o.stats.L1Hits.Add(uint64(nL1))
	defer func() {
		l1.SortHits(resp)
		o.stats.GetHits.Add(uint64(len(resp.Hits)))
		o.stats.GetMisses.Add(uint64(len(keys) - len(resp.Hits)))
	}()
	if !o.pol.cache || nL1 == len(keys) {
		o.stats.L1Misses.Add(uint64(len(keys) - nL1))
		return "", nil
	}

	// The misses go to L2 in one batch.
	// Stack room for a short get's bookkeeping: no allocation then.
	var hitArr [16]bool
	var missArr [16]int
	hit, missIdx := hitArr[:0], missArr[:0]
	if len(keys) > len(hitArr) {
		hit, missIdx = make([]bool, 0, len(keys)), make([]int, 0, len(keys)-nL1)
	}
	hit = hit[:len(keys)]
	for i := range resp.Hits {
		hit[resp.Hits[i].Index] = true
	}
	l2req := o.pool.Req()
	defer o.pool.PutReq(l2req)
	l2req.Command = protocol.CmdGet
	for i, k := range keys {
		if !hit[i] {
			missIdx = append(missIdx, i)
			l2req.Keys = append(l2req.Keys, k)
		}
	}

	// Hold the misses' stripes shared from the L2 read until the fills
	// are done. Without it: we read v1 from L2; a writer sets v2 in L2 and
	// L1 (or deletes the key from both); our fill then adds v1 to L1, where
	// it would be served until it expires. Under the shared lock the writer
	// waits for the fill, then overwrites (or deletes) it.
	var stripeBuf [16]int
	stripes := o.locks.set(stripeBuf[:0], l2req.Keys)
	if o.locks.rlockCounted(stripes) > 0 {
		o.stats.ReadLockWaits.Add(1)
	}
	l2resp := o.pool.Resp()
	handedOff := false // the fill job owns stripes and l2resp
	defer func() {
		if !handedOff {
			o.locks.runlock(stripes)
			o.pool.PutResp(l2resp)
		}
	}()
	if l1err == nil && o.locks.landedSince(stripes, landings) {
		missIdx = o.reReadL1(ctx, l2req, missIdx, resp)
	}
	o.stats.L1Misses.Add(uint64(len(missIdx)))
	if len(missIdx) == 0 {
		return "", nil
	}
	// The misses in key order, cut into runs of one read kind (one run
	// unless classic reads and mg were pipelined together).
	var runArr [4]l2Run
	runs := runArr[:0]
	ri, reqEnd := 0, len(reqs[0].Keys) // the request of key i, and its end
	for _, i := range missIdx {
		for i >= reqEnd {
			ri++
			reqEnd += len(reqs[ri].Keys)
		}
		kind := readClassic
		if reqs[ri].Mods.Meta {
			kind = readMeta
		}
		if len(runs) == 0 || runs[len(runs)-1].kind != kind {
			runs = append(runs, l2Run{kind: kind})
		}
		runs[len(runs)-1].n++
	}
	if err := o.l2.getRuns(ctx, l2req.Keys, runs, l2resp); err != nil {
		return "L2", err
	}
	o.stats.L2Hits.Add(uint64(len(l2resp.Hits)))
	o.stats.L2Misses.Add(uint64(len(missIdx) - len(l2resp.Hits)))
	for i := range l2resp.Hits {
		h := &l2resp.Hits[i]
		h.CopyMeta(resp.AppendHit(missIdx[h.Index], h.Value, h.Flags, h.CAS, h.Exptime))
	}
	if o.pol.fill && l1err == nil && len(l2resp.Hits) > 0 {
		// The hits are in resp already: fill behind the reply when we
		// can (issue 13 item 3), inline when too many fills are running.
		if handedOff = o.fillLater(l2req.Keys, l2resp, stripes); !handedOff {
			j := o.job()
			o.fill(ctx, l2req.Keys, l2resp.Hits, &j.buf)
			o.putJob(j)
		}
	}
	return "", nil
}

// reReadL1 reads the misses of a lookup (l2req.Keys; missIdx[j] is the
// index of l2req.Keys[j] in the lookup's keys) from L1 once more, the
// caller holding their stripes shared, because a write's put-back landed
// on one of those stripes after the lookup's L1 read began (it ran behind
// the writer's reply: putBackLater). The keys found move to resp as L1
// hits and leave l2req and missIdx (returned, shortened).
//
// Why: a client that writes a key and then reads it may find L1 without
// the copy (the put-back still on its way), wait for the stripe, and
// would then read L2. That read is correct but not what memcached shows:
// L2 would count it as the item's first fetch and the copy in L1, put
// there meanwhile, would not know of it, so the next hit would not move
// the item's last access (mg h and l). Read from L1, as the same client
// would have before the put-back went behind the reply, memcached counts
// the fetch on the copy itself. A put-back that landed before the
// lookup's L1 read began was seen by that read; one still out holds the
// stripe, so the caller waited for it.
func (o *Orca) reReadL1(ctx context.Context, l2req *protocol.Request, missIdx []int, resp *protocol.Response) []int {
	again := o.pool.Resp()
	defer o.pool.PutResp(again)
	if o.l1.Get(ctx, l2req.Keys, again, false, 0) != nil || len(again.Hits) == 0 {
		return missIdx
	}
	l1.SortHits(again)
	keys, h, w := l2req.Keys, 0, 0
	for j, k := range keys {
		for h < len(again.Hits) && again.Hits[h].Index < j {
			h++
		}
		if h < len(again.Hits) && again.Hits[h].Index == j && !o.pending.suspect(k) {
			x := &again.Hits[h]
			x.CopyMeta(resp.AppendHit(missIdx[j], x.Value, x.Flags, x.CAS, x.Exptime))
			continue
		}
		keys[w], missIdx[w] = k, missIdx[j]
		w++
	}
	o.stats.L1Hits.Add(uint64(len(keys) - w))
	clear(keys[w:])
	l2req.Keys = keys[:w]
	return missIdx[:w]
}

// fill copies L2 hits into L1 with add, all of them in one L1 batch (the
// caller, or the fill worker that took over from it, holds their stripes
// shared; fb is scratch). add, not set: a concurrent fill of the same
// version may have won already, and nothing newer can have been written
// since our L2 read because writers need the stripe exclusively.
func (o *Orca) fill(ctx context.Context, keys [][]byte, hits []protocol.Hit, fb *fillBuf) {
	o.fillItems(keys, hits, fb)
	o.storeFills(ctx, fb)
}

// fillItems appends to fb the L1 items to add for hits (keys[hit.Index]).
func (o *Orca) fillItems(keys [][]byte, hits []protocol.Hit, fb *fillBuf) {
	for i := range hits {
		h := &hits[i]
		if o.pending.suspect(keys[h.Index]) {
			continue // an ambiguous write may yet change it in L2
		}
		if hasMetaState(h) {
			continue // see meta.go: such items live in L2 only
		}
		fb.keys = append(fb.keys, keys[h.Index])
		// An L2 read that was a later fetch moved the item's last access
		// to now: the copy's first hit is a later fetch too (countFetch).
		// After the item's first fetch the copy's first hit is its second,
		// which does not move the copy's time (README).
		fb.items = append(fb.items, l1.Item{Value: h.Value, Flags: h.Flags, Exp: h.Exptime, Version: h.CAS, CountFetch: h.Fetched})
	}
}

// storeFills adds fb's items to L1 in one batch and resets fb.
func (o *Orca) storeFills(ctx context.Context, fb *fillBuf) {
	defer fb.reset()
	if len(fb.keys) == 0 {
		return
	}
	if err := o.l1.StoreMany(ctx, protocol.CmdAdd, fb.keys, fb.items, fb.statuses()); err != nil {
		o.stats.L1FillErrors.Add(1)
		return // L1 trouble: the next read tries again
	}
	for _, st := range fb.sts {
		switch st {
		case protocol.StatusOK:
			o.stats.L1Fills.Add(1)
		case protocol.StatusNotStored:
			o.stats.L1FillsLost.Add(1)
		default:
			o.stats.L1FillErrors.Add(1)
		}
	}
}
