package orca

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Pending remembers keys whose L1 copy cannot be trusted, for two reasons:
//
//   - needs delete: rend had to take the key's copy out of L1 (before or
//     after an L2 write) and the delete failed (L1 unreachable, or timing
//     out, without having restarted), so L1 may still hold the value from
//     before the write. Run deletes it once L1 answers again.
//   - held: an L2 write of the key had an ambiguous outcome (timeout, or
//     the connection died after the request was sent). A stalled mnemonic
//     may still apply it when it resumes, on a connection rend already gave
//     up on, in any order with the requests rend sends on its other
//     connections. Until that can no longer happen, a read of the key must
//     not copy what L2 answers into L1 (it may be the value from before
//     the write), and a later write must not either. The key settles once
//     L2 has answered probes sent after the ambiguity for Settle (see
//     RunL2): a resumed mnemonic drains its socket buffers within
//     milliseconds.
//
// While a key is pending (either reason) no L1 hit for it is served, no
// fill copies it into L1, and writes leave it out of L1; it is read from L2.
// Reads consult Pending only while it is non-empty (one atomic load
// otherwise). Past Max keys Pending stops remembering them one by one: L1
// as a whole becomes suspect (flushed by Run once it answers; the held
// state applies to every key until L2 settles).
//
// Deleting a key from L1 is always safe in the L2 modes (a delete can only
// turn a hit into a refill), so Run needs no key locks: if a newer write or
// fill lands first, it merely costs one refill.
type Pending struct {
	// Max bounds the remembered keys (default 100000).
	Max int
	// Settle is how long L2 must have answered probes sent after an
	// ambiguous write before the key is trusted again (default 1s).
	Settle time.Duration

	any atomic.Bool // keys non-empty, flush or holdAll set; read without mu
	mu  sync.Mutex
	// keys maps each waiting key to its state. Guarded by mu.
	keys map[string]pendingKey
	seq  uint64 // guarded by mu
	// flush is set (with flushSeq) when too many keys piled up: L1 as a
	// whole is suspect until a flush_all issued after the last add succeeds.
	flush    bool   // guarded by mu
	flushSeq uint64 // guarded by mu
	// holdAll (with holdAllAt) is the held state for every key, set when
	// too many keys were held at once. Guarded by mu.
	holdAll   bool
	holdAllAt time.Time
	holdAllOK time.Time // as pendingKey.okAfter
}

// pendingKey is one remembered key.
type pendingKey struct {
	// seq is the sequence number of the latest add, so Run forgets the
	// delete only if nobody re-added the key while it was in flight (that
	// add may stand for a newer stale copy). Zero: no delete needed.
	seq uint64
	// heldAt is when the latest ambiguous L2 write of the key ended; zero:
	// not held.
	heldAt time.Time
	// okAfter is when the first successful L2 probe sent after heldAt was
	// sent, if no probe has failed since; zero otherwise.
	okAfter time.Time
}

func (p *Pending) max() int {
	if p.Max > 0 {
		return p.Max
	}
	return 100000
}

func (p *Pending) settle() time.Duration {
	if p.Settle > 0 {
		return p.Settle
	}
	return time.Second
}

// add remembers that key's L1 copy must be deleted (key is copied).
func (p *Pending) add(key []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	switch {
	case p.flush:
		p.flushSeq = p.seq
	case len(p.keys) >= p.max():
		p.overflow()
		p.flush, p.flushSeq = true, p.seq
	default:
		e := p.entry(key)
		e.seq = p.seq
		p.keys[string(key)] = e
	}
	p.any.Store(true)
}

// flushL1 makes all of L1 suspect until a flush_all lands (an L1 flush
// rend needed failed).
func (p *Pending) flushL1() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	p.flush, p.flushSeq = true, p.seq
	p.any.Store(true)
}

// holdEvery holds every key (an L2 flush_all had an ambiguous outcome).
func (p *Pending) holdEvery() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdAll, p.holdAllAt, p.holdAllOK = true, time.Now(), time.Time{}
	p.any.Store(true)
}

// hold remembers that an L2 write of key had an ambiguous outcome.
func (p *Pending) hold(key []byte) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.holdAll:
		p.holdAllAt, p.holdAllOK = now, time.Time{}
	case len(p.keys) >= p.max():
		p.overflow()
		p.holdAll, p.holdAllAt, p.holdAllOK = true, now, time.Time{}
	default:
		e := p.entry(key)
		e.heldAt, e.okAfter = now, time.Time{}
		p.keys[string(key)] = e
	}
	p.any.Store(true)
}

// entry returns key's state (zero if new). Caller holds mu.
func (p *Pending) entry(key []byte) pendingKey {
	if p.keys == nil {
		p.keys = make(map[string]pendingKey)
	}
	return p.keys[string(key)]
}

// overflow gives up on the per-key list: whatever it said now holds for
// every key (a flush of L1 if any key needed a delete, every key held if
// any was held). Caller holds mu.
func (p *Pending) overflow() {
	for _, e := range p.keys {
		if e.seq != 0 && !p.flush {
			p.flush, p.flushSeq = true, p.seq
		}
		if !e.heldAt.IsZero() && (!p.holdAll || e.heldAt.After(p.holdAllAt)) {
			p.holdAll, p.holdAllAt, p.holdAllOK = true, e.heldAt, time.Time{}
		}
	}
	p.keys = nil
}

// suspect reports whether L1 must be bypassed for key: no hit served, no
// fill, no write-through.
func (p *Pending) suspect(key []byte) bool {
	if !p.any.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flush || p.holdAll {
		return true
	}
	_, ok := p.keys[string(key)]
	return ok
}

