// Package orca is rend's orchestrator: one protocol.Handler that serves
// memcached commands from two layers, L1 (a stock memcached holding the hot
// set in RAM, values chunked by package chunk) and L2 (mnemonic, the system
// of record on SSD), following DESIGN §4.
//
// The three modes (l1only, l1l2 for the regular port, l1l2batch for the batch
// port) are one code path parameterised by a small policy table (policy.go).
//
// Summary of what each command does with L2 configured (l1only runs the same
// command on L1 alone, under the same locks):
//
//	set/add/replace/cas      L2 first; on success write the value to L1 with
//	                         L2's version (set on the regular port, replace on
//	                         the batch port); if that fails delete from L1
//	append/prepend/incr/decr L2 first; on success read the result back from L2
//	                         and write it to L1 as above
//	delete                   L2, then L1 whatever L2 said
//	touch                    L2, then L1 (present keys only)
//	gat/gats                 L2 gat (the record), then touch L1; on the regular
//	                         port an L1 miss is filled with add
//	get/gets                 one L1 multi-get; the misses in one L2 batch; the
//	                         regular port fills L1 with add
//	flush_all                L2 then L1
//	stats/version/verbosity  answered by rend
//
// Expiry: rend turns every client exptime into an absolute unix time once
// (or -1 for "already expired") and sends that same number to both layers,
// so both expire an item in the same second and a fill copies the remaining
// lifetime exactly.
package orca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Config configures an orchestrator. Build it in main and pass it to New.
type Config struct {
	Mode Mode
	// L1 is the memcached backend (required).
	L1 Backend
	// L2 is the mnemonic backend (required unless Mode is L1Only).
	L2 Backend
	// Locks are the striped key locks, shared by all orchestrators of the
	// process. Nil: New makes private ones (fine for a single listener).
	Locks *Locks
	// Stats receives the counters, shared by all orchestrators of the
	// process. Nil: New makes private ones.
	Stats *Stats
	// Pending holds the keys whose L1 copy could not be invalidated,
	// shared by all orchestrators of the process; main runs its Drain
	// loop. Nil: New makes a private one.
	Pending *Pending
	// ChunkSize is the data bytes per L1 chunk (default chunk.DefaultChunkSize).
	ChunkSize int
	// MaxItemSize is the largest value accepted (default 20 MiB).
	MaxItemSize int
	// Version is answered to "version".
	Version string
	// Started is the process start time reported by stats (default now).
	Started time.Time
	// ConnStats appends the server's connection counters to a stats reply
	// (server.Stats.AppendStats). Optional.
	ConnStats func([]protocol.Stat) []protocol.Stat
	// Logger receives backend trouble. Nil: slog.Default().
	Logger *slog.Logger
}

// DefaultMaxItemSize is the largest value rend accepts by default.
const DefaultMaxItemSize = 20 << 20

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	if c.ChunkSize == 0 {
		c.ChunkSize = chunk.DefaultChunkSize
	}
	if c.MaxItemSize == 0 {
		c.MaxItemSize = DefaultMaxItemSize
	}
	if c.Locks == nil {
		c.Locks = NewLocks(0)
	}
	if c.Stats == nil {
		c.Stats = new(Stats)
	}
	if c.Pending == nil {
		c.Pending = new(Pending)
	}
	if c.Started.IsZero() {
		c.Started = time.Now()
	}
	if c.Version == "" {
		c.Version = "moneta-rend"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case int(c.Mode) >= len(policies):
		return fmt.Errorf("orca: unknown mode %d", c.Mode)
	case c.L1 == nil:
		return errors.New("orca: L1 backend required")
	case c.Mode != L1Only && c.L2 == nil:
		return fmt.Errorf("orca: mode %v needs an L2 backend", c.Mode)
	case c.Mode == L1Only && c.L2 != nil:
		return errors.New("orca: mode l1only with an L2 backend")
	case c.ChunkSize < 16 || c.ChunkSize > 512<<10:
		return fmt.Errorf("orca: chunk size %d out of range 16..%d", c.ChunkSize, 512<<10)
	case c.MaxItemSize < 1 || c.MaxItemSize > 1<<30:
		return fmt.Errorf("orca: max item size %d out of range 1..%d", c.MaxItemSize, 1<<30)
	}
	return nil
}

// Orca is the orchestrating protocol.Handler of one listener.
type Orca struct {
	pol     policy
	cfg     Config
	l1      *l1
	l2      Backend
	locks   *Locks
	stats   *Stats
	pending *Pending
	log     *slog.Logger
	pool    *pool
	// lastVersion is the last version handed out in l1only mode (atomic;
	// see nextVersion).
	lastVersion atomic.Uint64
	// fillSlots holds a token per L1 fill running behind its reply
	// (fillLater); waitMu serialises WaitFills.
	fillSlots chan struct{}
	waitMu    sync.Mutex
}

