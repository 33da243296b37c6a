package orca

import (
	"context"
	"math"
	"time"

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
		st, err := o.l1.store(ctx, req.Command, req.Key(), item{value: req.Value, flags: req.Flags, exp: exp, version: version})
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
	var ci mcitem.Item
	if withValue {
		r := o.pool.resp()
		defer o.pool.putResp(r)
		if err := o.l1.get(ctx, req.Keys[:1], r, false, 0); err != nil {
			return o.fail(resp, "L1", err)
		}
		if len(r.Hits) > 0 {
			h := &r.Hits[0]
			ci = mcitem.Item{Value: h.Value, Flags: h.Flags, Exptime: h.Exptime, CAS: h.CAS}
			cur = &ci
		}
	} else {
		hdrs, hresp, err := o.l1.headers(ctx, [][]byte{key}, nil)
		if err != nil {
			return o.fail(resp, "L1", err)
		}
		defer o.pool.putResp(hresp)
		if len(hdrs) > 0 {
			h := &hdrs[0].h
			ci = mcitem.Item{Flags: h.Flags, Exptime: h.Exptime, CAS: h.Version}
			cur = &ci
		}
	}
	buf := o.pool.buf()
	defer o.pool.putBuf(buf)
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
		st, err := o.l1.store(ctx, cmd, key, item{value: n.Value, flags: n.Flags, exp: min(n.Exptime, math.MaxInt32), version: n.CAS})
		if err != nil {
			return o.fail(resp, "L1", err)
		}
		if st != protocol.StatusOK {
			resp.Status = protocol.StatusNotStored
			return nil
		}
	case mcitem.Delete:
		if _, err := o.l1.delete(ctx, key); err != nil {
			return o.fail(resp, "L1", err)
		}
	}
	out.Reply(resp)
	return nil
}
