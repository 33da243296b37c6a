package orca

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Pending remembers keys whose L1 copy may be stale: L2 accepted a write,
// updating L1 failed, and so did the delete meant to take the old copy out
// (L1 unreachable, or timing out, without having restarted). Until such a
// key is deleted from L1, an L1 hit for it must not be served, because it
// may be the value from before the write.
//
// Reads consult Pending only while it is non-empty (one atomic load
// otherwise). Drain, run in the background by main, deletes the keys from
// L1 once L1 answers again; if more than Max keys pile up it gives up on
// remembering them and flushes L1 instead (L2 still has everything; L1
// refills as keys are read).
//
// Deleting a key from L1 is always safe in the L2 modes (a delete can only
// turn a hit into a refill), so Drain needs no key locks: if a newer write
// or fill lands first, Drain merely costs it one refill.
type Pending struct {
	// Max bounds the remembered keys (default 100000).
	Max int

	any atomic.Bool // keys non-empty or flush set; read without mu
	mu  sync.Mutex
	// keys maps each waiting key to the sequence number of its latest add,
	// so Drain forgets a key only if nobody re-added it while its delete
	// was in flight (that add may stand for a newer stale copy).
	keys map[string]uint64 // guarded by mu
	seq  uint64            // guarded by mu
	// flush is set (with flushSeq) when too many keys piled up: L1 as a
	// whole is suspect until a flush_all issued after the last add succeeds.
	flush    bool   // guarded by mu
	flushSeq uint64 // guarded by mu
}

func (p *Pending) max() int {
	if p.Max > 0 {
		return p.Max
	}
	return 100000
}

// add remembers key (copied).
func (p *Pending) add(key []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	switch {
	case p.flush:
		p.flushSeq = p.seq
	case len(p.keys) >= p.max():
		p.flush, p.flushSeq = true, p.seq
		p.keys = nil
	default:
		if p.keys == nil {
			p.keys = make(map[string]uint64)
		}
		p.keys[string(key)] = p.seq
	}
	p.any.Store(true)
}

// suspect reports whether an L1 hit for key must not be served. A key
// stays suspect until its delete has landed in L1.
func (p *Pending) suspect(key []byte) bool {
	if !p.any.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flush {
		return true
	}
	_, ok := p.keys[string(key)]
	return ok
}

// Len is the number of keys waiting (for stats); -1 while a flush is due.
func (p *Pending) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flush {
		return -1
	}
	return len(p.keys)
}

// Drain deletes the waiting keys from l1 (or flushes it) and forgets those
// whose delete landed. It returns the number still waiting (-1: a flush).
func (p *Pending) Drain(ctx context.Context, l1 Backend) int {
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
		for k, s := range p.keys {
			list = append(list, entry{k, s})
		}
	}
	p.mu.Unlock()

	var done []entry
	flushed := false
	if flush {
		req, resp := &protocol.Request{Command: protocol.CmdFlushAll}, new(protocol.Response)
		flushed = l1.Handle(ctx, req, resp) == nil && resp.Status == protocol.StatusOK
	}
	const batchSize = 512
	for len(list) > 0 {
		n := min(len(list), batchSize)
		reqs := make([]*protocol.Request, n)
		resps := make([]*protocol.Response, n)
		for i := range reqs {
			reqs[i] = &protocol.Request{Command: protocol.CmdDelete}
			reqs[i].AddKey([]byte(list[i].key))
			resps[i] = new(protocol.Response)
		}
		err := l1.Do(ctx, reqs, resps)
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
	for _, e := range done {
		if p.keys[e.key] == e.seq {
			delete(p.keys, e.key)
		}
	}
	left := len(p.keys)
	if p.flush {
		left = -1
	}
	p.any.Store(left != 0)
	return left
}

// Run drains every interval while L1 is healthy, until ctx ends.
func (p *Pending) Run(ctx context.Context, l1 Backend, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !p.any.Load() || !l1.Healthy() {
			continue
		}
		if left := p.Drain(ctx, l1); left != 0 {
			log.Warn("rend: L1 still holds possibly stale keys", "waiting", left)
		}
	}
}