// New returns the orchestrator for cfg.
func New(cfg Config) (*Orca, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := new(pool)
	o := &Orca{
		pol: policies[cfg.Mode], cfg: cfg, l2: cfg.L2,
		locks: cfg.Locks, stats: cfg.Stats, pending: cfg.Pending, log: cfg.Logger, pool: p,
		fillSlots: make(chan struct{}, maxAsyncFills),
	}
	o.l1 = &l1{be: cfg.L1, chunkSize: cfg.ChunkSize, maxItem: cfg.MaxItemSize, stats: cfg.Stats, pool: p}
	return o, nil
}

// Stats returns the counters the orchestrator updates.
func (o *Orca) Stats() *Stats { return o.stats }

// Handle executes one client request.
func (o *Orca) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	switch req.Command {
	case protocol.CmdGet, protocol.CmdGets:
		return o.get(ctx, req, resp)
	case protocol.CmdGat, protocol.CmdGats:
		if !req.HasExptime {
			return o.get(ctx, req, resp)
		}
		return o.gat(ctx, req, resp)
	case protocol.CmdTouch:
		return o.touch(ctx, req, resp)
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdCas:
		return o.store(ctx, req, resp)
	case protocol.CmdAppend, protocol.CmdPrepend, protocol.CmdIncr, protocol.CmdDecr:
		return o.modify(ctx, req, resp)
	case protocol.CmdDelete:
		return o.delete(ctx, req, resp)
	case protocol.CmdFlushAll:
		return o.flush(ctx, req, resp)
	case protocol.CmdStats:
		o.statsReply(ctx, req, resp)
		return nil
	case protocol.CmdVersion:
		resp.Message = o.cfg.Version
		return nil
	case protocol.CmdVerbosity:
		return nil
	case protocol.CmdCacheMemlimit:
		return o.memlimit(ctx, req, resp)
	}
	resp.ClientError("unsupported command")
	return nil
}

// errBackend wraps a backend failure for the server's log; the client sees
// only the fixed message set in the response.
type errBackend struct {
	layer string
	err   error
}

func (e *errBackend) Error() string { return "rend: " + e.layer + ": " + e.err.Error() }
func (e *errBackend) Unwrap() error { return e.err }

func (o *Orca) fail(resp *protocol.Response, layer string, err error) error {
	resp.Reset()
	resp.ServerError(layer + " unavailable")
	return &errBackend{layer: layer, err: err}
}

// memcExp turns a client exptime into the number rend sends to both layers:
// 0 never, -1 already expired, else an absolute unix time (which memcached
// and mnemonic read as absolute because it is above 30 days).
//
// Absolute times beyond 2038-01-19 (the binary protocol's unsigned
// exptimes reach 2106) are clamped to math.MaxInt32: memcached parses
// exptimes as 32-bit signed numbers and would read them as negative,
// i.e. already expired.
func memcExp(exptime int64, now time.Time) int64 {
	abs, expired := protocol.AbsExpiry(exptime, now)
	if expired {
		return -1
	}
	return min(abs, math.MaxInt32)
}

// nextVersion hands out l1only versions (the CAS clients see when there is
// no L2): nanoseconds since the epoch, forced to increase, so versions stay
// unique across rend restarts without any stored state.
func (o *Orca) nextVersion() uint64 {
	for {
		last := o.lastVersion.Load()
		v := uint64(time.Now().UnixNano())
		if v <= last {
			v = last + 1
		}
		if o.lastVersion.CompareAndSwap(last, v) {
			return v
		}
	}
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
	if req.Vivify && req.Mods.Meta {
		dst.Mods.VivifyExptime = memcExp(req.Mods.VivifyExptime, time.Now())
	}
}

// callL2 sends req (converted) to L2 into a pooled response the caller puts back.
func (o *Orca) callL2(ctx context.Context, req *protocol.Request, exp int64) (*protocol.Response, error) {
	r := o.pool.req()
	defer o.pool.putReq(r)
	l2Request(r, req, exp)
	resp := o.pool.resp()
	if err := o.l2.Handle(ctx, r, resp); err != nil {
		o.stats.L2Errors.Add(1)
		o.pool.putResp(resp)
		return nil, err
	}
	return resp, nil
}

