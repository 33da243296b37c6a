package orca

import (
	"context"
	"sync"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// maxAsyncFills bounds the L1 fills and put-backs running behind replies
// already sent. Past it a lookup fills (a write puts back) inline, as
// before, so a burst of L1 misses or writes cannot pile up jobs, pooled
// responses and held stripes without limit.
const maxAsyncFills = 64

// fillJob is an L1 write taken off the reply's path. A fill: the L2 hits
// to add to L1 (keys copied, since the client's request is reused once its
// reply is written; values in the pooled L2 response, which the job now
// owns) and the stripes the lookup took shared for them, which the job
// releases when its adds are done. A put-back (put): the items a write
// puts into L1 with set once L2 accepted it (keys and values copied), and
// the stripes the write took exclusively, released when L1 answered.
type fillJob struct {
	keys    protocol.Request // keys.Keys[i] is the key of hits.Hits[i]
	hits    *protocol.Response
	stripes []int
	put     bool // a put-back (putBackLater): stripes are held exclusively
	buf     fillBuf
}

// fillBuf is fill's scratch: the items of one L1 batch.
type fillBuf struct {
	keys  [][]byte
	items []l1.Item
	sts   []protocol.Status
	hot   []bool // putBackHits: L1 had the key before
}

// statuses returns sts sized for the items.
func (b *fillBuf) statuses() []protocol.Status {
	if cap(b.sts) < len(b.keys) {
		b.sts = make([]protocol.Status, len(b.keys))
	}
	b.sts = b.sts[:len(b.keys)]
	return b.sts
}

// reset drops the references to keys and values (they belong to the
// request and response of the lookup or job).
func (b *fillBuf) reset() {
	clear(b.keys)
	clear(b.items)
	b.keys, b.items, b.hot = b.keys[:0], b.items[:0], b.hot[:0]
}

// job returns a pooled fillJob (also lent to an inline fill for its
// scratch); putJob gives it back.
func (o *Orca) job() *fillJob {
	if j, _ := o.jobs.Get().(*fillJob); j != nil {
		return j
	}
	return new(fillJob)
}

func (o *Orca) putJob(j *fillJob) {
	j.hits, j.put = nil, false
	if cap(j.keys.Keys) <= 4096 && cap(j.buf.keys) <= 4096 {
		j.keys.Reset()
		o.jobs.Put(j)
	}
}

// fillLinger is how long the fill worker stays parked for the next job
// before it exits (a later job starts a new one).
const fillLinger = time.Second

// fillQueue holds the fill and put-back jobs handed off behind their
// replies and runs them on one worker goroutine: each pass takes every job
// queued so far and writes all their adds to L1 in one pipelined batch,
// and all their put-backs in another (one L1 call, one write and one
// wake-up for each lot instead of a goroutine, a call and a wake-up per
// job). While the worker waits for one batch's answer, the misses and
// writes answered meanwhile queue up for the next.
type fillQueue struct {
	mu      sync.Mutex
	jobs    []*fillJob
	running bool          // a worker exists (it will look at jobs again)
	parked  bool          // the worker waits on wake
	wake    chan struct{} // cap 1
}

// fillLater hands the L1 fill of hits (L2 hits for keys[hit.Index]) to
// the fill worker, so the reply goes out before the adds' round trip. The
// caller holds stripes shared; on true the job owns them and hits (the
// caller must neither release them nor touch hits again), on false
// (maxAsyncFills jobs queued or running) nothing changed and the caller
// fills inline.
//
// Why it is safe to answer first: the stripes stay held shared until
// the adds are done, exactly as when the fill ran inline, so a writer of
// one of these keys still waits for the fill and then overwrites or
// deletes it (see lookup). A read of the same key meanwhile misses L1 and
// reads L2 again: its own fill is an add of the same version, which loses
// or wins harmlessly (also when both adds end up in one batch: L1 applies
// them in order).
func (o *Orca) fillLater(keys [][]byte, hits *protocol.Response, stripes []int) bool {
	select {
	case o.fillSlots <- struct{}{}:
	default:
		return false
	}
	j := o.job()
	for i := range hits.Hits {
		h := &hits.Hits[i]
		j.keys.AddKey(keys[h.Index])
		h.Index = i
	}
	j.hits = hits
	j.stripes = append(j.stripes[:0], stripes...)
	o.queue(j)
	return true
}

// maxPutBackLater bounds the value bytes of the put-back one write hands
// to the fill worker (they are copied, and up to maxAsyncFills jobs may
// wait): a larger one (chunked megabytes) is put back inline as before.
const maxPutBackLater = 64 << 10

// putBackLater hands the put-back of a write L2 accepted (items[i] under
// keys[i], with set: putBack's L1 update, checked already) to the fill
// worker, so the client's reply goes out before L1's round trip. The
// caller holds stripes, the keys' stripes, exclusively; on true the job
// owns them (the caller must not release them) and has copied keys and
// items; on false (no slot free, or too many bytes) nothing changed and
// the caller puts back inline.
//
// Why answering first is safe (the order of DESIGN §4 is kept: L1's copy
// out, L2, then L1 with L2's result): L1's copy was taken out before L2
// was asked, so from the reply until the put-back lands L1 has no copy of
// the key, and rend dying meanwhile leaves none. A read that misses L1 in
// that window needs the stripe (shared) for its L2 read, so it waits until
// the put-back landed (or failed and was deleted) and then reads L2's new
// item: the writer's own next get, on the same connection or any other,
// sees the new value, never the old. A later write of the key, and a
// flush_all (Locks.lockAll), wait for the stripe just as they waited for
// the inline put-back. A failed put-back still deletes the key from L1
// (runFills) before the stripe is released.
func (o *Orca) putBackLater(keys [][]byte, items []l1.Item, stripes []int) bool {
	n := 0
	for i := range items {
		n += len(items[i].Value)
	}
	if n > maxPutBackLater {
		return false
	}
	select {
	case o.fillSlots <- struct{}{}:
	default:
		return false
	}
	j := o.job()
	j.put = true
	j.hits = o.pool.Resp()
	for i, k := range keys {
		j.keys.AddKey(k)
		it := &items[i]
		j.hits.AppendHit(i, it.Value, it.Flags, it.Version, it.Exp).Fetched = it.CountFetch
	}
	j.stripes = append(j.stripes[:0], stripes...)
	o.queue(j)
	return true
}

// queue adds j to the fill worker's queue, starting or waking the worker.
func (o *Orca) queue(j *fillJob) {
	q := &o.fills
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	start := !q.running
	if start {
		q.running = true
	} else if q.parked {
		q.parked = false
		select {
		case q.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	q.mu.Unlock()
	if start {
		go o.fillWorker()
	}
}

// fillWorker runs the queued fill jobs, a batch of all of them at a time,
// and exits after fillLinger without work. Its context is its own: a fill
// runs after its client's reply (the client may be gone) and is bounded
// by L1's request timeout. A batch that waits for a stalled L1 makes the
// jobs queued behind it wait too, each holding its stripes shared: at
// most two L1 timeouts, after which L1 is marked down and lookups stop
// filling.
func (o *Orca) fillWorker() {
	q := &o.fills
	ctx := context.Background()
	var batch []*fillJob
	var fb fillBuf
	t := time.NewTimer(fillLinger)
	defer t.Stop()
	idle := false
	for {
		q.mu.Lock()
		q.parked = false
		if len(q.jobs) == 0 {
			if idle {
				q.running = false
				q.mu.Unlock()
				return
			}
			q.parked = true
			q.mu.Unlock()
			t.Reset(fillLinger)
			select {
			case <-q.wake:
			case <-t.C:
				idle = true
			}
			continue
		}
		batch, q.jobs = q.jobs, batch[:0]
		q.mu.Unlock()
		idle = false
		o.runFills(ctx, batch, &fb)
		clear(batch)
	}
}

// runFills fills L1 with the hits of the fill jobs in one batch and puts
// back the items of the put-back jobs in another, then releases each job:
// its stripes, its response, its slot. A fill and a put-back never share
// a key (a put-back holds its stripe exclusively, a fill shared), so the
// two batches need no order between them.
func (o *Orca) runFills(ctx context.Context, jobs []*fillJob, fb *fillBuf) {
	fills, puts := false, false
	for _, j := range jobs {
		if j.put {
			puts = true
			continue
		}
		fills = true
		o.fillItems(j.keys.Keys, j.hits.Hits, fb)
	}
	if fills {
		o.stats.L1FillBatches.Add(1)
		o.storeFills(ctx, fb)
	}
	if puts {
		for _, j := range jobs {
			if j.put {
				o.putBackItems(j.keys.Keys, j.hits.Hits, fb)
			}
		}
		o.stats.L1PutBackBatches.Add(1)
		o.storePutBacks(ctx, fb)
	}
	for _, j := range jobs {
		if j.put {
			o.locks.land(j.stripes)
			o.locks.unlock(j.stripes)
		} else {
			o.locks.runlock(j.stripes)
		}
		o.pool.PutResp(j.hits)
		o.putJob(j)
		<-o.fillSlots
	}
}

// putBackItems appends to fb the L1 items of a put-back job (keys[i] is
// the key of hits[i]).
func (o *Orca) putBackItems(keys [][]byte, hits []protocol.Hit, fb *fillBuf) {
	for i := range hits {
		h := &hits[i]
		if o.pending.suspect(keys[i]) {
			continue // see putBack
		}
		fb.keys = append(fb.keys, keys[i])
		fb.items = append(fb.items, l1.Item{Value: h.Value, Flags: h.Flags, Exp: h.Exptime, Version: h.CAS, CountFetch: h.Fetched})
	}
}

// storePutBacks sets fb's items in L1 in one batch and resets fb; a key
// L1 did not take is deleted from L1 again (see putBack).
func (o *Orca) storePutBacks(ctx context.Context, fb *fillBuf) {
	defer fb.reset()
	if len(fb.keys) == 0 {
		return
	}
	err := o.l1.StoreMany(ctx, protocol.CmdSet, fb.keys, fb.items, fb.statuses())
	for i, k := range fb.keys {
		if err != nil || fb.sts[i] != protocol.StatusOK {
			o.invalidate(ctx, k)
		}
	}
}

// WaitFills waits for the L1 fills and put-backs running behind replies
// already sent (a clean shutdown lets them finish before closing the
// backends; tests wait for them before looking at L1). It takes every
// fill slot, so it returns once each running job has given its slot
// back; fills and put-backs that start meanwhile find no slot and run
// inline.
func (o *Orca) WaitFills() {
	o.waitMu.Lock() // two waiters taking slots in turn could starve each other
	defer o.waitMu.Unlock()
	for range cap(o.fillSlots) {
		o.fillSlots <- struct{}{}
	}
	for range cap(o.fillSlots) {
		<-o.fillSlots
	}
}
