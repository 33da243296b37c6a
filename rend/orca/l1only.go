package orca

import (
	"context"
	"math"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/rend/l1"
	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// L1-only mode: L1 (chunked) is the record, so rend itself applies
// memcached's item semantics (package item) to the L1 item: read it, apply
// the request, write the outcome back, all under the key's stripe, which
// every rend write of the key holds, so no other rend write can come
// between the read and the write. (A client writing to the L1 memcached
// behind rend's back is not protected against; it never was.)

// l1onlyStore serves set/add/replace/cas in l1only mode. A set, add or
// replace without a compare value goes to L1 as it is: memcached decides
// add and replace itself, atomically. Anything that compares a CAS reads
// the item's header first.
func (o *Orca) l1onlyStore(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error {
	if !mcitem.IsCompareAndSwap(req) {
		version := req.NewCAS
		if version == 0 {
			version = o.nextVersion()
		}
		st, err := o.l1.Store(ctx, req.Command, req.Key(), l1.Item{Value: req.Value, Flags: req.Flags, Exp: exp, Version: version})
		if err != nil {
			return o.fail(resp, "L1", err)
		}
		resp.Status = st
		if st == protocol.StatusOK {
			resp.CAS = version
		}
		return nil
	}
	return o.l1onlyApply(ctx, req, resp, false)
}

// l1onlyApply runs req (a compare-and-swap store, append, prepend, incr or
// decr) as a read-modify-write of the L1 item. withValue reads the whole
// value; otherwise only the header (a cas needs only the version).
func (o *Orca) l1onlyApply(ctx context.Context, req *protocol.Request, resp *protocol.Response, withValue bool) error {
	key := req.Key()
	now := time.Now().Unix()
	var cur *mcitem.Item
	r := o.pool.Resp()
	defer o.pool.PutResp(r)
	ci, _, ok, err := o.l1onlyRecord(ctx, key, withValue, r)
	if err != nil {
		return o.fail(resp, "L1", err)
	}
	if ok {
		cur = &ci
	}
	buf := o.pool.Buf()
	defer o.pool.PutBuf(buf)
	out := mcitem.Apply(req, cur, now, o.cfg.MaxItemSize, (*buf)[:0])
	if out.NeedCAS && out.Status == protocol.StatusOK {
		v := req.NewCAS
		if v == 0 {
			v = o.nextVersion()
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
		st, err := o.l1.Store(ctx, cmd, key, l1.Item{Value: n.Value, Flags: n.Flags, Exp: min(n.Exptime, math.MaxInt32), Version: n.CAS, State: uint8(n.Bits)})
		if err != nil {
			return o.fail(resp, "L1", err)
		}
		if st != protocol.StatusOK {
			resp.Status = protocol.StatusNotStored
			return nil
		}
	case mcitem.Delete:
		if _, err := o.l1.Delete(ctx, key); err != nil {
			return o.fail(resp, "L1", err)
		}
	}
	out.Reply(resp)
	return nil
}

// Meta state in L1-only mode (issue 10 item 7). The chunk header is the
// record: its State holds shared/item's Bits (stale, W token sent,
// fetched); it has no room for the last access time, so mg l answers l0.
// An mg that needs the state (N, R, h, l, or a hit whose header shows
// state) runs through package item here; item.PersistRead decides what is
// written back. A classic get serves the value, stale or not, as it is.

// l1onlyRecord reads key's item from L1 as package item sees it: header
// fields and state, and the value when withValue. ok is false on a miss.
func (o *Orca) l1onlyRecord(ctx context.Context, key []byte, withValue bool, r *protocol.Response) (it mcitem.Item, h chunk.Header, ok bool, err error) {
	keys := [1][]byte{key}
	var fb [1]l1.HeaderHit // stack room for the one header: no allocation
	hdrs, hresp, err := o.l1.Headers(ctx, keys[:], fb[:0])
	if err != nil {
		return it, h, false, err
	}
	if len(hdrs) == 0 {
		o.pool.PutResp(hresp)
		return it, h, false, nil
	}
	h = hdrs[0].Header
	it = mcitem.Item{Flags: h.Flags, Exptime: h.Exptime, CAS: h.Version, Bits: mcitem.Bits(h.State)}
	if withValue && h.Chunks == 0 {
		// Inline: the value came with the header (one round trip).
		r.AppendHit(0, h.Inline, h.Flags, h.Version, h.Exptime)
		it.Value = r.Hits[len(r.Hits)-1].Value
	}
	o.pool.PutResp(hresp)
	h.Inline = nil // it aliased the released response
	if !withValue || h.Chunks == 0 {
		return it, h, true, nil
	}
	if err := o.l1.Get(ctx, [][]byte{key}, r, false, 0); err != nil {
		return it, h, false, err
	}
	if len(r.Hits) == 0 || r.Hits[0].CAS != h.Version {
		// Gone (or broken) between the two reads: a miss.
		return it, h, false, nil
	}
	it.Value = r.Hits[0].Value
	return it, h, true, nil
}

// l1onlyMetaRead serves an mg in l1only mode: each key is read, package
// item decides, and a changed item is written back, all under the key's
// stripe (exclusive: the read may hand out the single W token).
func (o *Orca) l1onlyMetaRead(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdGet.Add(uint64(len(req.Keys)))
	stripes := o.lockKeys(make([]int, 0, len(req.Keys)), req.Keys)
	defer o.locks.unlock(stripes)
	now := time.Now().Unix()
	r := o.pool.Resp()
	defer o.pool.PutResp(r)
	for i, key := range req.Keys {
		r.Reset()
		cur, h, ok, err := o.l1onlyRecord(ctx, key, true, r)
		if err != nil {
			return o.fail(resp, "L1", err)
		}
		var cp *mcitem.Item
		if ok {
			cp = &cur
		}
		out := mcitem.Read(req, cp, now)
		if out.NeedCAS && out.Status == protocol.StatusOK {
			out.SetCAS(o.nextVersion())
		}
		if mcitem.PersistRead(req, &out, cp) {
			if err := o.l1onlyCommit(ctx, key, cp, &h, &out); err != nil {
				return o.fail(resp, "L1", err)
			}
		}
		if out.Status == protocol.StatusOK {
			out.AppendHit(resp, i)
		}
	}
	l1.SortHits(resp)
	o.stats.GetHits.Add(uint64(len(resp.Hits)))
	o.stats.GetMisses.Add(uint64(len(req.Keys) - len(resp.Hits)))
	return nil
}

// l1onlyCommit writes a read's outcome back to L1. A change of state only
// rewrites the header with the same token (its chunks stay valid); a new
// expiry or a created item is a full store.
func (o *Orca) l1onlyCommit(ctx context.Context, key []byte, cur *mcitem.Item, h *chunk.Header, out *mcitem.Outcome) error {
	n := &out.Next
	switch {
	case out.Action == mcitem.Delete:
		_, err := o.l1.Delete(ctx, key)
		return err
	case out.Action != mcitem.Put:
		return nil
	case out.StateOnly && cur != nil:
		if n.Bits == cur.Bits {
			return nil // only the access time moved, which L1 does not keep
		}
		nh := *h
		nh.State = uint8(n.Bits)
		if nh.Chunks == 0 {
			nh.Inline = cur.Value
		}
		buf := o.pool.Buf()
		defer o.pool.PutBuf(buf)
		*buf = chunk.AppendHeader((*buf)[:0], &nh)
		req := o.pool.Req()
		defer o.pool.PutReq(req)
		resp := o.pool.Resp()
		defer o.pool.PutResp(resp)
		req.Command = protocol.CmdSet
		req.AddKey(key)
		req.Value = req.CopyBytes(*buf)
		req.Exptime, req.HasExptime = nh.Exptime, true
		return o.l1.Handle(ctx, req, resp)
	}
	cmd := protocol.CmdSet
	if cur == nil {
		cmd = protocol.CmdAdd
	}
	_, err := o.l1.Store(ctx, cmd, key, l1.Item{Value: n.Value, Flags: n.Flags,
		Exp: min(n.Exptime, math.MaxInt32), Version: n.CAS, State: uint8(n.Bits)})
	return err
}
