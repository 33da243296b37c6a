package l1

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// errStatus means L1 (memcached) answered with a status the request
// should never get (out of memory, too large, a server error): the request
// did not take effect. It is not "L1 down": that is an I/O error from the
// Backend.
var errStatus = errors.New("orca: L1 refused a write")

// Item is a value to write into L1.
type Item struct {
	Value   []byte // not retained
	Flags   uint32
	Exp     int64 // memcached exptime to send: 0 never, -1 expired, else absolute unix seconds
	Version uint64
	State   uint8 // meta state (orca's l1only mode: the header is the record)
}

// Client stores client items in a stock memcached as chunk headers plus
// chunks (package chunk), over a pipelined Backend. Every method costs a
// fixed number of pipelined round trips whatever the number of keys or
// chunks. It is safe for concurrent use; per-key ordering is the caller's
// (orca's stripe locks).
type Client struct {
	be        Backend
	chunkSize int
	maxItem   int
	counters  *Counters
	pool      *Pool
}

// New returns a client over be that splits values into chunkSize chunks,
// takes items up to maxItem bytes, counts into c and draws its requests,
// responses and buffers from p (which the caller may share).
func New(be Backend, chunkSize, maxItem int, c *Counters, p *Pool) *Client {
	return &Client{be: be, chunkSize: chunkSize, maxItem: maxItem, counters: c, pool: p}
}

// Backend returns the Backend the client was built over.
func (l *Client) Backend() Backend { return l.be }

func (l *Client) do(ctx context.Context, b *batch) error {
	if len(b.reqs) == 0 {
		return nil
	}
	err := l.be.Do(ctx, b.reqs, b.resps)
	if err != nil {
		l.counters.L1Errors.Add(1)
	}
	return err
}

// Handle sends one request to L1 as is (keys not renamed), counting a
// failure in L1Errors.
func (l *Client) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	err := l.be.Handle(ctx, req, resp)
	if err != nil {
		l.counters.L1Errors.Add(1)
	}
	return err
}

// HeaderHit is one header read from L1 (decoded; a miss has none).
type HeaderHit struct {
	Index     int          // position in the caller's keys
	HeaderCAS uint64       // memcached's CAS of the header item (for a guarded repair delete)
	Header    chunk.Header // Header.Inline aliases the header response
	// Fetched and Accessed are memcached's own mg h and l of the header
	// item (Accessed as a unix second), before this read: L1 counts the
	// fetches of its copy itself. Only HeaderState fills them.
	Fetched  bool
	Accessed int64
}

// HeaderState reads key's header with memcached's own fetched bit and last
// access of the header item (one mg). bump says whether the read is a
// fetch (a client's mg) or must leave both alone (rend's own look before
// a write, or an mg u). ok is false on a miss; the header's Inline aliases
// the returned response, which the caller releases with Pool.PutResp.
func (l *Client) HeaderState(ctx context.Context, key []byte, bump bool) (HeaderHit, *protocol.Response, bool, error) {
	req := l.pool.Req()
	defer l.pool.PutReq(req)
	stateRequest(req, key, bump)
	resp := l.pool.Resp()
	if err := l.Handle(ctx, req, resp); err != nil {
		l.pool.PutResp(resp)
		return HeaderHit{}, nil, false, err
	}
	hh, ok, err := l.stateOf(resp)
	if err != nil {
		l.pool.PutResp(resp)
		return HeaderHit{}, nil, false, err
	}
	return hh, resp, ok, nil
}

// stateRequest makes req the mg of HeaderState.
func stateRequest(req *protocol.Request, key []byte, bump bool) {
	req.Command = protocol.CmdGet
	req.Mods.Meta, req.Mods.NoBump = true, !bump
	req.Want = protocol.WantValue | protocol.WantFlags | protocol.WantCAS | protocol.WantFetched | protocol.WantAccess
	AddKey(req, key)
}