// Writes in the L2 modes follow one rule (the invariant in rend/README,
// "Faults"): L1 never holds a copy that L2 may no longer hold. So a write
// takes the key's L1 copy out *before* asking L2 (takeOut), and puts the
// result back only after L2 accepted it (updateL1). Why before and not
// after: rend can die (kill -9, OOM) between any two steps. With
// "L2, then L1", a death after L2 applied the write leaves L1 with the
// previous value (or a deleted key) and nobody left to know it, served
// until it expires. With "take out, L2, put back" every death leaves L1
// without a copy or with L2's current one. The price is one L1 delete per
// write; reads are untouched (an L1 hit stays one L1 round trip). A reader
// that finds the key missing meanwhile goes to L2 under the stripe's shared
// lock, so it waits for the write and fills L2's new item.
//
// What L2 answered then decides nothing for L1 except whether to put the
// result back: OK puts it back; NOT_STORED, EXISTS and NOT_FOUND leave L2's
// item as it was (memcached does too), and any other refusal (object too
// large, out of memory: memcached unlinks the old item of a failed set) may
// have removed it; L1 is empty either way and the next read refills it.
// An ambiguous outcome (timeout, connection lost after sending) holds the
// key (Pending.hold): L2 may still apply the write later.

// takeOut deletes key's L1 copy before its L2 write (see above). It reports
// whether L1 had a copy (the batch port puts back only those) and whether
// the delete landed; if it did not, the key is pending (no L1 hit served
// until a background delete lands) and the write leaves L1 alone.
func (o *Orca) takeOut(ctx context.Context, key []byte) (hot, ok bool) {
	if !o.l1.be.Healthy() {
		// L1 down or its circuit open: do not wait for it.
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		return false, false
	}
	found, err := o.l1.delete(ctx, key)
	if err != nil {
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		o.log.Debug("rend: L1 delete before write failed", "err", err)
		return false, false
	}
	return found, true
}

// takeOutKeys is takeOut for the keys of a multi-key write (gat), in one
// pipelined L1 batch. hot[i] says keys[i] was in L1; ok is false if the
// batch failed (every key is then pending).
func (o *Orca) takeOutKeys(ctx context.Context, keys [][]byte) (hot []bool, ok bool) {
	hot = make([]bool, len(keys))
	if len(keys) == 1 {
		hot[0], ok = o.takeOut(ctx, keys[0])
		return hot, ok
	}
	var err error = errL1Status
	if o.l1.be.Healthy() {
		err = o.l1.deleteKeys(ctx, keys, hot)
	}
	if err != nil {
		for _, k := range keys {
			o.stats.L1InvalidationErrors.Add(1)
			o.pending.add(k)
		}
		return hot, false
	}
	return hot, true
}

// l2Failed handles a write whose L2 call returned an error: L2 may or may
// not apply it (a stalled mnemonic applies what it had queued when it
// resumes), so the keys are held until L2 settles.
func (o *Orca) l2Failed(resp *protocol.Response, keys [][]byte, err error) error {
	for _, k := range keys {
		o.pending.hold(k)
	}
	return o.fail(resp, "L2", err)
}

// updateL1 puts the result of a write L2 accepted into L1 (takeOut removed
// the old copy): on the regular port always, on the batch port only if the
// key was in L1 before (hot), so bulk loads do not evict the hot set. A
// failure deletes the key from L1 again: a missing copy only costs a
// refill, while a stale one would be served as a hit.
func (o *Orca) updateL1(ctx context.Context, key []byte, it item, hot bool) {
	if o.pol.l1Write == protocol.CmdReplace {
		o.stats.replaced(hot)
		if !hot {
			return
		}
	}
	if o.pending.suspect(key) {
		// L1 may still hold an older copy, or L2 an ambiguous write:
		// leave the key to L2 until that is resolved.
		return
	}
	if _, err := o.l1.store(ctx, protocol.CmdSet, key, it); err != nil {
		o.invalidate(ctx, key)
	}
}

func (o *Orca) invalidate(ctx context.Context, key []byte) {
	o.stats.L1Invalidations.Add(1)
	if _, err := o.l1.delete(ctx, key); err != nil {
		// L1 may still hold the value from before the write: no L1 hit
		// for this key is served until a background delete lands.
		o.stats.L1InvalidationErrors.Add(1)
		o.pending.add(key)
		o.log.Debug("rend: L1 invalidation failed", "err", err)
	}
}

