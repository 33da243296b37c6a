package store

/*
#include "mgshim.h"
*/
import "C"

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Writes through mgshim's mn_write: one cgo call commits a shard's part of
// a request (a single put or delete) or of a run of pipelined sets (one
// RocksDB WriteBatch: one WAL record, one commit).
//
// Why: a set used to be grocksdb's Put of a record assembled in Go, so its
// value was copied twice (into the record, then into RocksDB's batch) and a
// pipeline of sets from one connection paid one RocksDB commit each, the
// next waiting for the last (the commit groups RocksDB formed averaged 1.3
// writes). Here the value goes from the request straight into the batch
// (the Go memory is pinned for the call), and a run is one commit per
// shard. The numbers are in bench/results/l2path.md.

// writeScratch stages the operations of one mn_write call, pooled.
type writeScratch struct {
	ops   []C.uchar
	kbuf  []byte // keys back to back
	klens []C.size_t
	hbuf  []byte // record headers of the puts back to back
	hlens []C.size_t
	// vals point at each put's value (Go memory, pinned by pin until the
	// call returns, or C memory, which needs no pin).
	vals  []unsafe.Pointer
	vlens []C.size_t
	// pins pin the values, pinsPer each: a Pinner keeps that many
	// pointers inline and allocates beyond them on every use, so a run of
	// many values spreads them over several Pinners, which keep their
	// storage across runs (no allocation once warm).
	pins   []runtime.Pinner
	pinned int
	err    [256]C.char
}

// pinsPer is how many pointers a runtime.Pinner holds without allocating
// (the runtime's pinnerRefStoreSize).
const pinsPer = 5

var writePool = sync.Pool{New: func() any { return new(writeScratch) }}

// maxPooledWrite bounds the key buffer a pooled scratch keeps.
const maxPooledWrite = 64 << 10

func (w *writeScratch) reset() {
	w.unpin() // in case no write was made
	w.ops, w.kbuf, w.klens = w.ops[:0], w.kbuf[:0], w.klens[:0]
	w.hbuf, w.hlens, w.vlens = w.hbuf[:0], w.hlens[:0], w.vlens[:0]
	clear(w.vals)
	w.vals = w.vals[:0]
}

func (w *writeScratch) unpin() {
	for i := range (w.pinned + pinsPer - 1) / pinsPer {
		w.pins[i].Unpin()
	}
	w.pinned = 0
}

func (w *writeScratch) addKey(op C.uchar, key []byte) {
	w.ops = append(w.ops, op)
	w.kbuf = append(w.kbuf, key...)
	w.klens = append(w.klens, C.size_t(len(key)))
}

// addPut stages the record of h and v under key. v is not copied: it must
// stay valid until the write.
func (w *writeScratch) addPut(key []byte, h header, v []byte) {
	w.addKey(C.MN_PUT, key)
	n := len(w.hbuf)
	w.hbuf = appendRecord(w.hbuf, h)
	w.hlens = append(w.hlens, C.size_t(len(w.hbuf)-n))
	p := unsafe.Pointer(unsafe.SliceData(v))
	if len(v) == 0 {
		p = nil
	} else {
		// A no-op for C memory (a value read from RocksDB).
		if w.pinned/pinsPer == len(w.pins) {
			w.pins = append(w.pins, runtime.Pinner{})
		}
		w.pins[w.pinned/pinsPer].Pin(p)
		w.pinned++
	}
	w.vals = append(w.vals, p)
	w.vlens = append(w.vlens, C.size_t(len(v)))
}

func (w *writeScratch) addDelete(key []byte) {
	w.addKey(C.MN_DELETE, key)
	w.vals = append(w.vals, nil)
	w.vlens = append(w.vlens, 0)
}

// commitWrites commits what w staged to sh in one WriteBatch, observed as one
// Put or Delete per operation. A failed write stops the shard's writes
// until the watcher reopens it (see writable).
func (s *Store) commitWrites(sh *shard, w *writeScratch) error {
	n := len(w.ops)
	if n == 0 {
		return nil
	}
	if !sh.writable() {
		return errShardDown
	}
	hbuf := w.hbuf
	if len(hbuf) == 0 {
		hbuf = append(hbuf, 0) // a valid pointer for an all-delete batch
	}
	start := s.clock()
	rc := C.mn_write(rawDB(sh.db), C.int(boolInt(s.opts.SyncWrites)), C.size_t(n), &w.ops[0],
		(*C.char)(unsafe.Pointer(&w.kbuf[0])), &w.klens[0], (*C.char)(unsafe.Pointer(&hbuf[0])), nilIfEmpty(w.hlens),
		(**C.char)(unsafe.Pointer(&w.vals[0])), &w.vlens[0], &w.err[0], C.size_t(len(w.err)))
	s.stats.writeCommits.Add(1)
	s.stats.writeOps.Add(uint64(n))
	var err error
	if rc != 0 {
		err = errors.New(C.GoString(&w.err[0]))
		s.shardDown(sh, "write failed: "+err.Error())
	}
	if s.opts.ObserveShard != nil {
		d := time.Since(start) / time.Duration(n)
		for _, op := range w.ops {
			kind := ShardPut
			if op == C.MN_DELETE {
				kind = ShardDelete
			}
			s.opts.ObserveShard(sh.idx, kind, d, err)
		}
	}
	return err
}

