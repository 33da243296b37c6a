package l1

import (
	"sync"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Pool recycles backend requests and responses, batches and scratch
// buffers, so that an L1 read or write allocates nothing in the steady
// state. Responses that held a lot of value bytes, and scratch buffers
// grown by a large value, are dropped rather than kept alive in the pool.
// The zero Pool is ready; orca shares one with the Client for its L2
// calls.
type Pool struct {
	reqs, resps, batches, bufs, scratch sync.Pool
}

// maxPooledBuf bounds the scratch buffers the pool keeps.
const maxPooledBuf = 64 << 10

// Buf returns an empty scratch buffer; give it back with PutBuf.
func (p *Pool) Buf() *[]byte {
	if b, ok := p.bufs.Get().(*[]byte); ok {
		return b
	}
	return new([]byte)
}

// PutBuf gives a buffer from Buf back; large ones are dropped.
func (p *Pool) PutBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	p.bufs.Put(b)
}

// getScratch is l1.get's working lists, pooled.
type getScratch struct {
	hdrs, toAssemble []HeaderHit
	// used is the most entries either list held since it was pooled:
	// putGetScratch clears that many, not the whole capacity.
	used int
}

// keep records the lists' current lengths in used.
func (sc *getScratch) keep() {
	sc.used = max(sc.used, len(sc.hdrs), len(sc.toAssemble))
}

func (p *Pool) getScratch() *getScratch {
	if sc, ok := p.scratch.Get().(*getScratch); ok {
		return sc
	}
	return new(getScratch)
}

func (p *Pool) putGetScratch(sc *getScratch) {
	if cap(sc.hdrs) > 4096 || cap(sc.toAssemble) > 4096 {
		return
	}
	// The headers alias responses that go back to the pool.
	sc.keep()
	clear(sc.hdrs[:min(sc.used, cap(sc.hdrs))])
	clear(sc.toAssemble[:min(sc.used, cap(sc.toAssemble))])
	sc.used = 0
	p.scratch.Put(sc)
}

// batch returns an empty batch; give it back with release.
func (p *Pool) batch() *batch {
	if b, ok := p.batches.Get().(*batch); ok {
		return b
	}
	return &batch{p: p}
}

// Req returns an empty request; give it back with PutReq.
func (p *Pool) Req() *protocol.Request {
	if r, ok := p.reqs.Get().(*protocol.Request); ok {
		r.Reset()
		return r
	}
	return new(protocol.Request)
}

// PutReq gives a request from Req back.
func (p *Pool) PutReq(r *protocol.Request) {
	if len(r.Keys) > 4096 {
		return // its key arena is large (a 20 MiB item's chunk keys): let it go
	}
	p.reqs.Put(r)
}

// Resp returns an empty response; give it back with PutResp.
func (p *Pool) Resp() *protocol.Response {
	if r, ok := p.resps.Get().(*protocol.Response); ok {
		r.Reset()
		return r
	}
	return new(protocol.Response)
}

// PutResp gives a response from Resp back; the hits and values it holds
// are invalid from then on.
func (p *Pool) PutResp(r *protocol.Response) {
	if r.Retained() > maxPooledResp {
		return
	}
	p.resps.Put(r)
}

// maxPooledResp bounds the memory a pooled response may keep. It is well
// above the chunks of a large multi-get (100 chunked values of a few KiB),
// which at the former 64 KiB bound were dropped and reallocated on every
// request.
const maxPooledResp = 1 << 20

// batch is a set of pooled requests and responses for one Do call.
type batch struct {
	p     *Pool
	reqs  []*protocol.Request
	resps []*protocol.Response
}

func (b *batch) add(cmd protocol.Command) *protocol.Request {
	r := b.p.Req()
	r.Command = cmd
	b.reqs = append(b.reqs, r)
	b.resps = append(b.resps, b.p.Resp())
	return r
}

// release returns the batch, its requests and its responses to the pool.
func (b *batch) release() {
	for i := range b.reqs {
		b.p.PutReq(b.reqs[i])
		b.p.PutResp(b.resps[i])
	}
	if len(b.reqs) > 4096 {
		return // a huge item's chunk list: let the slices go
	}
	clear(b.reqs)
	clear(b.resps)
	b.reqs, b.resps = b.reqs[:0], b.resps[:0]
	b.p.batches.Put(b)
}