// Len is the number of keys waiting (for stats); -1 while every key is
// suspect (a flush is due or every key is held).
func (p *Pending) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flush || p.holdAll {
		return -1
	}
	return len(p.keys)
}

// updateAny recomputes the lock-free flag. Caller holds mu.
func (p *Pending) updateAny() {
	p.any.Store(len(p.keys) != 0 || p.flush || p.holdAll)
}

// Drain deletes the waiting keys from L1, be (or flushes it), and forgets the
// deletes that landed. It returns the number of keys still pending (-1:
// every key is).
func (p *Pending) Drain(ctx context.Context, be Backend) int {
	if !p.any.Load() {
		return 0
	}
	p.mu.Lock()
	flush, flushSeq := p.flush, p.flushSeq
	type entry struct {
		key string
		seq uint64
	}
	var list []entry
	if !flush {
		for k, e := range p.keys {
			if e.seq != 0 {
				list = append(list, entry{k, e.seq})
			}
		}
	}
	p.mu.Unlock()

	var done []entry
	flushed := false
	if flush {
		req, resp := &protocol.Request{Command: protocol.CmdFlushAll}, new(protocol.Response)
		flushed = be.Handle(ctx, req, resp) == nil && resp.Status == protocol.StatusOK
	}
	const batchSize = 512
	for len(list) > 0 {
		n := min(len(list), batchSize)
		reqs := make([]*protocol.Request, n)
		resps := make([]*protocol.Response, n)
		for i := range reqs {
			reqs[i] = &protocol.Request{Command: protocol.CmdDelete}
			l1.AddKey(reqs[i], []byte(list[i].key))
			resps[i] = new(protocol.Response)
		}
		err := be.Do(ctx, reqs, resps)
		for i := range reqs {
			if err == nil && (resps[i].Status == protocol.StatusOK || resps[i].Status == protocol.StatusNotFound) {
				done = append(done, list[i])
			}
		}
		list = list[n:]
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if flushed && p.flush && p.flushSeq == flushSeq {
		p.flush = false
	}
	for _, d := range done {
		if e, ok := p.keys[d.key]; ok && e.seq == d.seq {
			e.seq = 0
			if e.heldAt.IsZero() {
				delete(p.keys, d.key)
			} else {
				p.keys[d.key] = e
			}
		}
	}
	p.updateAny()
	return p.lenLocked()
}

func (p *Pending) lenLocked() int {
	if p.flush || p.holdAll {
		return -1
	}
	return len(p.keys)
}

// needsDrain reports whether some key waits for an L1 delete or flush.
func (p *Pending) needsDrain() bool {
	if !p.any.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flush {
		return true
	}
	for _, e := range p.keys {
		if e.seq != 0 {
			return true
		}
	}
	return false
}

// held reports whether some key (or every key) is held.
func (p *Pending) held() bool {
	if !p.any.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holdAll {
		return true
	}
	for _, e := range p.keys {
		if !e.heldAt.IsZero() {
			return true
		}
	}
	return false
}

// Probe sends one probe (version) to l2 and releases the held keys that
// have settled: a probe sent after the key's ambiguous write succeeded, and
// so has every probe since, for at least Settle. That shows mnemonic has
// been running for Settle since the ambiguity, long enough to have applied
// whatever it still had queued from rend. It returns the number of keys
// still pending (-1: every key is).
func (p *Pending) Probe(ctx context.Context, l2 Backend) int {
	sent := time.Now()
	req, resp := &protocol.Request{Command: protocol.CmdVersion}, new(protocol.Response)
	err := l2.Handle(ctx, req, resp)
	p.mu.Lock()
	defer p.mu.Unlock()
	// step advances one held state; it reports whether it settled.
	step := func(heldAt time.Time, okAfter *time.Time) bool {
		switch {
		case err != nil:
			*okAfter = time.Time{}
			return false
		case okAfter.IsZero():
			if sent.After(heldAt) {
				*okAfter = sent
			}
			return false
		}
		return time.Since(*okAfter) >= p.settle()
	}
	if p.holdAll && step(p.holdAllAt, &p.holdAllOK) {
		p.holdAll = false
	}
	for k, e := range p.keys {
		if e.heldAt.IsZero() {
			continue
		}
		if step(e.heldAt, &e.okAfter) {
			e.heldAt, e.okAfter = time.Time{}, time.Time{}
		}
		if e.heldAt.IsZero() && e.seq == 0 {
			delete(p.keys, k)
		} else {
			p.keys[k] = e
		}
	}
	p.updateAny()
	return p.lenLocked()
}

// Run drains every interval while L1 is healthy, until ctx ends. It waits
// for L1 to have been healthy at two ticks in a row: an L1 that was frozen
// applies what it had queued from rend when it resumes (a write-through
// of an older value included), on connections rend gave up on, in any
// order with new requests; the delete must land after that.
func (p *Pending) Run(ctx context.Context, l1 Backend, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	wasHealthy := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		healthy := l1.Healthy()
		ready := healthy && wasHealthy
		wasHealthy = healthy
		if !ready || !p.needsDrain() {
			continue
		}
		if left := p.Drain(ctx, l1); left != 0 {
			log.Warn("rend: L1 still holds possibly stale keys", "waiting", left)
		}
	}
}

// RunL2 probes L2 every interval while keys are held, until ctx ends (see
// Probe). Each probe waits for L2's answer (bounded by the backend's own
// timeout), so a stalled L2 is probed once per timeout.
func (p *Pending) RunL2(ctx context.Context, l2 Backend, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !p.held() {
			continue
		}
		p.Probe(ctx, l2)
	}
}
