package orca

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// l2Client is rend's client for L2 (mnemonic, the record in the two-layer
// modes), the counterpart of l1.Client: every call orca makes to L2 goes
// through it, so there is one place that turns a client request into what
// L2 must see (l2Request), counts failures (Stats.L2Errors) and decides
// which answers are errors.
//
// Contract (as l1.Client's):
//
//   - An error means L2 failed: I/O, timeout, L2 down or its circuit open,
//     and for reads any status but OK. It says nothing about the key. The
//     outcomes of a write (NOT_STORED, EXISTS, NOT_FOUND, too large) are
//     statuses in the response, not errors.
//   - Bytes passed in (keys, values) are not retained after the call.
//   - Hits land in the response the caller passes (or, from do, in a pooled
//     response the caller puts back with Pool.PutResp); their values are
//     valid until that response is reset or pooled.
type l2Client struct {
	be   Backend
	errs *atomic.Uint64 // Stats.L2Errors
	pool *l1.Pool       // shared with the L1 client
	peer bool           // Config.L2Peer: L2 takes mnemonic's G and A flags
}

// Backend returns the Backend the client was built over.
func (c *l2Client) Backend() Backend { return c.be }

// handle sends r to L2 as it is, counting a failure.
func (c *l2Client) handle(ctx context.Context, r *protocol.Request, resp *protocol.Response) error {
	err := c.be.Handle(ctx, r, resp)
	if err != nil {
		c.errs.Add(1)
	}
	return err
}

// do sends req to L2 as L2 must see it (l2Request, exptime exp) and returns
// L2's answer, whatever its status, in a pooled response the caller puts
// back (not on an error).
func (c *l2Client) do(ctx context.Context, req *protocol.Request, exp int64) (*protocol.Response, error) {
	r := c.pool.Req()
	defer c.pool.PutReq(r)
	l2Request(r, req, exp)
	r.Mods.ClassicRead = r.Mods.ClassicRead && c.peer
	resp := c.pool.Resp()
	if err := c.handle(ctx, r, resp); err != nil {
		c.pool.PutResp(resp)
		return nil, err
	}
	return resp, nil
}

// readKind says whose read an L2 get is, which decides what it may change
// in L2's record (memcached's rules for the client's command).
type readKind uint8

const (
	// readClassic: a client's get or gets. No W token is taken
	// (protocol.Mods.ClassicRead); it is a fetch (mg h, l).
	readClassic readKind = iota
	// readMeta: a client's plain mg. It may take a stale item's W token.
	readMeta
	// readInternal: rend's own read-back (after an append or incr, to
	// refill L1). Neither a token nor a fetch: memcached's append is not a
	// read, so the record must not count one (mg u).
	readInternal
)

// get reads keys from L2 in one request into resp: hits carry each item's
// flags, absolute expiry and version, with Index the position in keys. A
// status other than OK is an error. kind says what the read may change.
func (c *l2Client) get(ctx context.Context, keys [][]byte, resp *protocol.Response, kind readKind) error {
	r := c.pool.Req()
	defer c.pool.PutReq(r)
	r.Command = protocol.CmdGet
	r.Mods.ClassicRead = c.peer && kind != readMeta
	r.Mods.NoBump = kind == readInternal
	r.Want = wantOf(kind)
	r.Keys = append(r.Keys, keys...) // aliased: r lives only for this call
	defer clear(r.Keys)
	if err := c.handle(ctx, r, resp); err != nil {
		return err
	}
	if resp.Status != protocol.StatusOK {
		c.errs.Add(1)
		return fmt.Errorf("orca: L2 answered a get with %v: %s", resp.Status, resp.Message)
	}
	return nil
}

// wantOf is what an L2 read of kind asks beyond the value, flags, CAS and
// expiry: for a client's read (a fetch), whether the item was fetched
// before it (h), which decides whether L1's copy made from it must count a
// fetch (l1.Item.CountFetch).
func wantOf(kind readKind) protocol.Want {
	// rend's own read-back (u) sees the state as it is: whether the copy
	// it puts back is of an item fetched before (an incr in place keeps it).
	return protocol.WantFetched
}

// l2Run is a run of n consecutive keys of one getRuns call read as kind.
type l2Run struct {
	n    int
	kind readKind
}

