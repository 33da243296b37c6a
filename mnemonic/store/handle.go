package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/linxGnu/grocksdb"
	mcitem "github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Reply messages. They are fixed strings: err.Error() never reaches a client.
const (
	msgStorage   = "storage failure"
	msgBadKey    = "bad command line format"
	msgNotNumber = "cannot increment or decrement non-numeric value"
)

var _ protocol.Handler = (*Store)(nil)

// Handle executes one request. A returned error means RocksDB failed; resp
// then holds a SERVER_ERROR with a fixed message.
func (s *Store) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		resp.ServerError("shutting down")
		return errClosed
	}
	return s.handle(req, resp, time.Now())
}

// handle is Handle with s.life held.
func (s *Store) handle(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	if !validKeys(req, resp) {
		return nil
	}
	if isWrite(req.Command) && !s.guard.take(int64(len(req.Keys))*writeCost(len(req.Key()), len(req.Value))) {
		// The disk is (nearly) full: refuse before RocksDB meets it
		// (see fault.go). Reads go on.
		resp.ServerError(msgDiskFull)
		return nil
	}
	if s.writeSlots != nil && isWrite(req.Command) {
		// Bound the writes running at once (see Options.WriteConcurrency).
		// Taken before any stripe lock, and held by no one who waits for
		// another slot, so it cannot deadlock with them.
		s.writeSlots <- struct{}{}
		defer func() { <-s.writeSlots }()
	}
	var err error
	switch req.Command {
	case protocol.CmdGet, protocol.CmdGets, protocol.CmdGat, protocol.CmdGats:
		err = s.read(req, resp, now)
	case protocol.CmdTouch:
		err = s.touch(req, resp, now)
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdCas,
		protocol.CmdAppend, protocol.CmdPrepend:
		err = s.store(req, resp, now)
	case protocol.CmdDelete:
		err = s.delete(req, resp, now)
	case protocol.CmdIncr, protocol.CmdDecr:
		err = s.incrDecr(req, resp, now)
	case protocol.CmdFlushAll:
		err = s.flushAll(req, resp, now)
	case protocol.CmdStats:
		s.statsReply(req, resp, now)
	case protocol.CmdVersion:
		resp.Message = s.opts.Version
	case protocol.CmdVerbosity:
		// Accepted and ignored, as mnemonic logs through slog levels.
	case protocol.CmdCacheMemlimit:
		// Checked as memcached checks it, then accepted with no effect:
		// mnemonic's capacity is its disk budget (max_disk_bytes), and
		// its RAM (block cache, memtables) is sized at start.
		protocol.CheckMemlimit(req.Args, resp)
	default:
		resp.ClientError("unsupported command")
	}
	if err != nil {
		s.failed(req, resp, err)
	}
	return err
}

// failed turns err, a RocksDB failure, into the reply.
func (s *Store) failed(req *protocol.Request, resp *protocol.Response, err error) {
	resp.Reset()
	if errors.Is(err, errShardDown) {
		// Logged once when the shard went down, and counted.
		resp.ServerError(msgShardDown)
		return
	}
	resp.ServerError(msgStorage)
	s.log.Error("storage failure", "cmd", req.Command.String(), "err", err)
}

// validKeys reports whether req's keys are all of a length the store
// takes; if not, resp holds the client error.
func validKeys(req *protocol.Request, resp *protocol.Response) bool {
	// The codecs check keys per protocol: binary keys and base64 meta keys
	// may hold any byte, so only the length is the store's business.
	for _, k := range req.Keys {
		if len(k) == 0 || len(k) > protocol.DefaultMaxKeyLen {
			resp.ClientError(msgBadKey)
			return false
		}
	}
	return true
}

// isWrite reports whether cmd writes to RocksDB (gat may: it sets a TTL).
func isWrite(cmd protocol.Command) bool {
	switch cmd {
	case protocol.CmdGat, protocol.CmdGats, protocol.CmdTouch, protocol.CmdDelete,
		protocol.CmdIncr, protocol.CmdDecr:
		return true
	}
	return cmd.IsStorage()
}

// item is a visible record read from a shard. Its data aliases the RocksDB
// slice, valid until release.
type item struct {
	h     header
	data  []byte
	slice *grocksdb.Slice
}

func (it *item) release() {
	if it.slice != nil {
		it.slice.Free()
		it.slice = nil
	}
}

