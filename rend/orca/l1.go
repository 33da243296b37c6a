package orca

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Backend is a pipelined client to one memcached-protocol server
// (mcclient.Client implements it).
type Backend interface {
	protocol.Handler
	// Do sends reqs as one pipelined batch on one connection and fills
	// resps in order.
	Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error
	// Healthy reports whether at least one connection is up.
	Healthy() bool
}

// errL1Status means L1 (memcached) answered with a status the request
// should never get (out of memory, too large, a server error): the request
// did not take effect. It is not "L1 down": that is an I/O error from the
// Backend, or errL1Down.
var errL1Status = errors.New("orca: L1 refused a write")

// errL1Down means the L1 Backend reported itself unhealthy (no connection
// up, or its circuit open), so the request was not sent at all.
var errL1Down = errors.New("orca: L1 down")

// item is a value to write into L1.
type item struct {
	value   []byte // not retained
	flags   uint32
	exp     int64 // memcached exptime to send: 0 never, -1 expired, else absolute unix seconds
	version uint64
	state   uint8 // meta state (l1only: the header is the record; see l1only.go)
}

// l1 stores client items in a stock memcached as chunk headers plus chunks
// (package chunk), over a pipelined Backend. Every method costs a fixed
// number of pipelined round trips whatever the number of keys or chunks.
type l1 struct {
	be        Backend
	chunkSize int
	maxItem   int
	stats     *Stats
	pool      *pool
}

func (l *l1) do(ctx context.Context, b *batch) error {
	if len(b.reqs) == 0 {
		return nil
	}
	err := l.be.Do(ctx, b.reqs, b.resps)
	if err != nil {
		l.stats.L1Errors.Add(1)
	}
	return err
}

func (l *l1) handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	err := l.be.Handle(ctx, req, resp)
	if err != nil {
		l.stats.L1Errors.Add(1)
	}
	return err
}

// headerHit is one header read from L1 (decoded; a miss has none).
type headerHit struct {
	idx    int          // position in the caller's keys
	hdrCAS uint64       // memcached's CAS of the header item (for a guarded repair delete)
	h      chunk.Header // h.Inline aliases the header response
}

// headers fetches the header items of keys in one round trip. It returns the
// decodable ones (into dst) and the response they alias, which the caller
// releases. Undecodable items are misses (counted).
func (l *l1) headers(ctx context.Context, keys [][]byte, dst []headerHit) ([]headerHit, *protocol.Response, error) {
	req := l.pool.req()
	defer l.pool.putReq(req)
	req.Command = protocol.CmdGet
	for _, k := range keys {
		if hashedName(k) {
			addL1Key(req, k)
		} else {
			req.Keys = append(req.Keys, k) // aliased: req lives only for this call
		}
	}
	resp := l.pool.resp()
	if err := l.handle(ctx, req, resp); err != nil {
		l.pool.putResp(resp)
		return dst, nil, err
	}
	if resp.Status != protocol.StatusOK {
		l.stats.L1Errors.Add(1)
		l.pool.putResp(resp)
		return dst, nil, errL1Status
	}
	now := time.Now().Unix()
	for _, hit := range resp.Hits {
		h, err := chunk.Decode(hit.Value, l.maxItem)
		if err != nil {
			l.stats.BadHeaders.Add(1)
			continue
		}
		// memcached expires the header itself (it carries the same expiry);
		// this check only covers clock skew at the second boundary.
		if h.Exptime != 0 && h.Exptime <= now {
			continue
		}
		dst = append(dst, headerHit{idx: hit.Index, hdrCAS: hit.CAS, h: h})
	}
	return dst, resp, nil
}

