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
	// Access is, in l1only mode, the item's last access (unix seconds)
	// when it is older than this write (chunk.Header.Access); 0 means now.
	// With Access 0 and State fetched, Store makes memcached count a
	// fetch of the new header item too (see countFetch).
	Access int64
	// CountFetch says the item was fetched before this copy of it was
	// made (orca's fills and gat put-backs, after a read that was a fetch
	// in L2): memcached counts one fetch of the new header item in the
	// same batch (countFetch), so that the copy's first hit moves its last
	// access, as the item's next fetch moves the item's.
	CountFetch bool
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

// LastAccess is the item's last access as the header and memcached's
// count of the header item say together: a header rewritten while the
// item kept an older last access carries it (chunk.Header.Access), and it
// holds until memcached counts a fetch of the new header item; from then
// on memcached's own time is the item's (see rend/orca/l1only.go).
func (h *HeaderHit) LastAccess() int64 {
	if h.Header.Access != 0 && !h.Fetched {
		return h.Header.Access
	}
	return h.Accessed
}

// FetchedBefore reports whether the item was fetched before this read:
// memcached counted a fetch of the header item, or a rewritten header
// carries the bit.
func (h *HeaderHit) FetchedBefore() bool {
	return h.Fetched || h.Header.State&uint8(mcitem.Fetched) != 0
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
		h, ok := l.liveHeader(hit.Value, now)
		if !ok {
			continue
		}
		dst = append(dst, HeaderHit{Index: hit.Index, HeaderCAS: hit.CAS, Header: h})
	}
	return dst, resp, nil
}

// liveHeader decodes a header item's value; an undecodable one (counted)
// or one expired at now is a miss.
func (l *Client) liveHeader(v []byte, now int64) (chunk.Header, bool) {
	h, err := chunk.Decode(v, l.maxItem)
	if err != nil {
		l.counters.BadHeaders.Add(1)
		return h, false
	}
	// memcached expires the header itself (it carries the same expiry);
	// this check only covers clock skew at the second boundary.
	return h, h.Exptime == 0 || h.Exptime > now
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
	if hasExp {
		// A gat rewrites the headers: it needs the fetched bit and last
		// access memcached kept for them (see rewriteFetched).
		req.Mods.Meta = true
		req.Want = protocol.WantValue | protocol.WantFlags | protocol.WantCAS | protocol.WantFetched | protocol.WantAccess
	}
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
		h, ok := l.liveHeader(hit.Value, now)
		if !ok {
			continue
		}
		if h.Chunks > 0 || hasExp {
			dst = append(dst, HeaderHit{Index: hit.Index, HeaderCAS: hit.CAS, Header: h,
				Fetched: hit.Fetched, Accessed: hit.Accessed})
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
			rewriteFetched(&toAssemble[i], &h) // gat is a fetch (see Touch)
			*hdrBuf = chunk.AppendHeader((*hdrBuf)[:0], &h)
			r := b.add(protocol.CmdSet)
			AddKey(r, keys[toAssemble[i].Index])
			r.Value = r.CopyBytes(*hdrBuf)
			r.Flags = 0
			r.Exptime, r.HasExptime = newExp, true
		}
		// And the fetch that gat is, counted by memcached on each new
		// header item of an item fetched before (see Touch); after every
		// header, so the indexes above stay as they are.
		for i := range toAssemble {
			if toAssemble[i].FetchedBefore() {
				countFetch(b, keys[toAssemble[i].Index], newExp)
			}
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
	_, _ = l.deleteHeader(ctx, key, hdrCAS)
}

// MarkState shows a header's meta state on its hit: X for a stale item, Z
// for one whose W token went out (orca's l1only mode), which is also how
// an mg learns that it must be answered through package item.
func MarkState(h *protocol.Hit, state uint8) *protocol.Hit {
	b := mcitem.Bits(state)
	h.Stale, h.Won = b&mcitem.Stale != 0, b&mcitem.WinSent != 0
	return h
}

// SortHits puts hits back in request key order. They mostly are already:
// memcached answers a multi-key get in key order, and only chunked items
// and L2 hits are appended out of it; checking first spares the stable
// sort's moves of 100 hits (a 100-key multi-get, 1.3% of rend).
func SortHits(resp *protocol.Response) {
	hits := resp.Hits
	for i := 1; i < len(hits); i++ {
		if hits[i].Index < hits[i-1].Index {
			slices.SortStableFunc(hits, func(a, b protocol.Hit) int { return a.Index - b.Index })
			return
		}
	}
}
