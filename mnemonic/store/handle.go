package store

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/linxGnu/grocksdb"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Reply messages. They are fixed strings: err.Error() never reaches a client.
const (
	msgStorage   = "storage failure"
	msgNoMemory  = "out of memory storing object"
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
	// The codecs check keys per protocol: binary keys and base64 meta keys
	// may hold any byte, so only the length is the store's business.
	for _, k := range req.Keys {
		if len(k) == 0 || len(k) > protocol.DefaultMaxKeyLen {
			resp.ClientError(msgBadKey)
			return nil
		}
	}
	now := time.Now()
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
	case protocol.CmdGet, protocol.CmdGets:
		err = s.get(req, resp, now)
	case protocol.CmdGat, protocol.CmdGats:
		err = s.gat(req, resp, now)
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
	default:
		resp.ClientError("unsupported command")
	}
	if err != nil {
		resp.Reset()
		if errors.Is(err, errShardDown) {
			// Logged once when the shard went down, and counted.
			resp.ServerError(msgShardDown)
			return err
		}
		resp.ServerError(msgStorage)
		s.log.Error("storage failure", "cmd", req.Command.String(), "err", err)
	}
	return err
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

func (s *Store) put(sh *shard, key []byte, h header, data ...[]byte) error {
	if !sh.writable() {
		return errShardDown
	}
	buf := recordPool.Get().(*[]byte)
	rec := appendRecord((*buf)[:0], h, data...)
	start := s.clock()
	err := sh.db.Put(s.wo, key, rec)
	s.observe(sh, ShardPut, start, err)
	if err != nil {
		s.shardDown(sh, "write failed: "+err.Error())
	}
	if cap(rec) <= maxPooledRecord {
		*buf = rec[:0]
		recordPool.Put(buf)
	}
	s.stats.totalItems.Add(1)
	return err
}