// headersInto fetches the header items of keys in one round trip straight
// into out, which must hold no hits, and decodes them where they landed:
// an inline value already sits in out's arena, so its hit is rewritten to
// point at it (the value is copied once, from the backend's read buffer,
// not a second time into a response of its own). The hits of chunked
// items, and with hasExp also of inline ones (their headers need
// rewriting), are taken out of out and returned in dst; undecodable and
// expired headers are misses (bad ones counted). On an error out is left
// empty.
func (l *l1) headersInto(ctx context.Context, keys [][]byte, out *protocol.Response, dst []headerHit, hasExp bool) ([]headerHit, error) {
	req := l.pool.req()
	defer l.pool.putReq(req)
	req.Command = protocol.CmdGet
	for _, k := range keys {
		if hashedName(k) {
			addL1Key(req, k) // see hashPrefix
		} else {
			req.Keys = append(req.Keys, k)
		}
	}
	defer clear(req.Keys) // they alias the caller's keys
	if err := l.handle(ctx, req, out); err != nil {
		out.Reset()
		return dst, err
	}
	if out.Status != protocol.StatusOK {
		l.stats.L1Errors.Add(1)
		out.Reset()
		return dst, errL1Status
	}
	now := time.Now().Unix()
	kept := out.Hits[:0]
	for _, hit := range out.Hits { // kept never overtakes this loop
		h, err := chunk.Decode(hit.Value, l.maxItem)
		if err != nil {
			l.stats.BadHeaders.Add(1)
			continue
		}
		// memcached expires the header itself (it carries the same expiry);
		// this check only covers clock skew at the second boundary.
		if h.Exptime != 0 && h.Exptime <= now {
			continue
		}
		if h.Chunks > 0 || hasExp {
			dst = append(dst, headerHit{idx: hit.Index, hdrCAS: hit.CAS, h: h})
			continue
		}
		v := h.Inline
		if v == nil {
			v = []byte{}
		}
		kept = append(kept, protocol.Hit{Index: hit.Index, Value: v, Flags: h.Flags, CAS: h.Version, Exptime: h.Exptime})
		markState(&kept[len(kept)-1], h.State)
	}
	out.Hits = kept
	return dst, nil
}

// get looks keys up in L1 and appends a hit to out for every key found whole
// (Hit.Index = position in keys; out.Hits end in no particular order;
// callers sort). out must hold no hits: the headers are read straight into
// it (headersInto). It costs one round trip for the headers and one for all
// chunks of all chunked items; a read that finds a header replaced under it
// (a concurrent write) reads again, at most twice. newExp, when hasExp, also
// sets a new expiry (gat): chunks are read with gat, and the headers are
// rewritten with the new expiry after their chunks.
func (l *l1) get(ctx context.Context, keys [][]byte, out *protocol.Response, hasExp bool, newExp int64) error {
	// Pooled lists: a get of many keys (a multi-get, or the gets of a
	// pipeline served together) allocates nothing here either.
	sc := l.pool.getScratch()
	defer l.pool.putGetScratch(sc)
	hdrs, err := l.headersInto(ctx, keys, out, sc.hdrs[:0], hasExp)
	sc.hdrs = hdrs
	sc.keep()
	if err != nil {
		return err
	}

	for attempt := 0; ; attempt++ {
		toAssemble := sc.toAssemble[:0]
		for _, f := range hdrs {
			if f.h.Chunks == 0 {
				if hasExp {
					toAssemble = append(toAssemble, f) // needs its header rewritten
					continue
				}
				markState(out.AppendHit(f.idx, f.h.Inline, f.h.Flags, f.h.Version, f.h.Exptime), f.h.State)
				continue
			}
			toAssemble = append(toAssemble, f)
		}
		sc.toAssemble = toAssemble
		sc.keep()
		if len(toAssemble) == 0 {
			return nil
		}
		failed, err := l.assemble(ctx, keys, toAssemble, out, hasExp, newExp)
		if err != nil || len(failed) == 0 {
			return err
		}
		// Some chunked items did not assemble. Either a writer replaced
		// the item between our header read and our chunk read (then its
		// old chunks may be gone: touch/gat/append rewrites delete them),
		// or chunks were lost (evicted, deleted behind our back). Re-read
		// those headers: a new token means the former, so try again with
		// the new header; the same token means the item is broken.
		var fkeys [][]byte
		for _, f := range failed {
			fkeys = append(fkeys, keys[f.idx])
		}
		again, aresp, err := l.headers(ctx, fkeys, nil)
		if err != nil {
			return err
		}
		defer l.pool.putResp(aresp)
		hdrs = hdrs[:0]
		for _, a := range again {
			old := failed[a.idx]
			a.idx = old.idx
			if a.h.Token == old.h.Token {
				// Broken for good: a miss. Delete the header, guarded by
				// memcached's CAS so that a newer write that replaced it
				// meanwhile survives. Without this, add-fills of the key
				// would keep failing against the broken header.
				l.stats.ChunkMisses.Add(1)
				l.repair(ctx, keys[old.idx], old.hdrCAS)
				continue
			}
			if attempt >= 2 {
				l.stats.ChunkMisses.Add(1)
				continue
			}
			l.stats.TornRetries.Add(1)
			hdrs = append(hdrs, a)
		}
		sc.hdrs = hdrs
		sc.keep()
		if len(hdrs) == 0 {
			return nil
		}
	}
}

