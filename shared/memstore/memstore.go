// Package memstore is an in-memory protocol.Handler with memcached 1.6's
// semantics. It is the reference the shared module's tests and the
// conformance suite run the codecs and the server against; it is not a
// product (one mutex, one map, no eviction).
//
// What it implements, as memcached does:
//   - get/gets/gat/gats/touch, set/add/replace/append/prepend/cas, delete,
//     incr/decr, flush_all (with delay), stats, version, verbosity;
//   - exptime via protocol.AbsExpiry against an injectable clock; writes
//     with an already-past exptime succeed and leave nothing readable;
//   - a new CAS unique for every write (or Request.NewCAS, meta E);
//   - a CAS on any store (binary set/add/replace, text cas) is a
//     compare-and-swap, on append/prepend/delete/incr/decr a precondition;
//   - incr wraps at 2^64, decr stops at 0, a value that is not a decimal
//     number is StatusNonNumeric, and a result no longer than the old value
//     is written in place padded with spaces (memcached's in-place update:
//     "100" decr 95 reads back as "5  ");
//   - binary/meta auto-vivify of counters (Request.Vivify with Initial),
//     meta mg N (a miss creates an empty item and wins the W token), and
//     the stale-while-revalidate flags: md I marks an item stale, ms I with
//     an older CAS stores a stale value, readers see X, W once, then Z;
//   - a delayed flush_all invalidates, once its time comes, every item last
//     written before that time.
//
// Request.Want is ignored: hits are always complete.
package memstore