// del deletes key from sh, observed like Get and Put.
func (s *Store) del(sh *shard, key []byte) error {
	if !sh.writable() {
		return errShardDown
	}
	start := s.clock()
	err := sh.db.Delete(s.wo, key)
	s.observe(sh, ShardDelete, start, err)
	if err != nil {
		s.shardDown(sh, "delete failed: "+err.Error())
	}
	return err
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

// get is in multiget.go: reads take the batched path.

// gat returns each hit and sets its expiry. Like memcached's touch it keeps
// the CAS: the value did not change.
func (s *Store) gat(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	abs, expired := protocol.AbsExpiry(req.Exptime, now)
	for i, key := range req.Keys {
		s.stats.cmdGet.Add(1)
		s.stats.cmdTouch.Add(1)
		hk := hashKey(key)
		sh := s.shardFor(hk)
		mu := s.lockFor(hk)
		mu.Lock()
		it, ok, err := s.lookup(sh, key, now)
		if err != nil {
			mu.Unlock()
			return err
		}
		if !ok {
			mu.Unlock()
			s.stats.getMisses.Add(1)
			s.stats.touchMisses.Add(1)
			continue
		}
		s.stats.getHits.Add(1)
		s.stats.touchHits.Add(1)
		h := it.h
		if req.HasExptime {
			h.expiry = clampExpiry(abs)
			if expired {
				err = s.del(sh, key)
			} else {
				err = s.put(sh, key, h, it.data)
			}
		}
		resp.AppendHit(i, it.data, h.flags, h.cas, int64(h.expiry))
		it.release()
		mu.Unlock()
		if err != nil {
			return err
		}
	}
	resp.Status = protocol.StatusOK
	return nil
}

func (s *Store) touch(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	s.stats.cmdTouch.Add(1)
	key := req.Key()
	hk := hashKey(key)
	sh := s.shardFor(hk)
	mu := s.lockFor(hk)
	mu.Lock()
	defer mu.Unlock()
	it, ok, err := s.lookup(sh, key, now)
	if err != nil {
		return err
	}
	if !ok {
		s.stats.touchMisses.Add(1)
		resp.Status = protocol.StatusNotFound
		return nil
	}
	defer it.release()
	s.stats.touchHits.Add(1)
	abs, expired := protocol.AbsExpiry(req.Exptime, now)
	if expired {
		err = s.del(sh, key)
	} else {
		h := it.h
		h.expiry = clampExpiry(abs)
		err = s.put(sh, key, h, it.data)
	}
	if err != nil {
		return err
	}
	resp.Status = protocol.StatusOK
	resp.CAS = it.h.cas
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

// store runs set, add, replace, cas, append and prepend.
//
// A compare value (req.CAS != 0) turns set, add and replace into cas, as
// memcached's binary protocol and meta ms C do; append and prepend with a
// compare value must match too.
func (s *Store) store(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	s.stats.cmdSet.Add(1)
	if len(req.Value) > s.opts.MaxItemSize {
		resp.Status = protocol.StatusTooLarge
		return nil
	}
	cmd := req.Command
	if req.CAS != 0 && (cmd == protocol.CmdSet || cmd == protocol.CmdAdd || cmd == protocol.CmdReplace) {
		cmd = protocol.CmdCas
	}
	key := req.Key()
	hk := hashKey(key)
	sh := s.shardFor(hk)
	mu := s.lockFor(hk)
	mu.Lock()
	defer mu.Unlock()

	// A plain set needs no read: it replaces whatever is there. Holding
	// the stripe lock still matters, so that a concurrent cas cannot
	// compare against a version this set is about to replace.
	var cur item
	var found bool
	if cmd != protocol.CmdSet {
		var err error
		cur, found, err = s.lookup(sh, key, now)
		if err != nil {
			return err
		}
		defer cur.release()
	}
	switch cmd {
	case protocol.CmdAdd:
		if found {
			resp.Status = protocol.StatusNotStored
			return nil
		}
	case protocol.CmdReplace, protocol.CmdAppend, protocol.CmdPrepend:
		if !found {
			resp.Status = protocol.StatusNotStored
			return nil
		}
		if req.CAS != 0 && req.CAS != cur.h.cas {
			resp.Status = protocol.StatusExists
			return nil
		}
	case protocol.CmdCas:
		if !found {
			s.stats.casMisses.Add(1)
			resp.Status = protocol.StatusNotFound
			return nil
		}
		if req.CAS != cur.h.cas {
			s.stats.casBadval.Add(1)
			resp.Status = protocol.StatusExists
			return nil
		}
		s.stats.casHits.Add(1)
	}

	cas, stamp, err := s.newVersion(req, now)
	if err != nil {
		return err
	}
	h := header{cas: cas, stamp: stamp}
	switch cmd {
	case protocol.CmdAppend, protocol.CmdPrepend:
		// memcached keeps the existing item's flags and expiry.
		h.flags, h.expiry = cur.h.flags, cur.h.expiry
		if len(cur.data)+len(req.Value) > s.opts.MaxItemSize {
			resp.ServerError(msgNoMemory)
			return nil
		}
		if cmd == protocol.CmdAppend {
			err = s.put(sh, key, h, cur.data, req.Value)
		} else {
			err = s.put(sh, key, h, req.Value, cur.data)
		}
	default:
		abs, expired := protocol.AbsExpiry(req.Exptime, now)
		if expired {
			// memcached answers STORED for an item born expired, and the
			// old value is gone.
			err = s.del(sh, key)
			h.cas = 0
		} else {
			h.flags, h.expiry = req.Flags, clampExpiry(abs)
			err = s.put(sh, key, h, req.Value)
		}
	}
	if err != nil {
		return err
	}
	resp.Status = protocol.StatusOK
	resp.CAS = h.cas
	return nil
}

func (s *Store) delete(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	key := req.Key()
	hk := hashKey(key)
	sh := s.shardFor(hk)
	mu := s.lockFor(hk)
	mu.Lock()
	defer mu.Unlock()
	it, found, err := s.lookup(sh, key, now)
	if err != nil {
		return err
	}
	if !found {
		s.stats.deleteMisses.Add(1)
		resp.Status = protocol.StatusNotFound
		return nil
	}
	cas := it.h.cas
	it.release()
	if req.CAS != 0 && req.CAS != cas {
		resp.Status = protocol.StatusExists
		return nil
	}
	if err := s.del(sh, key); err != nil {
		return err
	}
	s.stats.deleteHits.Add(1)
	resp.Status = protocol.StatusOK
	return nil
}

func (s *Store) incrDecr(req *protocol.Request, resp *protocol.Response, now time.Time) error {
	incr := req.Command == protocol.CmdIncr
	hits, misses := &s.stats.decrHits, &s.stats.decrMisses
	if incr {
		hits, misses = &s.stats.incrHits, &s.stats.incrMisses
	}
	key := req.Key()
	hk := hashKey(key)
	sh := s.shardFor(hk)
	mu := s.lockFor(hk)
	mu.Lock()
	defer mu.Unlock()
	it, found, err := s.lookup(sh, key, now)
	if err != nil {
		return err
	}
	if !found {
		misses.Add(1)
		if !req.Vivify {
			resp.Status = protocol.StatusNotFound
			return nil
		}
		// Binary incr with an initial value, meta ma N: create the item.
		abs, expired := protocol.AbsExpiry(req.Exptime, now)
		cas, stamp, err := s.newVersion(req, now)
		if err != nil {
			return err
		}
		var num [20]byte
		if !expired {
			h := header{cas: cas, stamp: stamp, flags: req.Flags, expiry: clampExpiry(abs)}
			if err := s.put(sh, key, h, strconv.AppendUint(num[:0], req.Initial, 10)); err != nil {
				return err
			}
		}
		resp.Status = protocol.StatusOK
		resp.Number = req.Initial
		resp.CAS = cas
		// The hit carries the item's flags and expiry for meta ma's
		// return flags (t, f); its value is the number above.
		resp.AppendHit(0, nil, req.Flags, cas, abs)
		return nil
	}
	defer it.release()
	if req.CAS != 0 && req.CAS != it.h.cas {
		resp.Status = protocol.StatusExists
		return nil
	}
	v, ok := parseCounter(it.data)
	if !ok {
		resp.Status = protocol.StatusNonNumeric
		resp.Message = msgNotNumber
		return nil
	}
	hits.Add(1)
	if incr {
		v += req.Delta // wraps at 2^64, as memcached's does
	} else if req.Delta > v {
		v = 0 // decr floors at zero
	} else {
		v -= req.Delta
	}
	var buf [24]byte
	digits := strconv.AppendUint(buf[:0], v, 10)
	// memcached rewrites a number that got shorter in place and pads it
	// with spaces to the old length ("10" decr 1 reads back as "9 ");
	// clients comparing with memcached see the same bytes here.
	if len(digits) < len(it.data) {
		padded := make([]byte, len(it.data))
		n := copy(padded, digits)
		for i := n; i < len(padded); i++ {
			padded[i] = ' '
		}
		digits = padded
	}
	cas, stamp, err := s.newVersion(req, now)
	if err != nil {
		return err
	}
	h := header{cas: cas, stamp: stamp, flags: it.h.flags, expiry: it.h.expiry}
	if err := s.put(sh, key, h, digits); err != nil {
		return err
	}
	resp.Status = protocol.StatusOK
	resp.Number = v
	resp.CAS = cas
	resp.AppendHit(0, nil, h.flags, cas, int64(h.expiry))
	return nil
}

// parseCounter reads a stored number the way memcached's safe_strtoull
// does: optional leading spaces, decimal digits that fit in 64 bits, then
// only spaces (the padding of an earlier decr) or nothing.
func parseCounter(b []byte) (uint64, bool) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i < len(b) && b[i] == '+' {
		i++
	}
	start := i
	var v uint64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
		i++
	}
	if i == start {
		return 0, false
	}
	for ; i < len(b); i++ {
		if !isSpace(b[i]) {
			return 0, false
		}
	}
	return v, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
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