func nilIfEmpty(s []C.size_t) *C.size_t {
	if len(s) == 0 {
		return nil
	}
	return &s[0]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Store) getWrite() *writeScratch { return writePool.Get().(*writeScratch) }

func (s *Store) putWrite(w *writeScratch) {
	w.reset()
	if cap(w.kbuf) > maxPooledWrite || cap(w.hbuf) > maxPooledWrite {
		return
	}
	writePool.Put(w)
}

// put writes one record (a single request's write).
func (s *Store) put(sh *shard, key []byte, h header, data []byte) error {
	w := s.getWrite()
	defer s.putWrite(w)
	w.addPut(key, h, data)
	return s.commitJoined(sh, w)
}

// del deletes key from sh.
func (s *Store) del(sh *shard, key []byte) error {
	w := s.getWrite()
	defer s.putWrite(w)
	w.addDelete(key)
	return s.commitJoined(sh, w)
}

// committer joins the writes that requests on different connections make
// to one shard at the same moment into one RocksDB write (group commit).
// The first writer to find no write in progress leads: it takes the open
// group and writes it while later writers join the next group and wait;
// when it is done, one of those leads the next. Every writer returns only
// once its own group is written, so an acknowledgment still follows a
// durable write (same WAL and sync settings). RocksDB would group
// concurrent writers itself, but each of them would hold an OS thread
// blocked inside a cgo call; here they wait as goroutines, and a group is
// one cgo call. Each writer holds its keys' stripe locks while it waits,
// so two writes of one key are never in one group out of order.
//
// With Options.WriteNice, the shard's groups are written by a thread of its
// own (writeThread) at a lower CPU priority instead of by their first
// writer: see writeThread for why.
type committer struct {
	mu   sync.Mutex
	cond sync.Cond // on mu: a group was written
	busy bool      // a leader is writing (guarded by mu)
	open *commitGroup
	free []*commitGroup
	// thread: writeThread runs and writes every group; writers only wait
	// (guarded by mu). work wakes it (on mu); stop asks it to end once no
	// group is open.
	thread bool
	stop   bool
	work   sync.Cond
	ended  chan struct{}
}

// commitGroup is the operations of the writers that joined it.
type commitGroup struct {
	w       writeScratch // no pins: each writer pins its own values
	done    bool
	err     error
	waiters int
}

// commitJoined commits w's operations (pinned by w) to sh in a group with
// whatever other writers of sh join it, and returns the group's error.
func (s *Store) commitJoined(sh *shard, w *writeScratch) error {
	if len(w.ops) == 0 {
		return nil
	}
	c := &sh.commit
	c.mu.Lock()
	if c.cond.L == nil {
		c.cond.L = &c.mu
	}
	g := c.open
	if g == nil {
		if n := len(c.free); n > 0 {
			g, c.free = c.free[n-1], c.free[:n-1]
		} else {
			g = new(commitGroup)
		}
		c.open = g
	}
	g.w.join(w)
	g.waiters++
	if c.thread && !c.busy {
		c.work.Signal()
	}
	for !g.done {
		if !c.thread && !c.busy && c.open == g {
			s.writeGroup(sh, g)
			break
		}
		c.cond.Wait()
	}
	err := g.err
	if g.waiters--; g.waiters == 0 {
		g.w.reset()
		g.done, g.err = false, nil
		if cap(g.w.kbuf) <= maxPooledWrite && cap(g.w.hbuf) <= maxPooledWrite {
			c.free = append(c.free, g)
		}
	}
	c.mu.Unlock()
	// The writes landed (or failed): a record read before now may be
	// stale, so a flush must read it again (heldRecord).
	for i, off := 0, 0; i < len(w.klens); i++ {
		n := int(w.klens[i])
		s.wgen[(hashKey(w.kbuf[off:off+n])>>32)%lockStripes].Add(1)
		off += n
	}
	return err
}