import (
	"context"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// metaArithmetic is Request.Opcode for meta ma: protocol.Request records
// the meta command letter there.
const metaArithmetic = 'a'

// DefaultVersion is what "version" answers unless Options.Version says
// otherwise.
const DefaultVersion = "1.6.18-moneta"

// Options configure a Store. Zero values take defaults.
type Options struct {
	// Now is the clock (default time.Now). Tests move it to expire items.
	Now func() time.Time
	// Version is the version string (default DefaultVersion).
	Version string
	// MaxItemSize bounds a value, also one grown by append (default
	// protocol.DefaultMaxItemSize).
	MaxItemSize int
	// ConnStats, if set, appends the connection counters to the general
	// stats; (*server.Stats).AppendStats fits.
	ConnStats func(dst []protocol.Stat) []protocol.Stat
}

// Store is the in-memory reference handler. It is safe for concurrent use.
type Store struct {
	now         func() time.Time
	version     string
	maxItemSize int
	connStats   func([]protocol.Stat) []protocol.Stat
	pid         int
	started     time.Time

	mu      sync.Mutex
	items   map[string]*item // guarded by mu
	lastCAS uint64           // guarded by mu: the last CAS handed out
	// flushAt is a pending delayed flush_all (unix seconds, 0: none):
	// once now >= flushAt, items written before flushAt are gone.
	flushAt int64    // guarded by mu
	c       counters // guarded by mu
}

// item is one stored value. A value slice is never modified once stored
// (a write makes a new item); only tokenSent changes in place, under mu.
type item struct {
	value   []byte
	flags   uint32
	exptime int64  // absolute unix seconds, 0: never
	cas     uint64 // version of this write
	written int64  // unix second of the write, for delayed flush_all
	// stale marks an item invalidated by meta md I (or written by ms I
	// with an older CAS); tokenSent records that a reader was handed the
	// meta W (win) token for it, so later readers see Z instead.
	stale, tokenSent bool
}

// counters are the stats memcached reports under the same names.
type counters struct {
	cmdGet, cmdSet, cmdFlush, cmdTouch         uint64
	getHits, getMisses, getExpired             uint64
	deleteHits, deleteMisses                   uint64
	incrHits, incrMisses, decrHits, decrMisses uint64
	casHits, casMisses, casBadval              uint64
	touchHits, touchMisses                     uint64
	totalItems                                 uint64
}

// New returns an empty store.
func New(opts Options) *Store {
	s := &Store{
		now:         opts.Now,
		version:     opts.Version,
		maxItemSize: opts.MaxItemSize,
		connStats:   opts.ConnStats,
		pid:         os.Getpid(),
		items:       make(map[string]*item),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.version == "" {
		s.version = DefaultVersion
	}
	if s.maxItemSize <= 0 {
		s.maxItemSize = protocol.DefaultMaxItemSize
	}
	s.started = s.now()
	return s
}

// Handle executes req. It never returns an error: every outcome is a
// status.
func (s *Store) Handle(_ context.Context, req *protocol.Request, resp *protocol.Response) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyFlush(now.Unix())
	switch req.Command {
	case protocol.CmdGet, protocol.CmdGets:
		s.get(req, resp, now, false)
	case protocol.CmdGat, protocol.CmdGats:
		s.get(req, resp, now, true)
	case protocol.CmdTouch:
		s.touch(req, resp, now)
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdCas,
		protocol.CmdAppend, protocol.CmdPrepend:
		s.store(req, resp, now)
	case protocol.CmdDelete:
		s.delete(req, resp, now)
	case protocol.CmdIncr, protocol.CmdDecr:
		s.arith(req, resp, now)
	case protocol.CmdFlushAll:
		s.flush(req, now)
		resp.Status = protocol.StatusOK
	case protocol.CmdStats:
		s.stats(req, resp, now)
	case protocol.CmdVersion:
		resp.Status = protocol.StatusOK
		resp.Message = s.version
	case protocol.CmdVerbosity:
		resp.Status = protocol.StatusOK
	default:
		resp.ClientError("bad command line format")
	}
	return nil
}

// Len returns the number of live items.
func (s *Store) Len() int {
	now := s.now().Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyFlush(now)
	return s.liveCount(now)
}

func (s *Store) liveCount(now int64) int {
	n := 0
	for _, it := range s.items {
		if !expired(it, now) {
			n++
		}
	}
	return n
}

func expired(it *item, now int64) bool {
	return it.exptime != 0 && it.exptime <= now
}

// lookup returns the live item under key, dropping it if it has expired.
func (s *Store) lookup(key []byte, now int64) *item {
	it, _ := s.lookupExpired(key, now)
	return it
}

// lookupExpired is lookup that also reports whether an expired item was
// found (and dropped), for get_expired.
func (s *Store) lookupExpired(key []byte, now int64) (it *item, wasExpired bool) {
	it, ok := s.items[string(key)]
	if !ok {
		return nil, false
	}
	if expired(it, now) {
		delete(s.items, string(key))
		return nil, true
	}
	return it, false
}

// nextCAS returns the CAS for a write: the one the client asked for (meta
// E) or a fresh one.
func (s *Store) nextCAS(req *protocol.Request) uint64 {
	if req.NewCAS != 0 {
		return req.NewCAS
	}
	s.lastCAS++
	return s.lastCAS
}

// put stores it under key unless its exptime is already past, in which
// case the write succeeds but leaves nothing (memcached stores the item
// already expired; the old one is replaced either way).
func (s *Store) put(key []byte, it *item, now int64) {
	s.c.totalItems++
	if expired(it, now) {
		delete(s.items, string(key))
		return
	}
	s.items[string(key)] = it
}

func (s *Store) get(req *protocol.Request, resp *protocol.Response, now time.Time, touch bool) {
	unix := now.Unix()
	var exp int64
	var past bool
	if touch {
		exp, past = protocol.AbsExpiry(req.Exptime, now)
	}
	for i, key := range req.Keys {
		it, wasExpired := s.lookupExpired(key, unix)
		if touch {
			s.c.cmdTouch++
		}
		s.c.cmdGet++
		created := false
		if it == nil {
			s.c.getMisses++
			if wasExpired {
				s.c.getExpired++
			}
			if touch {
				s.c.touchMisses++
			}
			if !req.Vivify {
				continue
			}
			// mg N: create an empty placeholder and hand this client the
			// win token, so it alone recomputes the value.
			s.lastCAS++
			it = &item{value: []byte{}, exptime: absExpiry(req.Exptime, now), cas: s.lastCAS, written: unix}
			s.put(key, it, unix)
			created = true
		} else {
			s.c.getHits++
		}
		if touch && !created {
			s.c.touchHits++
			// A touch changes the expiry, not the version.
			nit := *it
			nit.exptime = exp
			it = &nit
			if past {
				// The hit is answered, then the item is gone.
				delete(s.items, string(key))
			} else {
				s.items[string(key)] = it
			}
		}
		// As memcached's mg: Z if the token went out before, X if stale,
		// and W for a created item or the first reader of a stale one.
		won := it.tokenSent
		win := created || (it.stale && !it.tokenSent)
		if win {
			it.tokenSent = true
		}
		h := resp.AppendHit(i, it.value, it.flags, it.cas, it.exptime)
		h.Win, h.Won, h.Stale = win, won, it.stale
	}
	resp.Status = protocol.StatusOK
}

func (s *Store) touch(req *protocol.Request, resp *protocol.Response, now time.Time) {
	key := req.Key()
	s.c.cmdTouch++
	it := s.lookup(key, now.Unix())
	if it == nil {
		s.c.touchMisses++
		resp.Status = protocol.StatusNotFound
		return
	}
	s.c.touchHits++
	exp, past := protocol.AbsExpiry(req.Exptime, now)
	if past {
		delete(s.items, string(key))
	} else {
		nit := *it
		nit.exptime = exp
		s.items[string(key)] = &nit
	}
	resp.Status = protocol.StatusOK
}

func (s *Store) store(req *protocol.Request, resp *protocol.Response, now time.Time) {
	key := req.Key()
	unix := now.Unix()
	s.c.cmdSet++
	old := s.lookup(key, unix)
	cmd := req.Command

	switch {
	case cmd == protocol.CmdCas || (req.CAS != 0 && (cmd == protocol.CmdSet || cmd == protocol.CmdAdd || cmd == protocol.CmdReplace)):
		// memcached turns any store carrying a CAS into a compare-and-swap.
		switch {
		case old == nil:
			s.c.casMisses++
			resp.Status = protocol.StatusNotFound
			return
		case old.cas != req.CAS && req.Invalidate && req.CAS < old.cas:
			// ms I: a write based on an older version is still stored,
			// marked stale, keeping the current TTL and token state.
			s.c.casHits++
			it := &item{
				value:     append([]byte(nil), req.Value...),
				flags:     req.Flags,
				exptime:   old.exptime,
				cas:       s.nextCAS(req),
				written:   unix,
				stale:     true,
				tokenSent: old.tokenSent,
			}
			s.put(key, it, unix)
			resp.Status, resp.CAS = protocol.StatusOK, it.cas
			return
		case old.cas != req.CAS:
			s.c.casBadval++
			resp.Status = protocol.StatusExists
			return
		}
		s.c.casHits++
	case cmd == protocol.CmdAdd && old != nil,
		cmd == protocol.CmdReplace && old == nil,
		(cmd == protocol.CmdAppend || cmd == protocol.CmdPrepend) && old == nil:
		resp.Status = protocol.StatusNotStored
		return
	case (cmd == protocol.CmdAppend || cmd == protocol.CmdPrepend) && req.CAS != 0 && old.cas != req.CAS:
		resp.Status = protocol.StatusExists
		return
	}

	if cmd == protocol.CmdAppend || cmd == protocol.CmdPrepend {
		// Flags and exptime are the old item's; the request's are ignored.
		if len(old.value)+len(req.Value) > s.maxItemSize {
			resp.Status = protocol.StatusTooLarge
			return
		}
		v := make([]byte, 0, len(old.value)+len(req.Value))
		if cmd == protocol.CmdAppend {
			v = append(append(v, old.value...), req.Value...)
		} else {
			v = append(append(v, req.Value...), old.value...)
		}
		it := &item{value: v, flags: old.flags, exptime: old.exptime, cas: s.nextCAS(req), written: unix}
		s.put(key, it, unix)
		resp.Status, resp.CAS = protocol.StatusOK, it.cas
		return
	}

	if len(req.Value) > s.maxItemSize {
		// memcached unlinks the old item of a set too large to store, so
		// a failed set never leaves stale data readable.
		if cmd == protocol.CmdSet {
			delete(s.items, string(key))
		}
		resp.Status = protocol.StatusTooLarge
		return
	}
	it := &item{
		value:   append([]byte(nil), req.Value...),
		flags:   req.Flags,
		exptime: absExpiry(req.Exptime, now),
		cas:     s.nextCAS(req),
		written: unix,
	}
	s.put(key, it, unix)
	resp.Status, resp.CAS = protocol.StatusOK, it.cas
}

// absExpiry is protocol.AbsExpiry with "already past" folded into the
// result: such an item gets an exptime of now, which expired() reports.
func absExpiry(exptime int64, now time.Time) int64 {
	abs, past := protocol.AbsExpiry(exptime, now)
	if past {
		return now.Unix()
	}
	return abs
}

func (s *Store) delete(req *protocol.Request, resp *protocol.Response, now time.Time) {
	key := req.Key()
	it := s.lookup(key, now.Unix())
	switch {
	case it == nil:
		s.c.deleteMisses++
		resp.Status = protocol.StatusNotFound
	case req.CAS != 0 && it.cas != req.CAS:
		resp.Status = protocol.StatusExists
	case req.Invalidate:
		// md I: keep the item but mark it stale with a new version, so
		// the next reader wins the right to refresh it.
		s.c.deleteHits++
		nit := *it
		nit.stale, nit.tokenSent = true, false
		nit.cas = s.nextCAS(req)
		if req.HasExptime {
			nit.exptime = absExpiry(req.Exptime, now)
		}
		s.put(key, &nit, now.Unix())
		resp.Status, resp.CAS = protocol.StatusOK, nit.cas
	default:
		s.c.deleteHits++
		delete(s.items, string(key))
		resp.Status = protocol.StatusOK
	}
}

func (s *Store) arith(req *protocol.Request, resp *protocol.Response, now time.Time) {
	key := req.Key()
	unix := now.Unix()
	incr := req.Command == protocol.CmdIncr
	it := s.lookup(key, unix)
	if it == nil {
		if incr {
			s.c.incrMisses++
		} else {
			s.c.decrMisses++
		}
		if !req.Vivify {
			resp.Status = protocol.StatusNotFound
			return
		}
		// Auto-vivify (binary incr with an exptime, meta ma N): create
		// the counter with the initial value; the delta is not applied.
		nit := &item{
			value:   strconv.AppendUint(nil, req.Initial, 10),
			flags:   req.Flags,
			exptime: absExpiry(req.Exptime, now),
			cas:     s.nextCAS(req),
			written: unix,
		}
		s.put(key, nit, unix)
		resp.Status, resp.Number, resp.CAS = protocol.StatusOK, req.Initial, nit.cas
		resp.AppendHit(0, nil, nit.flags, nit.cas, nit.exptime)
		return
	}
	if req.CAS != 0 && it.cas != req.CAS {
		resp.Status = protocol.StatusExists
		return
	}
	v, ok := parseCounter(it.value)
	if !ok {
		resp.Status = protocol.StatusNonNumeric
		return
	}
	if incr {
		s.c.incrHits++
		v += req.Delta // wraps at 2^64, as memcached's uint64_t does
	} else {
		s.c.decrHits++
		if req.Delta > v {
			v = 0
		} else {
			v -= req.Delta
		}
	}
	digits := strconv.AppendUint(nil, v, 10)
	var nv []byte
	if len(digits) <= len(it.value) {
		// memcached rewrites a counter in place when the new number
		// fits, padding the rest of the old length with spaces.
		nv = make([]byte, len(it.value))
		copy(nv, digits)
		for i := len(digits); i < len(nv); i++ {
			nv[i] = ' '
		}
	} else {
		nv = digits
	}
	exp := it.exptime
	if req.HasExptime && req.Opcode == metaArithmetic {
		// ma T sets the TTL of a hit. A binary incr's exptime only
		// applies to an item it creates, so only the meta form counts.
		exp = absExpiry(req.Exptime, now)
	}
	nit := &item{value: nv, flags: it.flags, exptime: exp, cas: s.nextCAS(req), written: unix}
	s.put(key, nit, unix)
	resp.Status, resp.Number, resp.CAS = protocol.StatusOK, v, nit.cas
	// The item's expiry, for meta ma's t flag (the codec reads it from
	// the first hit); the number itself is in Number.
	resp.AppendHit(0, nil, nit.flags, nit.cas, nit.exptime)
}

// parseCounter reads a stored value as memcached's safe_strtoull does on
// the item data (which ends in "\r\n"): optional leading white space, an
// optional sign, at least one decimal digit without overflow, then white
// space or the end ("7 junk" is 7, "7junk" is not a number). A minus sign is
// accepted only where the result is not negative as an int64 ("-0" is 0).
func parseCounter(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	var v uint64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false // ERANGE
		}
		v = v*10 + d
		i++
	}
	if i == start {
		return 0, false
	}
	if neg {
		v = -v
		if int64(v) < 0 {
			return 0, false
		}
	}
	if i < len(b) && !isSpace(b[i]) {
		return 0, false
	}
	return v, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// flush handles flush_all: at once, or at a later time.