// stateOf decodes the answer to a stateRequest.
func (l *Client) stateOf(resp *protocol.Response) (HeaderHit, bool, error) {
	if resp.Status != protocol.StatusOK {
		l.counters.L1Errors.Add(1)
		return HeaderHit{}, false, errStatus
	}
	if len(resp.Hits) == 0 {
		return HeaderHit{}, false, nil
	}
	hit := &resp.Hits[0]
	h, err := chunk.Decode(hit.Value, l.maxItem)
	if err != nil {
		l.counters.BadHeaders.Add(1)
		return HeaderHit{}, false, nil
	}
	if h.Exptime != 0 && h.Exptime <= time.Now().Unix() {
		return HeaderHit{}, false, nil
	}
	return HeaderHit{HeaderCAS: hit.CAS, Header: h, Fetched: hit.Fetched, Accessed: hit.Accessed}, true, nil
}

// DeleteWithState is Delete that also returns what HeaderState (without a
// fetch) would have said just before, in the same round trip (one
// pipelined batch): for a caller that takes a copy out but must keep what
// L1 alone knew of it. hh.Header.Inline is nil.
func (l *Client) DeleteWithState(ctx context.Context, key []byte) (had bool, hh HeaderHit, found bool, err error) {
	b := l.pool.batch()
	defer b.release()
	stateRequest(b.add(protocol.CmdGet), key, false)
	AddKey(b.add(protocol.CmdDelete), key)
	if err := l.do(ctx, b); err != nil {
		return false, HeaderHit{}, false, err
	}
	hh, found, _ = l.stateOf(b.resps[0]) // a bad answer there only loses the state
	hh.Header.Inline = nil
	switch b.resps[1].Status {
	case protocol.StatusOK:
		return true, hh, found, nil
	case protocol.StatusNotFound:
		return false, hh, found, nil
	}
	l.counters.L1Errors.Add(1)
	return false, hh, found, errStatus
}