// assemble fetches the chunks of toAssemble (one pipelined Do) and appends the
// whole items to out. With hasExp the chunks are read with gat and each
// header is rewritten with the new expiry after its chunks, in the same
// batch (memcached executes one connection's commands in order, so the
// header never promises an expiry its chunks do not have).
func (l *l1) assemble(ctx context.Context, keys [][]byte, toAssemble []headerHit, out *protocol.Response, hasExp bool, newExp int64) (failed []headerHit, err error) {
	b := l.pool.batch()
	defer b.release()
	var kb [chunk.MaxChunkKeyLen]byte
	kbuf := kb[:0]
	for i := range toAssemble {
		f := &toAssemble[i]
		if f.h.Chunks == 0 {
			continue
		}
		r := b.add(protocol.CmdGet)
		if hasExp {
			r.Command = protocol.CmdGat
			r.Exptime, r.HasExptime = newExp, true
		}
		base := chunk.KeyBase(keys[f.idx], &f.h.Token)
		for c := 0; c < f.h.Chunks; c++ {
			kbuf = chunk.AppendChunkKey(kbuf[:0], &base, c)
			r.AddKey(kbuf)
		}
	}
	nChunkReqs := len(b.reqs)
	if hasExp {
		hdrBuf := l.pool.buf()
		defer l.pool.putBuf(hdrBuf)
		for i := range toAssemble {
			h := toAssemble[i].h
			h.Exptime = max(newExp, 0)
			*hdrBuf = chunk.AppendHeader((*hdrBuf)[:0], &h)
			r := b.add(protocol.CmdSet)
			addL1Key(r, keys[toAssemble[i].idx])
			r.Value = r.CopyBytes(*hdrBuf)
			r.Flags = 0
			r.Exptime, r.HasExptime = newExp, true
		}
	}
	if err := l.do(ctx, b); err != nil {
		return nil, err
	}
	ri := 0
	for i := range toAssemble {
		f := &toAssemble[i]
		if hasExp && b.resps[nChunkReqs+i].Status != protocol.StatusOK {
			l.stats.L1Errors.Add(1)
		}
		if f.h.Chunks == 0 {
			markState(out.AppendHit(f.idx, f.h.Inline, f.h.Flags, f.h.Version, max(newExp, 0)), f.h.State)
			continue
		}
		resp := b.resps[ri]
		ri++
		if resp.Status != protocol.StatusOK || len(resp.Hits) != f.h.Chunks {
			failed = append(failed, *f)
			continue
		}
		// Check every chunk before using any: a value is whole or a miss.
		ok := true
		for c := range resp.Hits {
			hit := &resp.Hits[c]
			_, err := chunk.CheckChunk(&f.h, hit.Index, hit.Value)
			if err == chunk.ErrToken {
				l.stats.ChunkTokenMismatches.Add(1)
			}
			if err != nil || hit.Index != c {
				ok = false
				break
			}
		}
		if !ok {
			failed = append(failed, *f)
			continue
		}
		exp := f.h.Exptime
		if hasExp {
			exp = max(newExp, 0)
		}
		if f.h.Chunks == 1 {
			// One chunk (checked above: token, then exactly the value) is
			// the whole value: copy it straight into out's pooled arena,
			// allocating nothing.
			markState(out.AppendHit(f.idx, resp.Hits[0].Value[chunk.TokenSize:], f.h.Flags, f.h.Version, exp), f.h.State)
			continue
		}
		value := make([]byte, f.h.Length)
		for c := range resp.Hits {
			start, _ := f.h.Span(c)
			copy(value[start:], resp.Hits[c].Value[chunk.TokenSize:]) // checked above
		}
		// The assembled value is handed to the response as is (no second
		// copy): it was allocated for this hit and is owned by out from now.
		hit := markState(out.AppendHit(f.idx, nil, f.h.Flags, f.h.Version, exp), f.h.State)
		hit.Value = value
	}
	return failed, nil
}

// repair deletes a broken header if it is still the one we read.
func (l *l1) repair(ctx context.Context, key []byte, hdrCAS uint64) {
	req := l.pool.req()
	defer l.pool.putReq(req)
	resp := l.pool.resp()
	defer l.pool.putResp(resp)
	req.Command = protocol.CmdDelete
	addL1Key(req, key)
	req.CAS = hdrCAS
	_ = l.handle(ctx, req, resp)
}

