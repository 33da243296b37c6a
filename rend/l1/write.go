package l1

import (
	"context"

	"github.com/moneta-cache/moneta/rend/chunk"
	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Store writes it under key with memcached semantics cmd (CmdSet, CmdAdd or
// CmdReplace): chunks first, header last, in one pipelined batch. It returns
// StatusOK or StatusNotStored; any other outcome is an error (the caller
// then treats L1 as failed for this key).
func (l *Client) Store(ctx context.Context, cmd protocol.Command, key []byte, it Item) (protocol.Status, error) {
	h := chunk.NewHeader(it.Value, it.Flags, max(it.Exp, 0), it.Version, l.chunkSize)
	h.State, h.Access = it.State, it.Access
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
	addItemWrites(b, cmd, key, &h, &it, vbuf)
	if it.countsFetch() {
		countFetch(b, key, it.Exp) // after the header: its index stays
	}
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
	st, err := l.deleteHeader(ctx, key, 0)
	if err != nil {
		return false, err
	}
	return l.deleted(st)
}

// deleted reads a delete's status: whether the key was there, or an error
// (counted) for any answer but DELETED and NOT_FOUND.
func (l *Client) deleted(st protocol.Status) (bool, error) {
	switch st {
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
		var err error
		if had[i], err = l.deleted(r.Status); err != nil {
			return err
		}
	}
	return nil
}

// Touch sets a new expiry on key: header read (with memcached's state of
// the header item), then one batch that touches every chunk and rewrites
// the header (whose expiry field must stay right, since hits report it).
// Reports whether the key was there.
func (l *Client) Touch(ctx context.Context, key []byte, newExp int64) (bool, error) {
	hh, hresp, found, err := l.HeaderState(ctx, key, false)
	if err != nil {
		return false, err
	}
	defer l.pool.PutResp(hresp)
	if !found {
		return false, nil
	}
	h := hh.Header
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
	rewriteFetched(&hh, &h)
	r := b.add(protocol.CmdSet)
	AddKey(r, key)
	r.Value = r.CopyBytes(chunk.AppendHeader(nil, &h))
	r.Exptime, r.HasExptime = newExp, true
	if hh.FetchedBefore() {
		countFetch(b, key, newExp)
	}
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

// RewriteHeader sets key's header to h (same token: its chunks stay
// valid), with h's expiry. For an item fetched before whose last access is
// now (h.Access 0), memcached also counts a fetch of the new header item
// (countFetch).
func (l *Client) RewriteHeader(ctx context.Context, key []byte, h *chunk.Header) error {
	b := l.pool.batch()
	defer b.release()
	buf := l.pool.Buf()
	defer l.pool.PutBuf(buf)
	*buf = chunk.AppendHeader((*buf)[:0], h)
	r := b.add(protocol.CmdSet)
	AddKey(r, key)
	r.Value = r.CopyBytes(*buf)
	r.Exptime, r.HasExptime = h.Exptime, true
	if h.Access == 0 && h.State&uint8(mcitem.Fetched) != 0 {
		countFetch(b, key, h.Exptime)
	}
	if err := l.do(ctx, b); err != nil {
		return err
	}
	if b.resps[0].Status != protocol.StatusOK {
		l.counters.L1Errors.Add(1)
		return errStatus
	}
	return nil
}

// rewriteFetched prepares h, the new header of a touch or gat (a fetch)
// of the item whose header read was hh, as package item's fetch would
// leave the item. A rewritten header starts a new item in memcached, so
// what memcached kept of the old one travels in the header: the fetched
// bit in its state, and, for a first fetch (which does not move the last
// access), the last access in h.Access. For a later fetch (the last access
// is now, which the new header item's own time is) the caller makes
// memcached count a fetch of the new header item (countFetch), so that the
// next one moves its last access as it would have moved the old one's.
func rewriteFetched(hh *HeaderHit, h *chunk.Header) {
	h.Access = 0
	if !hh.FetchedBefore() {
		h.Access = hh.LastAccess()
	}
	h.State |= uint8(mcitem.Fetched)
}

// countsFetch says whether storing it is followed by a fetch memcached
// counts on the new header item (countFetch): the item was fetched before,
// and its last access is not older than the write (else the header
// carries it, see chunk.Header.Access). An expired item is not read.
func (it *Item) countsFetch() bool {
	return it.Exp >= 0 && it.Access == 0 && (it.CountFetch || it.State&uint8(mcitem.Fetched) != 0)
}

// countFetch adds to b a fetch of key's header item that memcached counts
// (a touch with the expiry exp it already has): after a rewrite of the
// header of an item fetched before, memcached's first fetch of the new
// header item would only set its fetched bit, where the item's next fetch
// must move its last access.
func countFetch(b *batch, key []byte, exp int64) {
	r := b.add(protocol.CmdTouch)
	AddKey(r, key)
	r.Exptime, r.HasExptime = exp, true
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

// deleteHeader deletes key's header item, only if its CAS is still cas
// when cas is not 0, and returns L1's status.
func (l *Client) deleteHeader(ctx context.Context, key []byte, cas uint64) (protocol.Status, error) {
	req := l.pool.Req()
	defer l.pool.PutReq(req)
	resp := l.pool.Resp()
	defer l.pool.PutResp(resp)
	req.Command = protocol.CmdDelete
	AddKey(req, key)
	req.CAS = cas
	if err := l.Handle(ctx, req, resp); err != nil {
		return 0, err
	}
	return resp.Status, nil
}
