package orca

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/rend/l1"
	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// l1Record is the record in l1only mode: the chunked L1 itself. rend
// applies memcached's item semantics (package item) to the L1 item: read
// it, apply the request, write the outcome back, all under the key's
// stripe, which every rend write of the key holds (the handlers take it),
// so no other rend write can come between the read and the write. (A
// client writing to the L1 memcached behind rend's back is not protected
// against; it never was.) With no L2 to own versions, rend hands them out
// (nextVersion). Errors are L1's: the handler answers "L1 unavailable".
type l1Record struct {
	c       *l1.Client
	pool    *l1.Pool
	maxItem int
	// lastVersion is the last version handed out (atomic; see nextVersion).
	lastVersion atomic.Uint64
}

// nextVersion hands out l1only versions (the CAS clients see when there is
// no L2): nanoseconds since the epoch, forced to increase, so versions stay
// unique across rend restarts without any stored state.
func (rec *l1Record) nextVersion() uint64 {
	for {
		last := rec.lastVersion.Load()
		v := uint64(time.Now().UnixNano())
		if v <= last {
			v = last + 1
		}
		if rec.lastVersion.CompareAndSwap(last, v) {
			return v
		}
	}
}

// store serves set/add/replace/cas. A set, add or replace without a
// compare value goes to L1 as it is: memcached decides add and replace
// itself, atomically. Anything that compares a CAS reads the item's header
// first.
func (rec *l1Record) store(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error {
	if !mcitem.IsCompareAndSwap(req) {
		version := req.NewCAS
		if version == 0 {
			version = rec.nextVersion()
		}
		st, err := rec.c.Store(ctx, req.Command, req.Key(), l1.Item{Value: req.Value, Flags: req.Flags, Exp: exp, Version: version})
		if err != nil {
			return err
		}
		resp.Status = st
		if st == protocol.StatusOK {
			resp.CAS = version
		}
		return nil
	}
	return rec.apply(ctx, req, resp, false)
}

// modify serves append/prepend/incr/decr. L1 is the record, so there is no
// copy to return for a cache.
func (rec *l1Record) modify(ctx context.Context, req *protocol.Request, resp *protocol.Response, _ int64) (*protocol.Response, error) {
	return nil, rec.apply(ctx, req, resp, true)
}

// delete serves delete: md I keeps the item, stale, with a new version
// (package item); a delete with a compare value reads the header first.
func (rec *l1Record) delete(ctx context.Context, req *protocol.Request, resp *protocol.Response, _ int64) error {
	key := req.Key()
	if req.Invalidate {
		return rec.apply(ctx, req, resp, true)
	}
	if req.CAS != 0 {
		present, version, err := rec.version(ctx, key)
		if err != nil {
			return err
		}
		if present && version != req.CAS {
			resp.Status = protocol.StatusExists
			return nil
		}
	}
	had, err := rec.c.Delete(ctx, key)
	if err != nil {
		return err
	}
	if !had {
		resp.Status = protocol.StatusNotFound
	}
	return nil
}

// version reads the version of key's L1 header.
func (rec *l1Record) version(ctx context.Context, key []byte) (bool, uint64, error) {
	hdrs, hresp, err := rec.c.Headers(ctx, [][]byte{key}, nil)
	if err != nil {
		return false, 0, err
	}
	defer rec.pool.PutResp(hresp)
	if len(hdrs) == 0 {
		return false, 0, nil
	}
	return true, hdrs[0].Header.Version, nil
}

// touch serves touch: the header and every chunk get the new expiry.
func (rec *l1Record) touch(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error {
	had, err := rec.c.Touch(ctx, req.Key(), exp)
	if err != nil {
		return err
	}
	if !had {
		resp.Status = protocol.StatusNotFound
	}
	return nil
}

// read serves a gat (the headers rewritten with the new expiry, under the
// exclusive stripes the handler holds) and the meta reads that need the
// item's state (metaRead).
func (rec *l1Record) read(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error {
	if req.Mods.Meta {
		return rec.metaRead(ctx, req, resp)
	}
	return rec.c.Get(ctx, req.Keys, resp, req.HasExptime, exp)
}

// flush serves flush_all (with the client's delay).
func (rec *l1Record) flush(ctx context.Context, req *protocol.Request, _ *protocol.Response) error {
	return rec.c.Flush(ctx, req)
}

// apply runs req (a compare-and-swap store, append, prepend, incr, decr or
// md I) as a read-modify-write of the L1 item. withValue reads the whole
// value; otherwise only the header (a cas needs only the version).
func (rec *l1Record) apply(ctx context.Context, req *protocol.Request, resp *protocol.Response, withValue bool) error {
	key := req.Key()
	now := time.Now().Unix()
	var cur *mcitem.Item
	cr := rec.pool.Resp()
	defer rec.pool.PutResp(cr)
	ci, _, _, ok, err := rec.item(ctx, key, withValue, false, false, cr)
	if err != nil {
		return err
	}
	if ok {
		cur = &ci
	}
	buf := rec.pool.Buf()
	defer rec.pool.PutBuf(buf)
	out := mcitem.Apply(req, cur, now, rec.maxItem, (*buf)[:0])
	if out.NeedCAS && out.Status == protocol.StatusOK {
		v := req.NewCAS
		if v == 0 {
			v = rec.nextVersion()
		}
		out.SetCAS(v)
	}
	switch out.Action {
	case mcitem.Put:
		n := &out.Next
		// A created item (vivify) is added, so that a concurrent
		// non-rend writer is not overwritten; anything else replaces.
		cmd := protocol.CmdSet
		if cur == nil {
			cmd = protocol.CmdAdd
		}
		st, err := rec.c.Store(ctx, cmd, key, l1ItemOf(n, now))
		if err != nil {
			return err
		}
		if st != protocol.StatusOK {
			resp.Status = protocol.StatusNotStored
			return nil
		}
	case mcitem.Delete:
		if _, err := rec.c.Delete(ctx, key); err != nil {
			return err
		}
	}
	out.Reply(resp)
	return nil
}

// Meta state in L1-only mode (issue 10 item 7). The chunk header is the
// record: its State holds shared/item's Bits (stale, W token sent, and
// fetched for a header rewritten after a fetch); memcached itself keeps
// the fetched bit and last access of the header item, which rend's reads
// for clients move as memcached's would (HeaderState reads them). An mg
// that needs the state (N, R, h, l, or a hit whose header shows state)
// runs through package item here; persistL1 decides what is written back.
// A classic get serves the value, stale or not, as it is.
//
// The last access across a header rewrite (md I, a W token, touch, gat,
// incr in place): memcached starts the new header item's count over
// (unfetched, accessed now). When the item's last access after the
// request is now, that is right, and for an item fetched before rend makes
// memcached count one fetch of the new header item (l1.countFetch) so
// that the next fetch moves the time as it would have. When the last
// access stays older (md I, a W token or touch that is a first fetch), the
// header carries it (chunk.Header.Access) and memcached's fetched bit of
// the new header item says whether it still holds: until memcached counts
// a fetch, it does (l1.HeaderHit.LastAccess). An mg that is that first
// fetch writes the header again (persistL1), so mg l stays exact; a
// classic get that is, rend does not see (it reads no state), and until
// the next fetch mg l then counts from the rewrite (README).

// item reads key's item from L1 as package item sees it: header fields
// and state, and the value when withValue (into r). ok is false on a miss.
// The fetched bit and last access are memcached's own for the header item
// (it counts the fetches rend makes for clients), plus the fetched bit a
// rewritten header carries in its state; bump says whether this read is a
// client's fetch (an mg) or rend's look before a write, which is none.
//
// carried says the last access came from the header (chunk.Header.Access)
// and memcached has counted no fetch of it since: a fetch now makes the
// header's copy void, so the item must be written back (persistL1).
//
// looked says the client's fetch was already made, by the lookup of a
// plain mg that found state (orca's get, needsState): memcached counted it
// on the header item, so this read does not fetch again, and a header that
// carries the last access is taken to have had no other fetch since it was
// written (the lookup reads no state; a classic get in between, which rend
// does not see, is the README's remaining difference).
func (rec *l1Record) item(ctx context.Context, key []byte, withValue, bump, looked bool, r *protocol.Response) (it mcitem.Item, h chunk.Header, carried, ok bool, err error) {
	hh, hresp, found, err := rec.c.HeaderState(ctx, key, bump)
	if err != nil {
		return it, h, false, false, err
	}
	if !found {
		rec.pool.PutResp(hresp)
		return it, h, false, false, nil
	}
	h = hh.Header
	it = mcitem.Item{Flags: h.Flags, Exptime: h.Exptime, CAS: h.Version, Bits: mcitem.Bits(h.State), Access: hh.LastAccess()}
	if looked && h.Access != 0 {
		hh.Fetched = false // the lookup's fetch is this request's
		it.Access = hh.LastAccess()
	}
	if hh.Fetched {
		it.Bits |= mcitem.Fetched
	}
	carried = h.Access != 0 && !hh.Fetched
	if withValue && h.Chunks == 0 {
		// Inline: the value came with the header (one round trip).
		r.AppendHit(0, h.Inline, h.Flags, h.Version, h.Exptime)
		it.Value = r.Hits[len(r.Hits)-1].Value
	}
	rec.pool.PutResp(hresp)
	h.Inline = nil // it aliased the released response
	if !withValue || h.Chunks == 0 {
		return it, h, carried, true, nil
	}
	// The header's fetch, if any, was HeaderState's: read the chunks
	// without a second one.
	if err := rec.c.GetNoBump(ctx, [][]byte{key}, r); err != nil {
		return it, h, false, false, err
	}
	if len(r.Hits) == 0 || r.Hits[0].CAS != h.Version {
		// Gone (or broken) between the two reads: a miss.
		return it, h, false, false, nil
	}
	it.Value = r.Hits[0].Value
	return it, h, carried, true, nil
}

// metaRead serves an mg: each key is read, package item decides, and a
// changed item is written back, all under the key's stripe (which the
// handler holds exclusively: the read may hand out the single W token).
func (rec *l1Record) metaRead(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	now := time.Now().Unix()
	r := rec.pool.Resp()
	defer rec.pool.PutResp(r)
	// A plain mg comes here only after its lookup found state (orca's
	// get): the lookup made its fetch.
	looked := req.Command == protocol.CmdGet && !needsRecord(req)
	for i, key := range req.Keys {
		r.Reset()
		cur, h, carried, ok, err := rec.item(ctx, key, true, !req.Mods.NoBump && !looked, looked, r)
		if err != nil {
			return err
		}
		var cp *mcitem.Item
		if ok {
			cp = &cur
		}
		out := mcitem.Read(req, cp, now)
		if out.NeedCAS && out.Status == protocol.StatusOK {
			out.SetCAS(rec.nextVersion())
		}
		if persistL1(&out, cp, carried) {
			if err := rec.commit(ctx, key, cp, &h, &out, now); err != nil {
				return err
			}
		}
		if out.Status == protocol.StatusOK {
			out.AppendHit(resp, i)
		}
	}
	return nil
}

// persistL1 is item.Persist for L1's headers: L1 (memcached) tracks the
// fetches and last access of the header item itself (see headerState), so
// only the other bits and real changes are written back, and a fetch of a
// header that carried the last access (item's carried), which memcached
// has now counted.
func persistL1(o *mcitem.Outcome, cur *mcitem.Item, carried bool) bool {
	if o.Action == mcitem.Put && o.StateOnly && cur != nil {
		return carried || (o.Next.Bits^cur.Bits)&^mcitem.Fetched != 0
	}
	return mcitem.Persist(o, cur, 0)
}

// l1ItemOf is the L1 item that stores n, package item's outcome of a
// request at now: a last access older than now travels in the header (see
// "The last access across a header rewrite").
func l1ItemOf(n *mcitem.Item, now int64) l1.Item {
	it := l1.Item{Value: n.Value, Flags: n.Flags, Exp: min(n.Exptime, math.MaxInt32), Version: n.CAS, State: uint8(n.Bits)}
	if n.Access > 0 && n.Access < now {
		it.Access = n.Access
	}
	return it
}

// commit writes a read's outcome back to L1. A change of state only
// rewrites the header with the same token (its chunks stay valid); a new
// expiry or a created item is a full store.
func (rec *l1Record) commit(ctx context.Context, key []byte, cur *mcitem.Item, h *chunk.Header, out *mcitem.Outcome, now int64) error {
	n := &out.Next
	switch {
	case out.Action == mcitem.Delete:
		_, err := rec.c.Delete(ctx, key)
		return err
	case out.Action != mcitem.Put:
		return nil
	case out.StateOnly && cur != nil:
		nh := *h
		nh.State = uint8(n.Bits)
		nh.Access = l1ItemOf(n, now).Access
		if nh.Chunks == 0 {
			nh.Inline = cur.Value
		}
		return rec.c.RewriteHeader(ctx, key, &nh)
	}
	cmd := protocol.CmdSet
	if cur == nil {
		cmd = protocol.CmdAdd
	}
	_, err := rec.c.Store(ctx, cmd, key, l1ItemOf(n, now))
	return err
}
