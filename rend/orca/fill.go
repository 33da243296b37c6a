package orca

import (
	"context"
	"sync"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// maxAsyncFills bounds the L1 fills running behind replies already sent.
// Past it a lookup fills inline, as before, so a burst of L1 misses cannot
// pile up goroutines and pooled L2 responses without limit.
const maxAsyncFills = 64

// fillJob is an L1 fill taken off the reply's path: the L2 hits to add
// to L1 (keys copied, since the client's request is reused once its reply
// is written; values in the pooled L2 response, which the job now owns)
// and the stripes the lookup took shared for them, which the job releases
// when its adds are done.
type fillJob struct {
	keys    protocol.Request // keys.Keys[i] is the key of hits.Hits[i]
	hits    *protocol.Response
	stripes []int
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
	j.hits = nil
	if cap(j.keys.Keys) <= 4096 && cap(j.buf.keys) <= 4096 {
		j.keys.Reset()
		o.jobs.Put(j)
	}
}

// fillLinger is how long the fill worker stays parked for the next job
// before it exits (a later job starts a new one).
const fillLinger = time.Second

// fillQueue holds the fill jobs handed off behind their replies and runs
// them on one worker goroutine: each pass takes every job queued so far
// and writes all their adds to L1 in one pipelined batch (one L1 call, one
// write and one wake-up for the lot instead of a goroutine, a call and a
// wake-up per job). While the worker waits for one batch's answer, the
// misses answered meanwhile queue up for the next.
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
	return true
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

// runFills fills L1 with the hits of jobs in one batch, then releases each
// job: its stripes, its L2 response, its slot.
func (o *Orca) runFills(ctx context.Context, jobs []*fillJob, fb *fillBuf) {
	for _, j := range jobs {
		o.fillItems(j.keys.Keys, j.hits.Hits, fb)
	}
	o.stats.L1FillBatches.Add(1)
	o.storeFills(ctx, fb)
	for _, j := range jobs {
		o.locks.runlock(j.stripes)
		o.pool.PutResp(j.hits)
		o.putJob(j)
		<-o.fillSlots
	}
}

// WaitFills waits for the L1 fills running behind replies already sent
// (a clean shutdown lets them finish before closing the backends; tests
// wait for them before looking at L1). It takes every fill slot, so it
// returns once each running fill has given its slot back; fills that
// start meanwhile find no slot and run inline.
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