// get serves get/gets (and gat without a new exptime).
func (o *Orca) get(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if o.pol.l2 && needsRecord(req) {
		return o.recordRead(ctx, req, resp) // see meta.go
	}
	if !o.pol.l2 && needsRecord(req) {
		return o.l1onlyMetaRead(ctx, req, resp) // see l1only.go
	}
	layer, err := o.lookup(ctx, req.Keys, resp)
	if err == nil && !o.pol.l2 && req.Mods.Meta && anyState(resp) {
		// An item with meta state: the answer (and W) needs package item.
		resp.Reset()
		return o.l1onlyMetaRead(ctx, req, resp)
	}
	if err != nil && (layer == "L1" || len(resp.Hits) == 0) {
		return o.fail(resp, layer, err)
	}
	// A failed L2 read still serves the L1 hits, if there are any (a text
	// multi-get cannot report a per-key error); the rest read as misses.
	return nil
}

// HandleGets serves several get/gets requests that a client pipelined
// (server.GetBatcher) with one lookup of all their keys: one L1 multi-get
// and one L2 batch instead of one of each per request. Each request gets
// exactly what get would have given it alone, failures included: an L1
// failure in l1only mode fails them all, a failed L2 read fails those that
// had no L1 hit.
func (o *Orca) HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	if len(reqs) == 1 || o.anyNeedsRecord(reqs) {
		for i := range reqs {
			errs[i] = o.get(ctx, reqs[i], resps[i])
		}
		return
	}
	all := o.pool.req()
	defer o.pool.putReq(all)
	for _, r := range reqs {
		all.Keys = append(all.Keys, r.Keys...)
	}
	defer clear(all.Keys) // they alias the client's requests
	// Look everything up into the first response. Its hits are then in key
	// order, so each request's hits are a run: the first keeps its own,
	// the others move to their request's response with their values left
	// in the first one's arena (no copy; GetBatcher allows it). Failing a
	// response resets only its lengths, so the arena stays intact.
	first := resps[0]
	layer, err := o.lookup(ctx, all.Keys, first)
	found := first.Hits
	h, off := 0, 0
	for i, r := range reqs {
		end, resp := off+len(r.Keys), resps[i]
		start := h
		for h < len(found) && found[h].Index < end {
			h++
		}
		if i == 0 {
			first.Hits = found[:h]
		} else {
			for _, x := range found[start:h] {
				x.Index -= off
				resp.Hits = append(resp.Hits, x)
			}
		}
		if err != nil && (layer == "L1" || h == start) {
			errs[i] = o.fail(resp, layer, err)
		}
		off = end
	}
}

// lookup reads keys into resp: L1 first, then (with L2) the misses from L2
// in one batch, filling L1 per the policy; resp.Hits end in key order. A
// failure is returned with its layer, resp keeping what was found before
// it: nothing after an L1 failure in l1only mode, the L1 hits after a
// failed L2 read. The caller decides what the client sees.
func (o *Orca) lookup(ctx context.Context, keys [][]byte, resp *protocol.Response) (layer string, err error) {
	o.stats.CmdGet.Add(uint64(len(keys)))
	var l1err error
	if o.pol.l2 && !o.l1.be.Healthy() {
		// L1 is down: serve from L2 alone rather than wait on it.
		l1err = errL1Status
	} else {
		l1err = o.l1.get(ctx, keys, resp, false, 0)
	}
	if l1err != nil && !o.pol.l2 {
		return "L1", l1err
	}
	if l1err != nil {
		o.stats.L2Fallbacks.Add(1)
	}
	if o.pol.l2 && o.pending.any.Load() {
		// Drop hits for keys whose L1 copy may predate a write (see
		// Pending); they are read from L2 below like misses.
		kept := resp.Hits[:0]
		for _, h := range resp.Hits {
			if !o.pending.suspect(keys[h.Index]) {
				kept = append(kept, h)
			}
		}
		resp.Hits = kept
	}
	nL1 := len(resp.Hits)
	o.stats.L1Hits.Add(uint64(nL1))
	o.stats.L1Misses.Add(uint64(len(keys) - nL1))
	defer func() {
		sortHits(resp)
		o.stats.GetHits.Add(uint64(len(resp.Hits)))
		o.stats.GetMisses.Add(uint64(len(keys) - len(resp.Hits)))
	}()
	if !o.pol.l2 || nL1 == len(keys) {
		return "", nil
	}

	// The misses go to L2 in one batch.
	// Stack room for a short get's bookkeeping: no allocation then.
	var hitArr [16]bool
	var missArr [16]int
	hit, missIdx := hitArr[:0], missArr[:0]
	if len(keys) > len(hitArr) {
		hit, missIdx = make([]bool, 0, len(keys)), make([]int, 0, len(keys)-nL1)
	}
	hit = hit[:len(keys)]
	for i := range resp.Hits {
		hit[resp.Hits[i].Index] = true
	}
	l2req := o.pool.req()
	defer o.pool.putReq(l2req)
	l2req.Command = protocol.CmdGet
	for i, k := range keys {
		if !hit[i] {
			missIdx = append(missIdx, i)
			l2req.Keys = append(l2req.Keys, k)
		}
	}

	// Hold the misses' stripes shared from the L2 read until the fills
	// are done. Without it: we read v1 from L2; a writer sets v2 in L2 and
	// L1 (or deletes the key from both); our fill then adds v1 to L1, where
	// it would be served until it expires. Under the shared lock the writer
	// waits for the fill, then overwrites (or deletes) it.
	var stripeBuf [16]int
	stripes := o.locks.set(stripeBuf[:0], l2req.Keys)
	o.locks.rlock(stripes)
	l2resp := o.pool.resp()
	handedOff := false // the fill job owns stripes and l2resp
	defer func() {
		if !handedOff {
			o.locks.runlock(stripes)
			o.pool.putResp(l2resp)
		}
	}()
	if err := o.l2.Handle(ctx, l2req, l2resp); err != nil || l2resp.Status != protocol.StatusOK {
		o.stats.L2Errors.Add(1)
		if err == nil {
			err = errors.New(l2resp.Message)
		}
		return "L2", err
	}
	o.stats.L2Hits.Add(uint64(len(l2resp.Hits)))
	o.stats.L2Misses.Add(uint64(len(missIdx) - len(l2resp.Hits)))
	for i := range l2resp.Hits {
		h := &l2resp.Hits[i]
		h.CopyMeta(resp.AppendHit(missIdx[h.Index], h.Value, h.Flags, h.CAS, h.Exptime))
	}
	if o.pol.fill && l1err == nil && len(l2resp.Hits) > 0 {
		// The hits are in resp already: fill behind the reply when we
		// can (issue 13 item 3), inline when too many fills are running.
		if handedOff = o.fillLater(ctx, l2req.Keys, l2resp, stripes); !handedOff {
			o.fill(ctx, l2req.Keys, l2resp.Hits)
		}
	}
	return "", nil
}