// lookup reads key and reports whether a visible item is there. A record
// that is expired or flushed is a miss (and counted); the caller releases
// the item when ok.
func (s *Store) lookup(sh *shard, key []byte, now time.Time) (it item, ok bool, err error) {
	if sh.db == nil {
		return item{}, false, errShardDown
	}
	start := s.clock()
	sl, err := sh.db.Get(s.ro, key)
	s.observe(sh, ShardGet, start, err)
	if err != nil {
		return item{}, false, err
	}
	if !sl.Exists() {
		sl.Free()
		return item{}, false, nil
	}
	h, data, valid := decodeRecord(sl.Data())
	switch {
	case !valid:
		s.log.Warn("ignoring corrupt record", "key_len", len(key), "len", sl.Size())
	case h.expiry != 0 && int64(h.expiry) <= now.Unix():
		s.stats.getExpired.Add(1)
	case s.flush.load().covers(h.stamp, now.UnixNano()):
		s.stats.getFlushed.Add(1)
	default:
		return item{h: h, data: data, slice: sl}, true, nil
	}
	sl.Free()
	return item{}, false, nil
}

// writable reports whether sh takes writes. After a failed write RocksDB's
// WAL writer must not be written again (Debian's build asserts on it), so a
// shard stays refused until the watcher has reopened it.
func (sh *shard) writable() bool {
	return sh.db != nil && !sh.readOnly && sh.down.Load() == nil
}

// clock returns the start time of a RocksDB call, or the zero time when
// nobody observes shards, so an unobserved store pays no clock reads.
func (s *Store) clock() time.Time {
	if s.opts.ObserveShard == nil {
		return time.Time{}
	}
	return time.Now()
}

// observe reports one RocksDB call of sh to Options.ObserveShard.
func (s *Store) observe(sh *shard, op ShardOp, start time.Time, err error) {
	if s.opts.ObserveShard != nil {
		s.opts.ObserveShard(sh.idx, op, time.Since(start), err)
	}
}

// recordPool holds record buffers so a write does not allocate the size of
// its value; buffers of huge values are left to the GC.
var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledRecord = 64 << 10

// model is it as package item sees it. A record without the state
// extension has no meta bits and was last accessed when it was written
// (its stamp follows the wall clock in nanoseconds).
func (it *item) model() mcitem.Item {
	m := mcitem.Item{Value: it.data, Flags: it.h.flags, Exptime: int64(it.h.expiry), CAS: it.h.cas,
		Bits: mcitem.Bits(it.h.bits), Access: int64(it.h.access)}
	if m.Access == 0 {
		m.Access = int64(it.h.stamp / uint64(time.Second))
	}
	return m
}

// readModel is the item a read sees: the record's (with its side record,
// sidestate.go), with the state kept in memory (access.go: a first fetch
// or last access not yet written). recAccess is the persisted access,
// which decides when the state is due.
func (s *Store) readModel(sh *shard, it *item, hk uint64, key []byte, req *protocol.Request, now time.Time) (m mcitem.Item, recAccess int64) {
	m = it.model()
	if hasSideState(len(it.data)) {
		s.mergeSide(sh, key, &m, now)
	}
	recAccess = m.Access
	s.recent.apply(hk, key, &m, it.h.stamp)
	return m, recAccess
}

// commit carries out an outcome of package item for key; the caller holds
// the key's stripe and cur is the item the outcome was computed from (nil:
// none). A new version draws its CAS and stamp here; anything else (touch,
// a read's state) keeps the record's stamp, so a delayed flush_all still
// sees when the value was written.
func (s *Store) commit(sh *shard, key []byte, req *protocol.Request, cur *item, o *mcitem.Outcome, now time.Time) error {
	var stamp uint64
	if cur != nil {
		stamp = cur.h.stamp
	}
	if o.NeedCAS && o.Status == protocol.StatusOK {
		cas, st, err := s.newVersion(req, now)
		if err != nil {
			return err
		}
		o.SetCAS(cas)
		stamp = st
	}
	switch o.Action {
	case mcitem.Put:
		if !o.StateOnly {
			// An item stored (total_items); a state write stores none.
			s.stats.totalItems.Add(1)
		} else if cur != nil && hasSideState(len(cur.data)) {
			return s.putSide(sh, key, &o.Next, stamp) // see sidestate.go
		}
		return s.put(sh, key, recordHeader(&o.Next, stamp), o.Next.Value)
	case mcitem.Delete:
		if cur != nil && hasSideState(len(cur.data)) {
			var kb [sideKeyLen]byte
			if err := s.del(sh, sideKey(kb[:0], key)); err != nil {
				return err
			}
		}
		return s.del(sh, key)
	}
	return nil
}