// store writes it under key with memcached semantics cmd (CmdSet, CmdAdd or
// CmdReplace): chunks first, header last, in one pipelined batch. It returns
// StatusOK or StatusNotStored; any other outcome is an error (the caller
// then treats L1 as failed for this key).
func (l *l1) store(ctx context.Context, cmd protocol.Command, key []byte, it item) (protocol.Status, error) {
	h := chunk.NewHeader(it.value, it.flags, max(it.exp, 0), it.version, l.chunkSize)
	h.State = it.state
	if it.exp < 0 {
		// Already expired (negative exptime, or an absolute time past):
		// memcached stores such an item as immediately expired, which
		// gives add/replace/set their exact outcome and removes an older
		// copy. A bare header is enough: nobody will read its chunks.
		h = chunk.NewHeader(nil, it.flags, 0, it.version, l.chunkSize)
	}
	if h.Chunks > 0 && cmd != protocol.CmdSet {
		// add/replace of a chunked value: ask first whether the header is
		// there, so a bulk replace of a cold key (the batch port) or an add
		// of a present one does not write megabytes of chunks only to lose
		// at the header. The answer can go stale before the header write;
		// the header's add/replace still decides, and a loser deletes its
		// chunks below.
		hdrs, hresp, err := l.headers(ctx, [][]byte{key}, nil)
		if err != nil {
			return 0, err
		}
		l.pool.putResp(hresp)
		if present := len(hdrs) > 0; present == (cmd == protocol.CmdAdd) {
			return protocol.StatusNotStored, nil
		}
	}
	b := l.pool.batch()
	defer b.release()
	vbuf := l.pool.buf()
	defer l.pool.putBuf(vbuf)
	if h.Chunks > 0 {
		base := chunk.KeyBase(key, &h.Token)
		var kb [chunk.MaxChunkKeyLen]byte
		for c := 0; c < h.Chunks; c++ {
			r := b.add(protocol.CmdSet)
			r.AddKey(chunk.AppendChunkKey(kb[:0], &base, c))
			*vbuf = chunk.AppendChunk((*vbuf)[:0], &h, it.value, c)
			r.Value = r.CopyBytes(*vbuf)
			r.Exptime, r.HasExptime = it.exp, true
		}
	}
	r := b.add(cmd)
	addL1Key(r, key)
	*vbuf = chunk.AppendHeader((*vbuf)[:0], &h)
	r.Value = r.CopyBytes(*vbuf)
	r.Exptime, r.HasExptime = it.exp, true
	if err := l.do(ctx, b); err != nil {
		return 0, err
	}
	chunksOK := true
	for i := 0; i < h.Chunks; i++ {
		if b.resps[i].Status != protocol.StatusOK {
			chunksOK = false
		}
	}
	st := b.resps[h.Chunks].Status
	switch {
	case st == protocol.StatusOK && chunksOK:
		return protocol.StatusOK, nil
	case st == protocol.StatusOK:
		// The header went in but a chunk did not (L1 out of memory): the
		// item would read as a chunk miss forever and block add-fills, so
		// take the header out again (guarded by its CAS).
		l.repair(ctx, key, b.resps[h.Chunks].CAS)
		l.stats.L1Errors.Add(1)
		return 0, errL1Status
	case st == protocol.StatusNotStored:
		l.dropChunks(ctx, key, &h)
		return protocol.StatusNotStored, nil
	default:
		l.dropChunks(ctx, key, &h)
		l.stats.L1Errors.Add(1)
		return 0, errL1Status
	}
}

// dropChunks deletes the chunks of a header that never made it (best
// effort: they carry the item's expiry and are unreachable anyway).
func (l *l1) dropChunks(ctx context.Context, key []byte, h *chunk.Header) {
	if h.Chunks == 0 {
		return
	}
	b := l.pool.batch()
	defer b.release()
	base := chunk.KeyBase(key, &h.Token)
	var kbuf []byte
	for c := 0; c < h.Chunks; c++ {
		kbuf = chunk.AppendChunkKey(kbuf[:0], &base, c)
		b.add(protocol.CmdDelete).AddKey(kbuf)
	}
	_ = l.do(ctx, b)
}

