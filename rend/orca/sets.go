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
// L1 in one batch (behind the replies, as store's put-back: putBackLater):
// three round trips for the run instead of three per set.
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
	sc := o.setScratch(len(reqs))
	defer o.putSetScratch(sc)
	keys := sc.keys
	for i, r := range reqs {
		keys[i] = r.Key()
	}
	sc.stripes = o.lockKeys(sc.stripes[:0], keys)
	behind := false // the put-back behind the replies holds the stripes
	defer func() {
		if !behind {
			o.locks.unlock(sc.stripes)
		}
	}()

	out := o.takeOutInto(ctx, keys, sc.hot)
	now := time.Now()
	for i, r := range reqs {
		sc.exps[i] = memcExp(r.Exptime, now)
	}
	if err := o.l2.storeRun(ctx, reqs, sc.exps, resps, sc.l2reqs, sc.l2resps); err != nil {
		for i := range reqs {
			errs[i] = o.recordFailed(resps[i], keys[i:i+1], err)
		}
		return
	}
	if !out {
		return // the take-out failed: the keys are pending, L1 is left alone
	}
	// Put back the last set of each key, if L2 accepted it.
	put, items := sc.put[:0], sc.items[:0]
	for i, r := range reqs {
		if resps[i].Status != protocol.StatusOK || laterSetOf(keys, i) {
			continue
		}
		// Whether L1 had the key before the run (the batch port's
		// question): its first take-out says (a later one of the same key
		// finds nothing).
		hot := o.pol.l1Write == protocol.CmdReplace && sc.hot[firstSetOf(keys, i)]
		if !o.putBackWanted(keys[i], hot, true) {
			continue
		}
		put = append(put, keys[i])
		items = append(items, l1.Item{Value: r.Value, Flags: r.Flags, Exp: sc.exps[i], Version: resps[i].CAS})
	}
	sc.put, sc.items = put, items
	if len(put) == 0 {
		return
	}
	// Behind the replies when we can (putBackLater: the run's stripes
	// stay held until L1 answered), else here.
	if behind = o.putBackLater(put, items, sc.stripes); behind {
		return
	}
	sts := sc.sts[:len(put)]
	err := o.l1.StoreMany(ctx, protocol.CmdSet, put, items, sts)
	for i, k := range put {
		if err != nil || sts[i] != protocol.StatusOK {
			o.invalidate(ctx, k) // see putBack
		}
	}
}

// setScratch is the per-run state of HandleSets, pooled in Orca.runs so
// that a run allocates nothing: every slice has the run's length (put and
// items its capacity) and holds no pointer between runs.
type setScratch struct {
	keys    [][]byte
	stripes []int
	hot     []bool
	exps    []int64
	l2reqs  []*protocol.Request
	l2resps []*protocol.Response
	put     [][]byte
	items   []l1.Item
	sts     []protocol.Status
}

// setScratch returns pooled scratch sized for a run of n sets.
func (o *Orca) setScratch(n int) *setScratch {
	sc, _ := o.runs.Get().(*setScratch)
	if sc == nil {
		sc = new(setScratch)
	}
	if cap(sc.keys) < n {
		*sc = setScratch{stripes: sc.stripes,
			keys: make([][]byte, n), hot: make([]bool, n), exps: make([]int64, n),
			l2reqs: make([]*protocol.Request, n), l2resps: make([]*protocol.Response, n),
			put: make([][]byte, 0, n), items: make([]l1.Item, 0, n), sts: make([]protocol.Status, n)}
	}
	sc.keys, sc.hot, sc.exps = sc.keys[:n], sc.hot[:n], sc.exps[:n]
	sc.l2reqs, sc.l2resps, sc.sts = sc.l2reqs[:n], sc.l2resps[:n], sc.sts[:n]
	return sc
}

// putSetScratch drops what sc points at (the client's keys and values)
// and pools it.
func (o *Orca) putSetScratch(sc *setScratch) {
	clear(sc.keys)
	clear(sc.hot)
	clear(sc.put)
	clear(sc.items)
	sc.put, sc.items = sc.put[:0], sc.items[:0]
	o.runs.Put(sc)
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

// firstSetOf is the index of the first request of the run that sets
// keys[i].
func firstSetOf(keys [][]byte, i int) int {
	for j, k := range keys[:i] {
		if string(k) == string(keys[i]) {
			return j
		}
	}
	return i
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