// startWriteThread starts sh's write thread (Options.WriteNice > 0).
func (s *Store) startWriteThread(sh *shard) {
	c := &sh.commit
	c.mu.Lock()
	if c.cond.L == nil {
		c.cond.L = &c.mu
	}
	c.work.L = &c.mu
	c.thread, c.stop = true, false
	c.ended = make(chan struct{})
	c.mu.Unlock()
	go s.writeThread(sh)
}

// stopWriteThread ends sh's write thread once the groups open now are
// written; writers that come later lead their own groups again.
func (s *Store) stopWriteThread(sh *shard) {
	c := &sh.commit
	c.mu.Lock()
	if !c.thread {
		c.mu.Unlock()
		return
	}
	c.stop = true
	c.work.Signal()
	c.mu.Unlock()
	<-c.ended
}

// writeThread writes sh's commit groups on an OS thread of its own whose
// nice value is raised by Options.WriteNice. Why: on a host whose cores are
// busy, a bulk writer's RocksDB writes (memtable inserts, the WAL write)
// took the CPU from reads at equal priority, and a read through rend
// waits for a core at every hop (rend, memcached, mnemonic), so its
// latency followed the writer's load (bench/results/l2path.md, sixth
// round). At a lower priority the kernel runs the writes when no read
// wants the core; the writes are not throttled when there is CPU to spare,
// and while they wait the groups grow (more writers join), which makes
// each write cheaper. A thread of its own because Linux lets an
// unprivileged thread raise its nice value but never lower it again: the
// thread keeps it for life (the goroutine stays locked, so the thread
// ends with it and no other goroutine ever runs on it).
func (s *Store) writeThread(sh *shard) {
	runtime.LockOSThread()
	c := &sh.commit
	defer close(c.ended)
	setThreadNice(s.opts.WriteNice, s.log)
	c.mu.Lock()
	for {
		for c.open == nil && !c.stop {
			c.work.Wait()
		}
		if c.open == nil {
			c.thread = false
			// Writers waiting for a group that nobody writes now:
			// none, since open is nil and busy is false here.
			c.mu.Unlock()
			return
		}
		s.writeGroup(sh, c.open)
	}
}

// writeGroup writes g, sh's open group, to RocksDB and wakes its waiters.
// The caller holds sh.commit.mu; it is released for the write.
func (s *Store) writeGroup(sh *shard, g *commitGroup) {
	c := &sh.commit
	c.busy, c.open = true, nil
	c.mu.Unlock()
	err := s.commitWrites(sh, &g.w)
	c.mu.Lock()
	g.err, g.done, c.busy = err, true, false
	c.cond.Broadcast()
}

// join appends the operations of o (its values stay pinned by o).
func (w *writeScratch) join(o *writeScratch) {
	w.ops = append(w.ops, o.ops...)
	w.kbuf = append(w.kbuf, o.kbuf...)
	w.klens = append(w.klens, o.klens...)
	w.hbuf = append(w.hbuf, o.hbuf...)
	w.hlens = append(w.hlens, o.hlens...)
	w.vals = append(w.vals, o.vals...)
	w.vlens = append(w.vlens, o.vlens...)
}

// Per-request state of a set run.
const (
	setAnswered uint8 = iota // resp is filled: a bad key, a full disk, a failure
	setReply                 // nothing to write: reply with the outcome
	setWrite                 // write the outcome, then reply with it
)

// setRun is the state of one HandleSets call, pooled.
type setRun struct {
	hk      []uint64
	state   []uint8
	outs    []mcitem.Outcome
	stamps  []uint64
	stripes []uint32
}

var setRunPool = sync.Pool{New: func() any { return new(setRun) }}

// plainSet reports whether req is a set that does not depend on the
// current item (no compare value), so that it can be decided and written
// without reading the key.
func plainSet(req *protocol.Request) bool {
	return req.Command == protocol.CmdSet && req.CAS == 0
}