// fill copies L2 hits into L1 with add (the caller, or the fill job that
// took over from it, holds their stripes shared). add, not set: a concurrent fill of the same version may have won
// already, and nothing newer can have been written since our L2 read
// because writers need the stripe exclusively.
func (o *Orca) fill(ctx context.Context, keys [][]byte, hits []protocol.Hit) {
	for i := range hits {
		h := &hits[i]
		if o.pending.suspect(keys[h.Index]) {
			continue // an ambiguous write may yet change it in L2
		}
		if hasMetaState(h) {
			continue // see meta.go: such items live in L2 only
		}
		st, err := o.l1.store(ctx, protocol.CmdAdd, keys[h.Index], item{value: h.Value, flags: h.Flags, exp: h.Exptime, version: h.CAS})
		switch {
		case err != nil:
			o.stats.L1FillErrors.Add(1)
			return // L1 trouble: the next read tries again
		case st == protocol.StatusOK:
			o.stats.L1Fills.Add(1)
		default:
			o.stats.L1FillsLost.Add(1)
		}
	}
}

// lockKeys takes the stripes of keys exclusively and returns them for unlock.
func (o *Orca) lockKeys(buf []int, keys [][]byte) []int {
	s := o.locks.set(buf, keys)
	o.locks.lock(s)
	return s
}

// store serves set/add/replace/cas.
func (o *Orca) store(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdSet.Add(1)
	key := req.Key()
	exp := memcExp(req.Exptime, time.Now())
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))

	if o.pol.l2 {
		// Take L1's copy out, then L2 (the record, owner of the version),
		// then put the result back (see takeOut). An add needs no
		// take-out: it succeeds only if L2 has no item, and then L1 has
		// none either; if it fails L2 is unchanged.
		hot, l1ok := false, true
		if req.Command != protocol.CmdAdd {
			hot, l1ok = o.takeOut(ctx, key)
		}
		r, err := o.callL2(ctx, req, exp)
		if err != nil {
			return o.l2Failed(resp, req.Keys[:1], err)
		}
		defer o.pool.putResp(r)
		resp.Status, resp.CAS, resp.Message = r.Status, r.CAS, r.Message
		switch r.Status {
		case protocol.StatusOK:
			if l1ok {
				if req.Invalidate {
					// ms I may have stored a stale item, which lives in L2
					// only (see meta.go); L1's copy is out already.
				} else {
					o.updateL1(ctx, key, item{value: req.Value, flags: req.Flags, exp: exp, version: r.CAS}, hot)
				}
			}
		case protocol.StatusNotStored, protocol.StatusExists, protocol.StatusNotFound:
			// L2 kept its item unchanged.
		default:
			// Too large, out of memory, any other refusal: L2 may have
			// dropped its item. Only an add still has an L1 copy to drop.
			if req.Command == protocol.CmdAdd {
				o.invalidate(ctx, key)
			}
		}
		return nil
	}

	return o.l1onlyStore(ctx, req, resp, exp) // see l1only.go
}