func (s *Store) flush(req *protocol.Request, now time.Time) {
	s.c.cmdFlush++
	at, past := protocol.AbsExpiry(req.Exptime, now)
	if at == 0 || past {
		// Immediate. A later immediate flush also cancels a pending
		// delayed one, as memcached's single oldest_live setting does.
		clear(s.items)
		s.flushAt = 0
		return
	}
	s.flushAt = at
}

// applyFlush carries out a delayed flush_all whose time has come.
func (s *Store) applyFlush(now int64) {
	if s.flushAt == 0 || now < s.flushAt {
		return
	}
	for k, it := range s.items {
		if it.written < s.flushAt {
			delete(s.items, k)
		}
	}
	s.flushAt = 0
}

func (s *Store) stats(req *protocol.Request, resp *protocol.Response, now time.Time) {
	resp.Status = protocol.StatusOK
	switch string(req.Args) {
	case "":
	case "settings":
		resp.Stats = append(resp.Stats,
			protocol.Stat{Name: "item_size_max", Value: strconv.Itoa(s.maxItemSize)},
			protocol.Stat{Name: "cas_enabled", Value: "yes"},
			protocol.Stat{Name: "flush_enabled", Value: "yes"},
		)
		return
	case "items", "conns":
		// Nothing to report for a store without slab classes (memcached
		// answers an empty cache's "stats items" with just END).
		return
	case "slabs":
		resp.Stats = append(resp.Stats,
			protocol.Stat{Name: "active_slabs", Value: "0"},
			protocol.Stat{Name: "total_malloced", Value: "0"},
		)
		return
	case "sizes":
		resp.Stats = append(resp.Stats, protocol.Stat{Name: "sizes_status", Value: "disabled"})
		return
	case "reset":
		// No stats with StatusOK: the text codec answers "RESET".
		s.c = counters{}
		return
	default:
		// memcached answers an unknown group "ERROR" (binary: not
		// found); the codecs encode StatusNotFound that way.
		resp.Status = protocol.StatusNotFound
		return
	}
	unix := now.Unix()
	var bytes uint64
	for _, it := range s.items {
		if !expired(it, unix) {
			bytes += uint64(len(it.value))
		}
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	st := append(resp.Stats,
		protocol.Stat{Name: "pid", Value: strconv.Itoa(s.pid)},
		protocol.Stat{Name: "uptime", Value: strconv.FormatInt(unix-s.started.Unix(), 10)},
		protocol.Stat{Name: "time", Value: strconv.FormatInt(unix, 10)},
		protocol.Stat{Name: "version", Value: s.version},
		protocol.Stat{Name: "pointer_size", Value: "64"},
	)
	if s.connStats != nil {
		st = s.connStats(st)
	}
	c := &s.c
	st = append(st,
		protocol.Stat{Name: "cmd_get", Value: u(c.cmdGet)},
		protocol.Stat{Name: "cmd_set", Value: u(c.cmdSet)},
		protocol.Stat{Name: "cmd_flush", Value: u(c.cmdFlush)},
		protocol.Stat{Name: "cmd_touch", Value: u(c.cmdTouch)},
		protocol.Stat{Name: "get_hits", Value: u(c.getHits)},
		protocol.Stat{Name: "get_misses", Value: u(c.getMisses)},
		protocol.Stat{Name: "get_expired", Value: u(c.getExpired)},
		protocol.Stat{Name: "delete_misses", Value: u(c.deleteMisses)},
		protocol.Stat{Name: "delete_hits", Value: u(c.deleteHits)},
		protocol.Stat{Name: "incr_misses", Value: u(c.incrMisses)},
		protocol.Stat{Name: "incr_hits", Value: u(c.incrHits)},
		protocol.Stat{Name: "decr_misses", Value: u(c.decrMisses)},
		protocol.Stat{Name: "decr_hits", Value: u(c.decrHits)},
		protocol.Stat{Name: "cas_misses", Value: u(c.casMisses)},
		protocol.Stat{Name: "cas_hits", Value: u(c.casHits)},
		protocol.Stat{Name: "cas_badval", Value: u(c.casBadval)},
		protocol.Stat{Name: "touch_hits", Value: u(c.touchHits)},
		protocol.Stat{Name: "touch_misses", Value: u(c.touchMisses)},
		protocol.Stat{Name: "limit_maxbytes", Value: "0"},
		protocol.Stat{Name: "bytes", Value: u(bytes)},
		protocol.Stat{Name: "curr_items", Value: strconv.Itoa(s.liveCount(unix))},
		protocol.Stat{Name: "total_items", Value: u(c.totalItems)},
		protocol.Stat{Name: "evictions", Value: "0"},
	)
	resp.Stats = st
}