// read serves get, gets, gat, gats and mg through package item. A read
// looks the key up without a lock; only when the outcome must be written
// before the reply (settle: gat, mg N, a W token; an item's first fetch and
// a last access a minute behind go to the flusher, see access.go) does it
// take the key's stripe, read again and decide again under it, so two
// readers cannot both win W. Any other read writes nothing.
func (s *Store) read(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	// The lock-free first lookups of all keys, one cgo call per shard
	// (multiget.go); the items alias sc until it is released.
	sc, err := s.prefetch(req.Keys)
	defer s.putScratch(sc)
	if err != nil {
		return err
	}
	return s.readPrefetched(req, resp, sc, 0, now)
}

// readPrefetched is read with the first lookups done: req's key i is key
// base+i of sc.
func (s *Store) readPrefetched(req *protocol.Request, resp *protocol.Response, sc *mgScratch, base int, now time.Time) error {
	unix := now.Unix()
	touch := req.Command == protocol.CmdGat || req.Command == protocol.CmdGats
	var err error
	for i, key := range req.Keys {
		s.stats.cmdGet.Add(1)
		if touch {
			s.stats.cmdTouch.Add(1)
		}
		hk := hashKey(key)
		sh := s.shardFor(hk)
		it, ok := s.prefetched(sc, base+i, len(key), now)
		var cm mcitem.Item
		var cur *mcitem.Item
		var recAccess int64
		if ok {
			cm, recAccess = s.readModel(sh, &it, hk, key, req, now)
			cur = &cm
		}
		o := mcitem.Read(req, cur, unix)
		// reread holds the item read again under the key's stripe (it
		// aliases it) until the hit is appended.
		var reread *mgScratch
		write, raced := s.recent.settleHeld(hk, key, &o, cur, recAccess, it.h.stamp, &it, sc.gens[base+i])
		if raced && !write {
			// A concurrent read of this version noted its fetch first:
			// answer after it (h1, l0), as memcached's item lock orders
			// two fetches. Our own state is noted already.
			s.recent.apply(hk, key, cur, it.h.stamp)
			o = mcitem.Read(req, cur, unix)
			write, _ = s.recent.settleHeld(hk, key, &o, cur, recAccess, it.h.stamp, &it, sc.gens[base+i])
		}
		if write {
			it.release()
			mu := s.lockFor(hk)
			mu.Lock()
			reread, it, ok, err = s.lookupOne(key, now)
			if err != nil {
				mu.Unlock()
				s.putScratch(reread)
				return err
			}
			cur = nil
			if ok {
				cm, recAccess = s.readModel(sh, &it, hk, key, req, now)
				cur = &cm
			}
			o = mcitem.Read(req, cur, unix)
			if w, _ := s.recent.settleHeld(hk, key, &o, cur, recAccess, it.h.stamp, &it, reread.gens[0]); w {
				var ip *item
				if ok {
					ip = &it
				}
				stateOnly := o.StateOnly
				if !stateOnly || s.guard.take(writeCost(len(key), len(o.Next.Value))) {
					err = s.commit(sh, key, req, ip, &o, now)
				}
				if stateOnly {
					// Best effort: the reply does not depend on it.
					err = nil
				}
			}
			mu.Unlock()
			if err != nil {
				it.release()
				s.putScratch(reread)
				return err
			}
		}
		if o.Status != protocol.StatusOK {
			s.stats.getMisses.Add(1)
			if touch {
				s.stats.touchMisses.Add(1)
			}
		} else {
			s.stats.getHits.Add(1)
			if touch {
				s.stats.touchHits.Add(1)
			}
			o.AppendHit(resp, i)
		}
		it.release()
		if reread != nil {
			s.putScratch(reread)
		}
	}
	resp.Status = protocol.StatusOK
	return nil
}

