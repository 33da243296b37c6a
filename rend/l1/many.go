package l1

import (
	"context"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// StoreMany is Store for several keys at once (orca's fills after a
// multi-get's L2 hits: one L1 write for all of them instead of a round
// trip per key). items[i] goes under keys[i] with memcached semantics cmd;
// sts[i] receives StatusOK or StatusNotStored, or StatusServerError where
// that item failed (L1 refused it: the caller treats L1 as failed for that
// key, as after a Store error). An error means the batch as a whole failed (I/O, timeout):
// nothing is known of any key. Each item's chunks still go before its
// header, in one pipelined batch (memcached executes one connection's
// commands in order), so a lock-free reader never finds a header whose
// chunks are not there yet. Like Store, an add or replace of chunked values
// first asks for their headers (one round trip for all of them) so that it
// does not write chunks bound to lose at the header.
func (l *Client) StoreMany(ctx context.Context, cmd protocol.Command, keys [][]byte, items []Item, sts []protocol.Status) error {
	if len(keys) == 1 {
		st, err := l.Store(ctx, cmd, keys[0], items[0])
		sts[0] = st
		if err == errStatus {
			sts[0] = protocol.StatusServerError
			return nil // that item failed, not the batch
		}
		return err
	}
	sc := l.pool.getScratch()
	defer l.pool.putGetScratch(sc)
	// sc.hdrs holds each item's header (Index: its position), the chunked
	// adds and replaces that must first look at L1 in sc.toAssemble.
	hdrs := sc.hdrs[:0]
	for i := range items {
		it := &items[i]
		h := chunk.NewHeader(it.Value, it.Flags, max(it.Exp, 0), it.Version, l.chunkSize)
		h.State = it.State
		if it.Exp < 0 {
			h = chunk.NewHeader(nil, it.Flags, 0, it.Version, l.chunkSize) // see Store
		}
		hdrs = append(hdrs, HeaderHit{Index: i, Header: h})
		sts[i] = protocol.StatusServerError // until it is known to be stored
	}
	sc.hdrs = hdrs
	sc.keep()
	if cmd != protocol.CmdSet {
		if err := l.skipDecided(ctx, cmd, keys, sc, sts); err != nil {
			return err
		}
	}

	b := l.pool.batch()
	defer b.release()
	vbuf := l.pool.Buf()
	defer l.pool.PutBuf(vbuf)
	for i := range hdrs {
		if sts[i] == protocol.StatusNotStored {
			continue // decided without writing (skipDecided)
		}
		addItemWrites(b, cmd, keys[i], &hdrs[i].Header, &items[i], vbuf)
	}
	// The fetches memcached must count (see Store), after every item's
	// writes so that the indexes below stay as they are.
	for i := range items {
		if sts[i] != protocol.StatusNotStored && items[i].countsFetch() {
			countFetch(b, keys[i], items[i].Exp)
		}
	}
	if err := l.do(ctx, b); err != nil {
		return err
	}
	at := 0 // the next item's first request in b
	for i := range hdrs {
		if sts[i] == protocol.StatusNotStored {
			continue
		}
		h := &hdrs[i].Header
		chunksOK := true
		for c := 0; c < h.Chunks; c++ {
			if b.resps[at+c].Status != protocol.StatusOK {
				chunksOK = false
			}
		}
		hdr := b.resps[at+h.Chunks]
		at += h.Chunks + 1
		switch st := hdr.Status; {
		case st == protocol.StatusOK && chunksOK:
			sts[i] = protocol.StatusOK
		case st == protocol.StatusOK:
			l.repair(ctx, keys[i], hdr.CAS) // see Store
			l.counters.L1Errors.Add(1)
		case st == protocol.StatusNotStored:
			l.dropChunks(ctx, keys[i], h)
			sts[i] = protocol.StatusNotStored
		default:
			l.dropChunks(ctx, keys[i], h)
			l.counters.L1Errors.Add(1)
		}
	}
	return nil
}

// skipDecided answers, without writing them, the chunked items of an add
// or a replace that L1's current headers already decide (an add of a
// present key, a replace of an absent one): one header read for all of
// them, as Store does for one. The header's own add or replace still
// decides the others.
func (l *Client) skipDecided(ctx context.Context, cmd protocol.Command, keys [][]byte, sc *getScratch, sts []protocol.Status) error {
	ask := sc.toAssemble[:0]
	for _, f := range sc.hdrs {
		if f.Header.Chunks > 0 {
			ask = append(ask, f)
		}
	}
	sc.toAssemble = ask
	sc.keep()
	if len(ask) == 0 {
		return nil
	}
	req := l.pool.Req()
	defer l.pool.PutReq(req)
	for _, f := range ask {
		req.Keys = append(req.Keys, keys[f.Index]) // Headers copies them
	}
	defer clear(req.Keys)
	present, hresp, err := l.Headers(ctx, req.Keys, nil)
	if err != nil {
		return err
	}
	defer l.pool.PutResp(hresp)
	found := make([]bool, len(ask)) // chunked adds only: rare enough to allocate
	for _, p := range present {
		found[p.Index] = true
	}
	for j, f := range ask {
		if found[j] == (cmd == protocol.CmdAdd) {
			sts[f.Index] = protocol.StatusNotStored
		}
	}
	return nil
}

// addItemWrites appends to b the writes of one item: its chunks (plain
// sets: a chunk is only reachable through the header's token) and then the
// header under cmd, which decides the item's outcome. vbuf is scratch
// space for encoding; each request keeps its own copy of the bytes.
func addItemWrites(b *batch, cmd protocol.Command, key []byte, h *chunk.Header, it *Item, vbuf *[]byte) {
	if h.Chunks > 0 {
		base := chunk.KeyBase(key, &h.Token)
		var kb [chunk.MaxChunkKeyLen]byte
		for c := 0; c < h.Chunks; c++ {
			r := b.add(protocol.CmdSet)
			r.AddKey(chunk.AppendChunkKey(kb[:0], &base, c))
			*vbuf = chunk.AppendChunk((*vbuf)[:0], h, it.Value, c)
			r.Value = r.CopyBytes(*vbuf)
			r.Exptime, r.HasExptime = it.Exp, true
		}
	}
	r := b.add(cmd)
	AddKey(r, key)
	*vbuf = chunk.AppendHeader((*vbuf)[:0], h)
	r.Value = r.CopyBytes(*vbuf)
	r.Exptime, r.HasExptime = it.Exp, true
}