// delete removes key's header (its chunks become unreachable and expire or
// are evicted; reading the header first to delete them would cost every
// delete a round trip). Reports whether the key was there.
func (l *l1) delete(ctx context.Context, key []byte) (bool, error) {
	req := l.pool.req()
	defer l.pool.putReq(req)
	resp := l.pool.resp()
	defer l.pool.putResp(resp)
	req.Command = protocol.CmdDelete
	addL1Key(req, key)
	if err := l.handle(ctx, req, resp); err != nil {
		return false, err
	}
	switch resp.Status {
	case protocol.StatusOK:
		return true, nil
	case protocol.StatusNotFound:
		return false, nil
	}
	l.stats.L1Errors.Add(1)
	return false, errL1Status
}

// deleteKeys deletes the headers of keys in one pipelined batch and sets
// had[i] for each key that was there. Any failure is an error.
func (l *l1) deleteKeys(ctx context.Context, keys [][]byte, had []bool) error {
	b := l.pool.batch()
	defer b.release()
	for _, k := range keys {
		addL1Key(b.add(protocol.CmdDelete), k)
	}
	if err := l.do(ctx, b); err != nil {
		return err
	}
	for i, r := range b.resps {
		switch r.Status {
		case protocol.StatusOK:
			had[i] = true
		case protocol.StatusNotFound:
		default:
			l.stats.L1Errors.Add(1)
			return errL1Status
		}
	}
	return nil
}

// touch sets a new expiry on key: header read, then one batch that touches
// every chunk and rewrites the header (whose expiry field must stay right,
// since hits report it). Reports whether the key was there.
func (l *l1) touch(ctx context.Context, key []byte, newExp int64) (bool, error) {
	hdrs, hresp, err := l.headers(ctx, [][]byte{key}, nil)
	if err != nil {
		return false, err
	}
	defer l.pool.putResp(hresp)
	if len(hdrs) == 0 {
		return false, nil
	}
	h := hdrs[0].h
	b := l.pool.batch()
	defer b.release()
	if h.Chunks > 0 {
		base := chunk.KeyBase(key, &h.Token)
		var kbuf []byte
		for c := 0; c < h.Chunks; c++ {
			r := b.add(protocol.CmdTouch)
			kbuf = chunk.AppendChunkKey(kbuf[:0], &base, c)
			r.AddKey(kbuf)
			r.Exptime, r.HasExptime = newExp, true
		}
	}
	h.Exptime = max(newExp, 0)
	r := b.add(protocol.CmdSet)
	addL1Key(r, key)
	r.Value = r.CopyBytes(chunk.AppendHeader(nil, &h))
	r.Exptime, r.HasExptime = newExp, true
	if err := l.do(ctx, b); err != nil {
		return false, err
	}
	for i := 0; i < h.Chunks; i++ {
		if b.resps[i].Status != protocol.StatusOK {
			// A chunk was already gone: the item is broken; the header
			// we just rewrote would keep blocking fills, so drop it.
			l.repair(ctx, key, b.resps[h.Chunks].CAS)
			l.stats.ChunkMisses.Add(1)
			return false, nil
		}
	}
	if st := b.resps[h.Chunks].Status; st != protocol.StatusOK {
		l.stats.L1Errors.Add(1)
		return false, errL1Status
	}
	return true, nil
}

// flush sends flush_all (with the client's delay) to L1.
func (l *l1) flush(ctx context.Context, req *protocol.Request) error {
	r := l.pool.req()
	defer l.pool.putReq(r)
	resp := l.pool.resp()
	defer l.pool.putResp(resp)
	r.Command = protocol.CmdFlushAll
	r.Exptime, r.HasExptime = req.Exptime, req.HasExptime
	if err := l.handle(ctx, r, resp); err != nil {
		return err
	}
	if resp.Status != protocol.StatusOK {
		return errL1Status
	}
	return nil
}

// markState shows a header's meta state on its hit: X for a stale item, Z
// for one whose W token went out (l1only; see l1only.go), which is also how
// an mg learns that it must be answered through package item.
func markState(h *protocol.Hit, state uint8) *protocol.Hit {
	b := mcitem.Bits(state)
	h.Stale, h.Won = b&mcitem.Stale != 0, b&mcitem.WinSent != 0
	return h
}

// sortHits puts hits back in request key order.
func sortHits(resp *protocol.Response) {
	slices.SortStableFunc(resp.Hits, func(a, b protocol.Hit) int { return a.Index - b.Index })
}