// l1Version reads the version of key's L1 header.
func (o *Orca) l1Version(ctx context.Context, key []byte) (bool, uint64, error) {
	hdrs, hresp, err := o.l1.headers(ctx, [][]byte{key}, nil)
	if err != nil {
		return false, 0, err
	}
	defer o.pool.putResp(hresp)
	if len(hdrs) == 0 {
		return false, 0, nil
	}
	return true, hdrs[0].h.Version, nil
}

// modify serves append/prepend/incr/decr.
func (o *Orca) modify(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if req.Command == protocol.CmdIncr || req.Command == protocol.CmdDecr {
		o.stats.CmdIncr.Add(1)
	} else {
		o.stats.CmdSet.Add(1)
	}
	key := req.Key()
	now := time.Now()
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))

	if o.pol.l2 {
		hot, l1ok := o.takeOut(ctx, key) // see takeOut
		r, err := o.callL2(ctx, req, memcExp(req.Exptime, now))
		if err != nil {
			return o.l2Failed(resp, req.Keys[:1], err)
		}
		resp.Status, resp.CAS, resp.Number, resp.Message = r.Status, r.CAS, r.Number, r.Message
		early, hasEarly := int64(0), len(r.Hits) > 0
		if hasEarly {
			early = r.Hits[0].Exptime // the TTL before an ma T (mcclient sends T after t)
		}
		o.pool.putResp(r)
		if resp.Status != protocol.StatusOK {
			return nil // L1's copy is out; L2 kept or dropped its item
		}
		// rend does not know the new value (append) or its flags and
		// expiry (incr), so it reads the result back from L2 while still
		// holding the stripe: no rend write of this key can come between
		// L2's change and this read, so L1 gets exactly L2's new item.
		if exp, ok := o.refreshL1(ctx, key, hot && l1ok, l1ok); ok && (req.Command == protocol.CmdIncr || req.Command == protocol.CmdDecr) {
			// The meta ma reply can show the item's TTL (t); the codec
			// takes it from a hit.
			h := resp.AppendHit(0, nil, 0, resp.CAS, exp)
			if hasEarly && req.Mods.Meta && early != exp {
				// L2 applied the client's T and N and printed t in the
				// client's order (mcclient keeps it): show its t.
				h.EarlyTTL, h.EarlyExptime = true, early
			}
		}
		return nil
	}

	return o.l1onlyApply(ctx, req, resp, true) // see l1only.go
}

// refreshL1 copies key's current L2 item into L1 per the mode's policy
// (updateL1; only if put, since takeOut failed otherwise). It returns the
// item's expiry when L2 had it.
func (o *Orca) refreshL1(ctx context.Context, key []byte, hot, put bool) (exp int64, ok bool) {
	r := o.pool.req()
	defer o.pool.putReq(r)
	r.Command = protocol.CmdGet
	r.Keys = append(r.Keys, key)
	resp := o.pool.resp()
	defer o.pool.putResp(resp)
	if err := o.l2.Handle(ctx, r, resp); err != nil || resp.Status != protocol.StatusOK || len(resp.Hits) == 0 {
		if err != nil {
			o.stats.L2Errors.Add(1)
		}
		return 0, false // L1's copy is out already
	}
	h := &resp.Hits[0]
	if put {
		o.updateL1(ctx, key, item{value: h.Value, flags: h.Flags, exp: h.Exptime, version: h.CAS}, hot)
	}
	return h.Exptime, true
}

// delete serves delete.
func (o *Orca) delete(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdDelete.Add(1)
	key := req.Key()
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))
	if o.pol.l2 {
		// L1 first, whatever L2 will say (see takeOut): a delete must not
		// leave a copy in L1 even if rend dies right after L2's, and a
		// refused compare (EXISTS) only costs the next read a refill.
		o.takeOut(ctx, key)
		// md I T: the new TTL goes to L2 as an absolute time like any other.
		r, err := o.callL2(ctx, req, memcExp(req.Exptime, time.Now()))
		if err != nil {
			return o.l2Failed(resp, req.Keys[:1], err)
		}
		resp.Status, resp.Message = r.Status, r.Message
		o.pool.putResp(r)
		return nil
	}
	if req.Invalidate {
		// md I keeps the item, stale, with a new version (see l1only.go).
		return o.l1onlyApply(ctx, req, resp, true)
	}
	if req.CAS != 0 {
		found, version, err := o.l1Version(ctx, key)
		if err != nil {
			return o.fail(resp, "L1", err)
		}
		if found && version != req.CAS {
			resp.Status = protocol.StatusExists
			return nil
		}
	}
	found, err := o.l1.delete(ctx, key)
	if err != nil {
		return o.fail(resp, "L1", err)
	}
	if !found {
		resp.Status = protocol.StatusNotFound
	}
	return nil
}