// getRuns is get for keys whose reads differ in kind (a pipeline of
// classic gets and mg served together): runs cut keys, in order, into
// runs of one kind, each one request of one pipelined burst (one write to
// L2, which answers them in order, as it would have answered the client's
// requests one by one). Hits land in resp as get's do, Index the position
// in keys. One run is get itself.
func (c *l2Client) getRuns(ctx context.Context, keys [][]byte, runs []l2Run, resp *protocol.Response) error {
	if len(runs) == 1 {
		return c.get(ctx, keys, resp, runs[0].kind)
	}
	reqs := make([]*protocol.Request, len(runs)) // mixed pipelines only
	resps := make([]*protocol.Response, len(runs))
	off := 0
	for i, run := range runs {
		r := c.pool.Req()
		r.Command = protocol.CmdGet
		r.Mods.ClassicRead = c.peer && run.kind != readMeta
		r.Mods.NoBump = run.kind == readInternal
		r.Want = wantOf(run.kind)
		r.Keys = append(r.Keys, keys[off:off+run.n]...) // aliased: r lives only for this call
		reqs[i], resps[i] = r, c.pool.Resp()
		off += run.n
	}
	defer func() {
		for i := range reqs {
			clear(reqs[i].Keys)
			c.pool.PutReq(reqs[i])
			c.pool.PutResp(resps[i])
		}
	}()
	if err := c.be.Do(ctx, reqs, resps); err != nil {
		c.errs.Add(1)
		return err
	}
	off = 0
	for i, r := range resps {
		if r.Status != protocol.StatusOK {
			c.errs.Add(1)
			return fmt.Errorf("orca: L2 answered a get with %v: %s", r.Status, r.Message)
		}
		for j := range r.Hits {
			h := &r.Hits[j]
			h.CopyMeta(resp.AppendHit(off+h.Index, h.Value, h.Flags, h.CAS, h.Exptime))
		}
		off += runs[i].n
	}
	return nil
}