// Headers fetches the header items of keys in one round trip. It returns the
// decodable ones (into dst) and the response they alias, which the caller
// releases. Undecodable items are misses (counted).
func (l *Client) Headers(ctx context.Context, keys [][]byte, dst []HeaderHit) ([]HeaderHit, *protocol.Response, error) {
	req := l.pool.Req()
	defer l.pool.PutReq(req)
	req.Command = protocol.CmdGet
	for _, k := range keys {
		if hashedName(k) {
			AddKey(req, k)
		} else {
			req.Keys = append(req.Keys, k) // aliased: req lives only for this call
		}
	}
	resp := l.pool.Resp()
	if err := l.Handle(ctx, req, resp); err != nil {
		l.pool.PutResp(resp)
		return dst, nil, err
	}
	if resp.Status != protocol.StatusOK {
		l.counters.L1Errors.Add(1)
		l.pool.PutResp(resp)
		return dst, nil, errStatus
	}
	now := time.Now().Unix()
	for _, hit := range resp.Hits {
		h, err := chunk.Decode(hit.Value, l.maxItem)
		if err != nil {
			l.counters.BadHeaders.Add(1)
			continue
		}
		// memcached expires the header itself (it carries the same expiry);
		// this check only covers clock skew at the second boundary.
		if h.Exptime != 0 && h.Exptime <= now {
			continue
		}
		dst = append(dst, HeaderHit{Index: hit.Index, HeaderCAS: hit.CAS, Header: h})
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
func (l *Client) headersInto(ctx context.Context, keys [][]byte, out *protocol.Response, dst []HeaderHit, hasExp, bump bool) ([]HeaderHit, error) {
	req := l.pool.Req()
	defer l.pool.PutReq(req)
	req.Command = protocol.CmdGet
	req.Mods.NoBump = !bump
	for _, k := range keys {
		if hashedName(k) {
			AddKey(req, k) // see hashPrefix
		} else {
			req.Keys = append(req.Keys, k)
		}
	}
	defer clear(req.Keys) // they alias the caller's keys
	if err := l.Handle(ctx, req, out); err != nil {
		out.Reset()
		return dst, err
	}
	if out.Status != protocol.StatusOK {
		l.counters.L1Errors.Add(1)
		out.Reset()
		return dst, errStatus
	}
	now := time.Now().Unix()
	kept := out.Hits[:0]
	for _, hit := range out.Hits { // kept never overtakes this loop
		h, err := chunk.Decode(hit.Value, l.maxItem)
		if err != nil {
			l.counters.BadHeaders.Add(1)
			continue
		}
		// memcached expires the header itself (it carries the same expiry);
		// this check only covers clock skew at the second boundary.
		if h.Exptime != 0 && h.Exptime <= now {
			continue
		}
		if h.Chunks > 0 || hasExp {
			dst = append(dst, HeaderHit{Index: hit.Index, HeaderCAS: hit.CAS, Header: h})
			continue
		}
		v := h.Inline
		if v == nil {
			v = []byte{}
		}
		kept = append(kept, protocol.Hit{Index: hit.Index, Value: v, Flags: h.Flags, CAS: h.Version, Exptime: h.Exptime})
		MarkState(&kept[len(kept)-1], h.State)
	}
	out.Hits = kept
	return dst, nil
}

// Get looks keys up in L1 and appends a hit to out for every key found whole
// (Hit.Index = position in keys; out.Hits end in no particular order;
// callers sort). out must hold no hits: the headers are read straight into
// it (headersInto). It costs one round trip for the headers and one for all
// chunks of all chunked items; a read that finds a header replaced under it
// (a concurrent write) reads again, at most twice. newExp, when hasExp, also
// sets a new expiry (gat): chunks are read with gat, and the headers are
// rewritten with the new expiry after their chunks.
func (l *Client) Get(ctx context.Context, keys [][]byte, out *protocol.Response, hasExp bool, newExp int64) error {
	return l.get(ctx, keys, out, hasExp, newExp, true)
}

// GetNoBump is Get without a fetch of the header items in memcached (mg u):
// for a read whose fetch was already counted (HeaderState with bump).
func (l *Client) GetNoBump(ctx context.Context, keys [][]byte, out *protocol.Response) error {
	return l.get(ctx, keys, out, false, 0, false)
}

func (l *Client) get(ctx context.Context, keys [][]byte, out *protocol.Response, hasExp bool, newExp int64, bump bool) error {
	// Pooled lists: a get of many keys (a multi-get, or the gets of a
	// pipeline served together) allocates nothing here either.
	sc := l.pool.getScratch()
	defer l.pool.putGetScratch(sc)
	hdrs, err := l.headersInto(ctx, keys, out, sc.hdrs[:0], hasExp, bump)
	sc.hdrs = hdrs
	sc.keep()
	if err != nil {
		return err
	}

	for attempt := 0; ; attempt++ {
		toAssemble := sc.toAssemble[:0]
		for _, f := range hdrs {
			if f.Header.Chunks == 0 {
				if hasExp {
					toAssemble = append(toAssemble, f) // needs its header rewritten
					continue
				}
				MarkState(out.AppendHit(f.Index, f.Header.Inline, f.Header.Flags, f.Header.Version, f.Header.Exptime), f.Header.State)
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
			fkeys = append(fkeys, keys[f.Index])
		}
		again, aresp, err := l.Headers(ctx, fkeys, nil)
		if err != nil {
			return err
		}
		defer l.pool.PutResp(aresp)
		hdrs = hdrs[:0]
		for _, a := range again {
			old := failed[a.Index]
			a.Index = old.Index
			if a.Header.Token == old.Header.Token {
				// Broken for good: a miss. Delete the header, guarded by
				// memcached's CAS so that a newer write that replaced it
				// meanwhile survives. Without this, add-fills of the key
				// would keep failing against the broken header.
				l.counters.ChunkMisses.Add(1)
				l.repair(ctx, keys[old.Index], old.HeaderCAS)
				continue
			}
			if attempt >= 2 {
				l.counters.ChunkMisses.Add(1)
				continue
			}
			l.counters.TornRetries.Add(1)
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
func (l *Client) assemble(ctx context.Context, keys [][]byte, toAssemble []HeaderHit, out *protocol.Response, hasExp bool, newExp int64) (failed []HeaderHit, err error) {
	b := l.pool.batch()
	defer b.release()
	var kb [chunk.MaxChunkKeyLen]byte
	kbuf := kb[:0]
	for i := range toAssemble {
		f := &toAssemble[i]
		if f.Header.Chunks == 0 {
			continue
		}
		r := b.add(protocol.CmdGet)
		if hasExp {
			r.Command = protocol.CmdGat
			r.Exptime, r.HasExptime = newExp, true
		}
		base := chunk.KeyBase(keys[f.Index], &f.Header.Token)
		for c := 0; c < f.Header.Chunks; c++ {
			kbuf = chunk.AppendChunkKey(kbuf[:0], &base, c)
			r.AddKey(kbuf)
		}
	}
	nChunkReqs := len(b.reqs)
	if hasExp {
		hdrBuf := l.pool.Buf()
		defer l.pool.PutBuf(hdrBuf)
		for i := range toAssemble {
			h := toAssemble[i].Header
			h.Exptime = max(newExp, 0)
			h.State |= uint8(mcitem.Fetched) // gat is a fetch (see Touch)
			*hdrBuf = chunk.AppendHeader((*hdrBuf)[:0], &h)
			r := b.add(protocol.CmdSet)
			AddKey(r, keys[toAssemble[i].Index])
			r.Value = r.CopyBytes(*hdrBuf)
			r.Flags = 0
			r.Exptime, r.HasExptime = newExp, true
		}
		// And the fetch that gat is, counted by memcached on each new
		// header item (see Touch); after every header, so the indexes
		// above stay as they are.
		for i := range toAssemble {
			r := b.add(protocol.CmdTouch)
			AddKey(r, keys[toAssemble[i].Index])
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
			l.counters.L1Errors.Add(1)
		}
		if f.Header.Chunks == 0 {
			MarkState(out.AppendHit(f.Index, f.Header.Inline, f.Header.Flags, f.Header.Version, max(newExp, 0)), f.Header.State)
			continue
		}
		resp := b.resps[ri]
		ri++
		if resp.Status != protocol.StatusOK || len(resp.Hits) != f.Header.Chunks {
			failed = append(failed, *f)
			continue
		}
		// Check every chunk before using any: a value is whole or a miss.
		ok := true
		for c := range resp.Hits {
			hit := &resp.Hits[c]
			_, err := chunk.CheckChunk(&f.Header, hit.Index, hit.Value)
			if err == chunk.ErrToken {
				l.counters.ChunkTokenMismatches.Add(1)
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
		exp := f.Header.Exptime
		if hasExp {
			exp = max(newExp, 0)
		}
		if f.Header.Chunks == 1 {
			// One chunk (checked above: token, then exactly the value) is
			// the whole value: copy it straight into out's pooled arena,
			// allocating nothing.
			MarkState(out.AppendHit(f.Index, resp.Hits[0].Value[chunk.TokenSize:], f.Header.Flags, f.Header.Version, exp), f.Header.State)
			continue
		}
		// Assembled straight into out's pooled arena: no allocation and
		// no buffer of its own (the reply is then sent from there).
		hit := MarkState(out.AppendHitBuffer(f.Index, f.Header.Length, f.Header.Flags, f.Header.Version, exp), f.Header.State)
		for c := range resp.Hits {
			start, _ := f.Header.Span(c)
			copy(hit.Value[start:], resp.Hits[c].Value[chunk.TokenSize:]) // checked above
		}
	}
	return failed, nil
}

// repair deletes a broken header if it is still the one we read.
func (l *Client) repair(ctx context.Context, key []byte, hdrCAS uint64) {
	req := l.pool.Req()
	defer l.pool.PutReq(req)
	resp := l.pool.Resp()
	defer l.pool.PutResp(resp)
	req.Command = protocol.CmdDelete
	AddKey(req, key)
	req.CAS = hdrCAS
	_ = l.Handle(ctx, req, resp)
}

// Store writes it under key with memcached semantics cmd (CmdSet, CmdAdd or
// CmdReplace): chunks first, header last, in one pipelined batch. It returns
// StatusOK or StatusNotStored; any other outcome is an error (the caller
// then treats L1 as failed for this key).
func (l *Client) Store(ctx context.Context, cmd protocol.Command, key []byte, it Item) (protocol.Status, error) {
	h := chunk.NewHeader(it.Value, it.Flags, max(it.Exp, 0), it.Version, l.chunkSize)
	h.State = it.State
	if it.Exp < 0 {
		// Already expired (negative exptime, or an absolute time past):
		// memcached stores such an item as immediately expired, which
		// gives add/replace/set their exact outcome and removes an older
		// copy. A bare header is enough: nobody will read its chunks.
		h = chunk.NewHeader(nil, it.Flags, 0, it.Version, l.chunkSize)
	}
	if h.Chunks > 0 && cmd != protocol.CmdSet {
		// add/replace of a chunked value: ask first whether the header is
		// there, so a bulk replace of a cold key (the batch port) or an add
		// of a present one does not write megabytes of chunks only to lose
		// at the header. The answer can go stale before the header write;
		// the header's add/replace still decides, and a loser deletes its
		// chunks below.
		hdrs, hresp, err := l.Headers(ctx, [][]byte{key}, nil)
		if err != nil {
			return 0, err
		}
		l.pool.PutResp(hresp)
		if present := len(hdrs) > 0; present == (cmd == protocol.CmdAdd) {
			return protocol.StatusNotStored, nil
		}
	}
	b := l.pool.batch()
	defer b.release()
	vbuf := l.pool.Buf()
	defer l.pool.PutBuf(vbuf)
	if h.Chunks > 0 {
		base := chunk.KeyBase(key, &h.Token)
		var kb [chunk.MaxChunkKeyLen]byte
		for c := 0; c < h.Chunks; c++ {
			r := b.add(protocol.CmdSet)
			r.AddKey(chunk.AppendChunkKey(kb[:0], &base, c))
			*vbuf = chunk.AppendChunk((*vbuf)[:0], &h, it.Value, c)
			r.Value = r.CopyBytes(*vbuf)
			r.Exptime, r.HasExptime = it.Exp, true
		}
	}
	r := b.add(cmd)
	AddKey(r, key)
	*vbuf = chunk.AppendHeader((*vbuf)[:0], &h)
	r.Value = r.CopyBytes(*vbuf)
	r.Exptime, r.HasExptime = it.Exp, true
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
		l.counters.L1Errors.Add(1)
		return 0, errStatus
	case st == protocol.StatusNotStored:
		l.dropChunks(ctx, key, &h)
		return protocol.StatusNotStored, nil
	default:
		l.dropChunks(ctx, key, &h)
		l.counters.L1Errors.Add(1)
		return 0, errStatus
	}
}

// dropChunks deletes the chunks of a header that never made it (best
// effort: they carry the item's expiry and are unreachable anyway).
func (l *Client) dropChunks(ctx context.Context, key []byte, h *chunk.Header) {
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

// Delete removes key's header (its chunks become unreachable and expire or
// are evicted; reading the header first to delete them would cost every
// Delete a round trip). Reports whether the key was there.
func (l *Client) Delete(ctx context.Context, key []byte) (bool, error) {
	req := l.pool.Req()
	defer l.pool.PutReq(req)
	resp := l.pool.Resp()
	defer l.pool.PutResp(resp)
	req.Command = protocol.CmdDelete
	AddKey(req, key)
	if err := l.Handle(ctx, req, resp); err != nil {
		return false, err
	}
	switch resp.Status {
	case protocol.StatusOK:
		return true, nil
	case protocol.StatusNotFound:
		return false, nil
	}
	l.counters.L1Errors.Add(1)
	return false, errStatus
}

// DeleteKeys deletes the headers of keys in one pipelined batch and sets
// had[i] for each key that was there. Any failure is an error.
func (l *Client) DeleteKeys(ctx context.Context, keys [][]byte, had []bool) error {
	b := l.pool.batch()
	defer b.release()
	for _, k := range keys {
		AddKey(b.add(protocol.CmdDelete), k)
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
			l.counters.L1Errors.Add(1)
			return errStatus
		}
	}
	return nil
}

// Touch sets a new expiry on key: header read, then one batch that touches
// every chunk and rewrites the header (whose expiry field must stay right,
// since hits report it). Reports whether the key was there.
func (l *Client) Touch(ctx context.Context, key []byte, newExp int64) (bool, error) {
	hdrs, hresp, err := l.Headers(ctx, [][]byte{key}, nil)
	if err != nil {
		return false, err
	}
	defer l.pool.PutResp(hresp)
	if len(hdrs) == 0 {
		return false, nil
	}
	h := hdrs[0].Header
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
	// touch is a fetch (memcached bumps the item); the rewritten header
	// starts a new item in memcached, so the bit travels in its state, and
	// a touch of the new header item, in the same batch, makes memcached
	// count that fetch too: the next one then moves its last access, as
	// it would have without the rewrite.
	h.State |= uint8(mcitem.Fetched)
	r := b.add(protocol.CmdSet)
	AddKey(r, key)
	r.Value = r.CopyBytes(chunk.AppendHeader(nil, &h))
	r.Exptime, r.HasExptime = newExp, true
	r = b.add(protocol.CmdTouch)
	AddKey(r, key)
	r.Exptime, r.HasExptime = newExp, true
	if err := l.do(ctx, b); err != nil {
		return false, err
	}
	for i := 0; i < h.Chunks; i++ {
		if b.resps[i].Status != protocol.StatusOK {
			// A chunk was already gone: the item is broken; the header
			// we just rewrote would keep blocking fills, so drop it.
			l.repair(ctx, key, b.resps[h.Chunks].CAS)
			l.counters.ChunkMisses.Add(1)
			return false, nil
		}
	}
	if st := b.resps[h.Chunks].Status; st != protocol.StatusOK {
		l.counters.L1Errors.Add(1)
		return false, errStatus
	}
	return true, nil
}

// Flush sends flush_all (with the client's delay) to L1.
func (l *Client) Flush(ctx context.Context, req *protocol.Request) error {
	r := l.pool.Req()
	defer l.pool.PutReq(r)
	resp := l.pool.Resp()
	defer l.pool.PutResp(resp)
	r.Command = protocol.CmdFlushAll
	r.Exptime, r.HasExptime = req.Exptime, req.HasExptime
	if err := l.Handle(ctx, r, resp); err != nil {
		return err
	}
	if resp.Status != protocol.StatusOK {
		return errStatus
	}
	return nil
}

// MarkState shows a header's meta state on its hit: X for a stale item, Z
// for one whose W token went out (orca's l1only mode), which is also how
// an mg learns that it must be answered through package item.
func MarkState(h *protocol.Hit, state uint8) *protocol.Hit {
	b := mcitem.Bits(state)
	h.Stale, h.Won = b&mcitem.Stale != 0, b&mcitem.WinSent != 0
	return h
}

// SortHits puts hits back in request key order.
func SortHits(resp *protocol.Response) {
	slices.SortStableFunc(resp.Hits, func(a, b protocol.Hit) int { return a.Index - b.Index })
}