// touch serves touch.
func (o *Orca) touch(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdTouch.Add(1)
	key := req.Key()
	exp := memcExp(req.Exptime, time.Now())
	var buf [1]int
	defer o.locks.unlock(o.lockKeys(buf[:0], req.Keys))
	if o.pol.l2 {
		// A touch changes when L2 drops the item, so L1's copy (whose
		// expiry would be the old one) goes first, as for any write
		// (takeOut). touch returns no value to put back: the next read
		// refills the key with its new expiry.
		o.takeOut(ctx, key)
		r, err := o.callL2(ctx, req, exp)
		if err != nil {
			return o.l2Failed(resp, req.Keys[:1], err)
		}
		resp.Status, resp.Message = r.Status, r.Message
		o.pool.putResp(r)
		return nil
	}
	found, err := o.l1.touch(ctx, key, exp)
	if err != nil {
		return o.fail(resp, "L1", err)
	}
	if !found {
		resp.Status = protocol.StatusNotFound
	}
	return nil
}

// gat serves gat/gats: a read that also sets a new expiry, so a write.
func (o *Orca) gat(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdGet.Add(uint64(len(req.Keys)))
	o.stats.CmdTouch.Add(uint64(len(req.Keys)))
	if o.pol.l2 && needsRecord(req) {
		return o.recordRead(ctx, req, resp) // see meta.go
	}
	if !o.pol.l2 && req.Mods.Meta {
		return o.l1onlyMetaRead(ctx, req, resp) // see l1only.go
	}
	exp := memcExp(req.Exptime, time.Now())
	stripes := o.lockKeys(make([]int, 0, len(req.Keys)), req.Keys)
	defer o.locks.unlock(stripes)
	defer func() {
		sortHits(resp)
		o.stats.GetHits.Add(uint64(len(resp.Hits)))
		o.stats.GetMisses.Add(uint64(len(req.Keys) - len(resp.Hits)))
	}()
	if !o.pol.l2 {
		// Holding the stripes exclusively, l1.get may rewrite the headers.
		if err := o.l1.get(ctx, req.Keys, resp, true, exp); err != nil {
			return o.fail(resp, "L1", err)
		}
		return nil
	}
	// L1's copies out first (a gat is a touch: see takeOut), then L2 (the
	// record), which returns each item with its new expiry, then put the
	// items back: on the regular port all of them, on the batch port
	// those L1 had (both ports give L1 the new expiry; Rend's batch port
	// left L1 copies at their old one, immortal ones included).
	hot, l1ok := o.takeOutKeys(ctx, req.Keys)
	r, err := o.callL2(ctx, req, exp)
	if err != nil {
		return o.l2Failed(resp, req.Keys, err)
	}
	defer o.pool.putResp(r)
	if r.Status != protocol.StatusOK {
		resp.Status, resp.Message = r.Status, r.Message
		return nil
	}
	for i := range r.Hits {
		h := &r.Hits[i]
		nh := resp.AppendHit(h.Index, h.Value, h.Flags, h.CAS, h.Exptime)
		h.CopyMeta(nh) // with the t L2 showed, for a meta client
		if !l1ok || (!o.pol.fill && !hot[h.Index]) || hasMetaState(h) {
			continue
		}
		key := req.Keys[h.Index]
		if o.pending.suspect(key) {
			continue
		}
		if _, err := o.l1.store(ctx, protocol.CmdSet, key, item{value: h.Value, flags: h.Flags, exp: exp, version: h.CAS}); err != nil {
			o.invalidate(ctx, key)
		} else if !hot[h.Index] {
			o.stats.L1Fills.Add(1)
		}
	}
	return nil
}