// write runs a write command through package item under the key's stripe.
// A plain set does not read the key: its outcome does not depend on it, and
// holding the stripe still keeps a concurrent cas from comparing against a
// version this set is about to replace.
func (s *Store) write(req *protocol.Request, resp *protocol.Response, now time.Time) (mcitem.Outcome, bool, error) {
	key := req.Key()
	hk := hashKey(key)
	sh := s.shardFor(hk)
	mu := s.lockFor(hk)
	mu.Lock()
	defer mu.Unlock()
	var it item
	var found bool
	if req.Command != protocol.CmdSet || req.CAS != 0 {
		var err error
		it, found, err = s.lookup(sh, key, now)
		if err != nil {
			return mcitem.Outcome{}, false, err
		}
		defer it.release()
	}
	var cm mcitem.Item
	var cur *mcitem.Item
	var ip *item
	var recAccess int64
	if found {
		cm = it.model()
		if hasSideState(len(it.data)) {
			s.mergeSide(sh, key, &cm, now)
		}
		recAccess = cm.Access
		s.recent.apply(hk, key, &cm, it.h.stamp) // a write keeps (and may persist) it
		cur, ip = &cm, &it
	}
	// Scratch for a value the request computes (append, incr). Next.Value
	// may alias it, the request's value or the current record, so nothing
	// of the outcome goes back to the pool: only this buffer, as it was.
	buf := recordPool.Get().(*[]byte)
	defer func() {
		*buf = (*buf)[:0]
		recordPool.Put(buf)
	}()
	o := mcitem.Apply(req, cur, now.Unix(), s.opts.MaxItemSize, (*buf)[:0])
	// A state-only outcome (a failed add bumps the item) is written only
	// as settle says; every other one is.
	if !o.StateOnly || s.recent.settle(hk, key, &o, cur, recAccess, it.h.stamp) {
		if err := s.commit(sh, key, req, ip, &o, now); err != nil {
			return o, found, err
		}
	}
	o.Reply(resp)
	if o.Status == protocol.StatusNonNumeric {
		resp.Message = msgNotNumber
	}
	return o, found, nil
}

func (s *Store) touch(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	s.stats.cmdTouch.Add(1)
	o, _, err := s.write(req, resp, now)
	if err != nil {
		return err
	}
	if o.Status == protocol.StatusOK {
		s.stats.touchHits.Add(1)
		resp.CAS = o.Next.CAS
	} else {
		s.stats.touchMisses.Add(1)
	}
	return nil
}

// newVersion returns the CAS and stamp of a write: the client's CAS if it
// chose one (meta E), else a fresh one; the stamp is always fresh.
func (s *Store) newVersion(req *protocol.Request, now time.Time) (cas, stamp uint64, err error) {
	stamp, err = s.vers.next(now)
	if err != nil {
		return 0, 0, err
	}
	cas = stamp
	if req.NewCAS != 0 {
		cas = req.NewCAS
	}
	return cas, stamp, nil
}

// store runs set, add, replace, cas, append and prepend (package item
// decides: a compare value turns set, add and replace into cas, as
// memcached's binary protocol and meta ms C do; append and prepend with a
// compare value must match too).
func (s *Store) store(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	s.stats.cmdSet.Add(1)
	o, _, err := s.write(req, resp, now)
	if err != nil {
		return err
	}
	if mcitem.IsCompareAndSwap(req) {
		switch o.Status {
		case protocol.StatusOK:
			s.stats.casHits.Add(1)
		case protocol.StatusNotFound:
			s.stats.casMisses.Add(1)
		case protocol.StatusExists:
			s.stats.casBadval.Add(1)
		}
	}
	return nil
}

func (s *Store) delete(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	o, _, err := s.write(req, resp, now)
	if err != nil {
		return err
	}
	switch o.Status {
	case protocol.StatusOK:
		s.stats.deleteHits.Add(1)
	case protocol.StatusNotFound:
		s.stats.deleteMisses.Add(1)
	}
	return nil
}

func (s *Store) incrDecr(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	hits, misses := &s.stats.decrHits, &s.stats.decrMisses
	if req.Command == protocol.CmdIncr {
		hits, misses = &s.stats.incrHits, &s.stats.incrMisses
	}
	o, found, err := s.write(req, resp, now)
	if err != nil {
		return err
	}
	switch {
	case !found:
		misses.Add(1)
	case o.Status == protocol.StatusOK:
		hits.Add(1)
	}
	return nil
}

// flushAll invalidates every item written before the flush point.
//
// Immediate: the cutoff is a fresh stamp, so every write already stamped
// is flushed and every later one survives. A write that took its stamp
// before the flush but lands in RocksDB after it is flushed too, which is
// what a client racing a flush_all can expect from memcached as well.
//
// Delayed by d seconds: memcached flushes items last written at or before
// second T-1 (T = now+d) once second T-1 arrives, and keeps every later
// write. Stamps follow the clock in unix nanoseconds (see versions), so
// "written before T" is "stamp below T in nanoseconds".
func (s *Store) flushAll(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	s.stats.cmdFlush.Add(1)
	var st flushState
	if req.Exptime > 0 {
		abs, _ := protocol.AbsExpiry(req.Exptime, now)
		st = flushState{cutoff: uint64(abs) * uint64(time.Second), effective: (abs - 1) * int64(time.Second)}
	} else {
		stamp, err := s.vers.next(now)
		if err != nil {
			return err
		}
		st = flushState{cutoff: stamp}
	}
	if err := s.flush.set(st); err != nil {
		return err
	}
	resp.Status = protocol.StatusOK
	return nil
}
