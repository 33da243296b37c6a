package orca

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// HandleSets serves a run of sets a client pipelined (server.RunBatcher)
// as one write of all their keys, in the two-layer modes: the keys'
// stripes held exclusively for the whole run, L1's copies taken out in
// one L1 batch, the sets sent to L2 in one pipelined burst (mnemonic
// commits such a run as one write batch), and the results put back into
// L1 in one batch: three round trips for the run instead of three per set.
// Each request gets what store would have given it alone, with the effects
// in request order: L2 applies the burst in order, and only the last set of
// a key in the run may reach L1 (if L2 accepted it; an earlier value must
// not, a later refusal may have dropped L2's item). Anything but a plain
// set (a compare, ms I or E, l1only where L1 is the record) and runs of
// one go request by request through Handle.
func (o *Orca) HandleSets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	if !o.pol.cache || len(reqs) == 1 || !plainSets(reqs) {
		for i := range reqs {
			errs[i] = o.Handle(ctx, reqs[i], resps[i])
		}
		return
	}
	o.stats.CmdSet.Add(uint64(len(reqs)))
	keys := make([][]byte, len(reqs)) // a run of pipelined sets: one allocation per run
	for i, r := range reqs {
		keys[i] = r.Key()
	}
	stripes := o.lockKeys(make([]int, 0, len(keys)), keys)
	defer o.locks.unlock(stripes)

	c := o.takeOutKeys(ctx, keys)
	now := time.Now()
	exps := make([]int64, len(reqs))
	for i, r := range reqs {
		exps[i] = memcExp(r.Exptime, now)
	}
	if err := o.l2.storeRun(ctx, reqs, exps, resps); err != nil {
		for i := range reqs {
			errs[i] = o.recordFailed(resps[i], keys[i:i+1], err)
		}
		return
	}
	if !c.out {
		return // the take-out failed: the keys are pending, L1 is left alone
	}
	// Put back the last set of each key, if L2 accepted it.
	var put [][]byte
	var items []l1.Item
	for i, r := range reqs {
		if resps[i].Status != protocol.StatusOK || laterSetOf(keys, i) {
			continue
		}
		if o.pol.l1Write == protocol.CmdReplace {
			o.stats.replaced(c.hot[i])
			if !c.hot[i] {
				continue
			}
		}
		if o.pending.suspect(keys[i]) {
			continue // see putBack
		}
		put = append(put, keys[i])
		items = append(items, l1.Item{Value: r.Value, Flags: r.Flags, Exp: exps[i], Version: resps[i].CAS})
	}
	if len(put) == 0 {
		return
	}
	sts := make([]protocol.Status, len(put))
	err := o.l1.StoreMany(ctx, protocol.CmdSet, put, items, sts)
	for i, k := range put {
		if err != nil || sts[i] != protocol.StatusOK {
			o.invalidate(ctx, k) // see putBack
		}
	}
}

// plainSets reports whether every request of a run is a plain set: no
// compare value, no ms I (a stale item lives in L2 only), no explicit
// version.
func plainSets(reqs []*protocol.Request) bool {
	for _, r := range reqs {
		if r.Command != protocol.CmdSet || r.CAS != 0 || r.Invalidate || r.NewCAS != 0 || len(r.Keys) != 1 {
			return false
		}
	}
	return true
}

// laterSetOf reports whether a request after i in the run sets keys[i].
func laterSetOf(keys [][]byte, i int) bool {
	for _, k := range keys[i+1:] {
		if string(k) == string(keys[i]) {
			return true
		}
	}
	return false
}