// flush serves flush_all. With L2: L1, then L2 (the record), then L1
// again. The first L1 flush is takeOut for every key (rend may die after
// L2's flush); the second removes what reads filled from L2 in between (a
// flush takes no key locks). If an L1 flush fails, all of L1 is pending
// (no hit served until a flush lands).
func (o *Orca) flush(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	o.stats.CmdFlush.Add(1)
	if !o.pol.l2 {
		if err := o.l1.flush(ctx, req); err != nil {
			return o.fail(resp, "L1", err)
		}
		return nil
	}
	l1flush := func() {
		if !o.l1.be.Healthy() || o.l1.flush(ctx, req) != nil {
			o.stats.L1InvalidationErrors.Add(1)
			o.pending.flushL1()
		}
	}
	l1flush()
	r, err := o.callL2(ctx, req, req.Exptime)
	if err != nil {
		o.pending.holdEvery()
		return o.fail(resp, "L2", err)
	}
	st := r.Status
	o.pool.putResp(r)
	if st != protocol.StatusOK {
		resp.ServerError("L2 flush failed")
		return nil
	}
	l1flush()
	return nil
}

// statsReply answers "stats" from rend's own counters; curr_items and
// total_items come from the system of record (L2, or L1 in l1only mode,
// where they count chunk items too). "stats reset" is accepted and resets
// nothing (the counters are cumulative, for the metrics endpoint); other
// groups are unknown, answered ERROR.
func (o *Orca) statsReply(ctx context.Context, req *protocol.Request, resp *protocol.Response) {
	switch string(req.Args) {
	case "":
	case "reset":
		return
	case "slabs", "items":
		// L1's own: where the hot set's memory goes (rend's header and
		// chunk items, by slab class).
		o.l1Stats(ctx, req, resp)
		return
	default:
		if !protocol.AdminStats(req.Args, resp, &o.stats.Detail) {
			resp.Status = protocol.StatusNotFound
		}
		return
	}
	now := time.Now()
	s := func(name, v string) { resp.Stats = append(resp.Stats, protocol.Stat{Name: name, Value: v}) }
	s("pid", strconv.Itoa(os.Getpid()))
	s("uptime", strconv.FormatInt(int64(now.Sub(o.cfg.Started)/time.Second), 10))
	s("time", strconv.FormatInt(now.Unix(), 10))
	s("version", o.cfg.Version)
	s("pointer_size", "64")
	s("mode", o.pol.name)
	if o.cfg.ConnStats != nil {
		resp.Stats = o.cfg.ConnStats(resp.Stats)
	}
	resp.Stats = o.stats.AppendStats(resp.Stats)
	items, total := "0", "0"
	var rec Backend = o.l1.be
	if o.l2 != nil {
		rec = o.l2
	}
	sreq, sresp := o.pool.req(), o.pool.resp()
	sreq.Command = protocol.CmdStats
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if err := rec.Handle(sctx, sreq, sresp); err == nil {
		for _, st := range sresp.Stats {
			switch st.Name {
			case "curr_items":
				items = st.Value
			case "total_items":
				total = st.Value
			}
		}
	}
	cancel()
	o.pool.putReq(sreq)
	o.pool.putResp(sresp)
	s("curr_items", items)
	s("total_items", total)
	s("l1_pending_invalidations", strconv.Itoa(o.pending.Len()))
	s("l1_healthy", boolStat(o.l1.be.Healthy()))
	if o.l2 != nil {
		s("l2_healthy", boolStat(o.l2.Healthy()))
	}
	s("chunk_size", strconv.Itoa(o.cfg.ChunkSize))
	s("item_size_max", strconv.Itoa(o.cfg.MaxItemSize))
}

// memlimit serves cache_memlimit: the memory rend caches in is L1's, so
// L1 gets the new limit (after memcached's own checks, made here so that a
// refusal does not depend on L1 being up).
func (o *Orca) memlimit(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if protocol.CheckMemlimit(req.Args, resp) == 0 {
		return nil
	}
	r, lresp := o.pool.req(), o.pool.resp()
	defer o.pool.putReq(r)
	defer o.pool.putResp(lresp)
	r.Command, r.Args = protocol.CmdCacheMemlimit, req.Args
	if err := o.l1.handle(ctx, r, lresp); err != nil {
		return o.fail(resp, "L1", err)
	}
	resp.Status, resp.Message = lresp.Status, lresp.Message
	return nil
}

// l1Stats answers a stats group with L1's reply to the same group.
func (o *Orca) l1Stats(ctx context.Context, req *protocol.Request, resp *protocol.Response) {
	sreq, sresp := o.pool.req(), o.pool.resp()
	defer o.pool.putReq(sreq)
	defer o.pool.putResp(sresp)
	sreq.Command, sreq.Args = protocol.CmdStats, req.Args
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := o.l1.be.Handle(sctx, sreq, sresp); err != nil || sresp.Status != protocol.StatusOK {
		resp.ServerError("L1 unavailable")
		return
	}
	resp.Stats = append(resp.Stats, sresp.Stats...)
}

func boolStat(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