// HandleSets answers a run of sets a client pipelined (server.RunBatcher).
// The plain sets among them (no compare value) are committed together: one
// WriteBatch per shard, with the same WAL and sync settings as a single
// set, and each is acknowledged only once its batch is written (the
// replies go out after HandleSets returns). Effects keep request order: a
// set with a compare value first commits the sets before it, and within a
// batch a later set of a key wins (its CAS is drawn later, too).
func (s *Store) HandleSets(_ context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error) {
	s.life.RLock()
	defer s.life.RUnlock()
	now := time.Now()
	for i := 0; i < len(reqs); {
		switch {
		case s.closed:
			resps[i].ServerError("shutting down")
			errs[i] = errClosed
			i++
		case !plainSet(reqs[i]):
			errs[i] = s.handle(reqs[i], resps[i], now)
			i++
		default:
			j := i + 1
			for j < len(reqs) && plainSet(reqs[j]) {
				j++
			}
			s.setRun(reqs[i:j], resps[i:j], errs[i:j], now)
			i = j
		}
	}
}

// setRun commits plain sets together. It holds the stripes of all their
// keys while it draws their versions and writes them, as a single set
// holds its key's, so no cas or other write of those keys interleaves. The
// stripes are taken in ascending order, and no one holding a stripe waits
// for another one except in that order, so runs cannot deadlock with each
// other or with single writes.
func (s *Store) setRun(reqs []*protocol.Request, resps []*protocol.Response, errs []error, now time.Time) {
	if s.writeSlots != nil {
		// One slot for the run: it is one RocksDB write per shard.
		s.writeSlots <- struct{}{}
		defer func() { <-s.writeSlots }()
	}
	r := setRunPool.Get().(*setRun)
	defer func() {
		clear(r.outs) // they alias the requests' values
		setRunPool.Put(r)
	}()
	n := len(reqs)
	r.hk, r.state, r.stamps = grow(r.hk, n), grow(r.state, n), grow(r.stamps, n)
	r.outs = grow(r.outs, n)
	r.stripes = r.stripes[:0]
	for i, req := range reqs {
		s.stats.cmdSet.Add(1)
		r.state[i] = setAnswered
		if !validKeys(req, resps[i]) {
			continue
		}
		if !s.guard.take(writeCost(len(req.Key()), len(req.Value))) {
			resps[i].ServerError(msgDiskFull)
			continue
		}
		r.hk[i] = hashKey(req.Key())
		r.state[i] = setReply
		r.stripes = append(r.stripes, uint32((r.hk[i]>>32)%lockStripes))
	}
	slices.Sort(r.stripes)
	r.stripes = slices.Compact(r.stripes)
	for _, st := range r.stripes {
		s.locks[st].Lock()
	}
	unix := now.Unix()
	for i, req := range reqs {
		if r.state[i] != setReply {
			continue
		}
		o := &r.outs[i]
		*o = mcitem.Apply(req, nil, unix, s.opts.MaxItemSize, nil)
		if o.Action == mcitem.None {
			continue
		}
		r.stamps[i] = 0
		if o.NeedCAS && o.Status == protocol.StatusOK {
			cas, st, err := s.newVersion(req, now)
			if err != nil {
				errs[i] = err
				s.failed(req, resps[i], err)
				r.state[i] = setAnswered
				continue
			}
			o.SetCAS(cas)
			r.stamps[i] = st
		}
		r.state[i] = setWrite
	}
	w := s.getWrite()
	for si, sh := range s.shards {
		w.reset()
		for i, req := range reqs {
			if r.state[i] != setWrite || r.hk[i]%uint64(len(s.shards)) != uint64(si) {
				continue
			}
			o := &r.outs[i]
			if o.Action == mcitem.Delete {
				w.addDelete(req.Key())
			} else {
				w.addPut(req.Key(), recordHeader(&o.Next, r.stamps[i]), o.Next.Value)
				s.stats.totalItems.Add(1)
			}
		}
		if err := s.commitJoined(sh, w); err != nil {
			for i, req := range reqs {
				if r.state[i] == setWrite && r.hk[i]%uint64(len(s.shards)) == uint64(si) {
					errs[i] = err
					s.failed(req, resps[i], err)
					r.state[i] = setAnswered
				}
			}
		}
	}
	s.putWrite(w)
	for _, st := range r.stripes {
		s.locks[st].Unlock()
	}
	for i := range reqs {
		if r.state[i] != setAnswered {
			r.outs[i].Reply(resps[i])
		}
	}
}

// recordHeader is the header of the record that stores n, a new version
// stamped stamp.
func recordHeader(n *mcitem.Item, stamp uint64) header {
	h := header{cas: n.CAS, stamp: stamp, flags: n.Flags, expiry: clampExpiry(n.Exptime), bits: uint8(n.Bits)}
	// The extension is written while a bit is set or the last access is
	// not the write (a moved access, see access.go).
	if n.Bits != 0 || uint64(n.Access) != stamp/uint64(time.Second) {
		h.access = uint32(max(n.Access, 0))
	}
	return h
}