// read sends a read (gat, or a meta read the record must answer) to L2 and
// appends L2's hits to resp with their meta flags (W X Z, h, l and the t L2
// showed, see mcclient's appendTTLMods), Index as in req.Keys. A status
// other than OK is L2's answer to the client (resp gets it), not an error.
func (c *l2Client) read(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error {
	r, err := c.do(ctx, req, exp)
	if err != nil {
		return err
	}
	defer c.pool.PutResp(r)
	if r.Status != protocol.StatusOK {
		resp.Status, resp.Message = r.Status, r.Message
		return nil
	}
	for i := range r.Hits {
		h := &r.Hits[i]
		h.CopyMeta(resp.AppendHit(h.Index, h.Value, h.Flags, h.CAS, h.Exptime))
	}
	return nil
}

// The record methods (see record): L2 answers, resp gets its answer.

func (c *l2Client) store(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error {
	return c.write(ctx, req, resp, exp, true)
}

func (c *l2Client) delete(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error {
	return c.write(ctx, req, resp, exp, false) // md I T: the new TTL is converted as any other
}

func (c *l2Client) touch(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) error {
	return c.write(ctx, req, resp, exp, false)
}

// write sends a write and copies L2's status and message (and, withCAS,
// the new item's version) into resp.
func (c *l2Client) write(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64, withCAS bool) error {
	r, err := c.do(ctx, req, exp)
	if err != nil {
		return err
	}
	resp.Status, resp.Message = r.Status, r.Message
	if withCAS {
		resp.CAS = r.CAS
	}
	c.pool.PutResp(r)
	return nil
}

// storeRun sends a run of sets (reqs[i] with exptime exps[i]) to L2 in one
// pipelined burst, applied by L2 in order, and copies each answer's status,
// message and version into resps[i], as store does for one. An error
// means the burst failed as a whole: any of the sets may or may not have
// been applied. rs and out are the caller's scratch (len(reqs), nil on
// entry and on return), so a run allocates nothing here.
func (c *l2Client) storeRun(ctx context.Context, reqs []*protocol.Request, exps []int64, resps []*protocol.Response,
	rs []*protocol.Request, out []*protocol.Response) error {
	for i, req := range reqs {
		rs[i], out[i] = c.pool.Req(), c.pool.Resp()
		l2Request(rs[i], req, exps[i])
		rs[i].Mods.ClassicRead = rs[i].Mods.ClassicRead && c.peer
	}
	defer func() {
		for i := range rs {
			c.pool.PutReq(rs[i])
			c.pool.PutResp(out[i])
		}
		clear(rs)
		clear(out)
	}()
	if err := c.be.Do(ctx, rs, out); err != nil {
		c.errs.Add(1)
		return err
	}
	for i, r := range out {
		resps[i].Status, resps[i].Message, resps[i].CAS = r.Status, r.Message, r.CAS
	}
	return nil
}

// modify sends append/prepend/incr/decr, then reads the item back: rend
// does not know the new value (append) or its flags and expiry (incr).
// The caller holds the key's stripe exclusively, so no rend write of this
// key can come between L2's change and the read: the item returned is
// exactly L2's new one. A failed read-back only costs L1 its copy (the
// write succeeded; nothing is returned).
func (c *l2Client) modify(ctx context.Context, req *protocol.Request, resp *protocol.Response, exp int64) (*protocol.Response, error) {
	r, err := c.do(ctx, req, exp)
	if err != nil {
		return nil, err
	}
	resp.Status, resp.CAS, resp.Number, resp.Message = r.Status, r.CAS, r.Number, r.Message
	early, hasEarly := int64(0), len(r.Hits) > 0
	if hasEarly {
		early = r.Hits[0].Exptime // the TTL before an ma T (mcclient sends T after t)
	}
	c.pool.PutResp(r)
	if resp.Status != protocol.StatusOK {
		return nil, nil // L2 kept or dropped its item
	}
	back := c.pool.Resp()
	if err := c.get(ctx, req.Keys[:1], back, readInternal); err != nil || len(back.Hits) == 0 {
		c.pool.PutResp(back)
		return nil, nil
	}
	if req.Command == protocol.CmdIncr || req.Command == protocol.CmdDecr {
		// The meta ma reply can show the item's TTL (t); the codec takes
		// it from a hit.
		exp := back.Hits[0].Exptime
		h := resp.AppendHit(0, nil, 0, resp.CAS, exp)
		if hasEarly && req.Mods.Meta && early != exp {
			// L2 applied the client's T and N and printed t in the
			// client's order (mcclient keeps it): show its t.
			h.EarlyTTL, h.EarlyExptime = true, early
		}
	}
	return back, nil
}

// touchKeys touches keys in L2 with the absolute expiry exp, in one
// pipelined burst. Best effort: answers and failures are dropped.
func (c *l2Client) touchKeys(ctx context.Context, keys [][]byte, exp int64) {
	reqs := make([]*protocol.Request, len(keys)) // multi-key gat only
	resps := make([]*protocol.Response, len(keys))
	for i, k := range keys {
		r := c.pool.Req()
		r.Command = protocol.CmdTouch
		r.AddKey(k)
		r.Exptime, r.HasExptime = exp, true
		reqs[i], resps[i] = r, c.pool.Resp()
	}
	if err := c.be.Do(ctx, reqs, resps); err != nil {
		c.errs.Add(1)
	}
	for i := range reqs {
		c.pool.PutReq(reqs[i])
		c.pool.PutResp(resps[i])
	}
}

// flush sends flush_all with the client's delay; a refusal is answered as
// "L2 flush failed".
func (c *l2Client) flush(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	r, err := c.do(ctx, req, req.Exptime)
	if err != nil {
		return err
	}
	st := r.Status
	c.pool.PutResp(r)
	if st != protocol.StatusOK {
		resp.ServerError("L2 flush failed")
	}
	return nil
}

// l2Request fills dst with req as L2 must see it (no quiet flag: rend needs
// every answer), with exptime already converted by memcExp.
func l2Request(dst, req *protocol.Request, exp int64) {
	dst.Command = req.Command
	dst.Keys = append(dst.Keys[:0], req.Keys...)
	dst.Value = req.Value
	dst.Flags = req.Flags
	dst.Exptime, dst.HasExptime = req.Exptime, req.HasExptime
	if req.HasExptime || req.Vivify {
		dst.Exptime = exp
	}
	dst.CAS, dst.NewCAS = req.CAS, req.NewCAS
	dst.Delta, dst.Initial, dst.Vivify = req.Delta, req.Initial, req.Vivify
	dst.Want = req.Want
	dst.Invalidate = req.Invalidate
	dst.Mods = req.Mods
	switch req.Command {
	case protocol.CmdGet, protocol.CmdGets, protocol.CmdGat, protocol.CmdGats:
		// A classic read takes no W token (protocol.Mods.ClassicRead).
		dst.Mods.ClassicRead = req.Mods.ClassicRead || !req.Mods.Meta
		// And it says whether it was the item's first fetch (wantOf); the
		// client's reply shows only the flags the client asked for.
		dst.Want |= protocol.WantFetched
	}
	if req.Vivify && req.Mods.Meta {
		dst.Mods.VivifyExptime = memcExp(req.Mods.VivifyExptime, time.Now())
	}
}
