// Package memstore is an in-memory protocol.Handler with memcached 1.6's
// semantics. It is the reference the shared module's tests and the
// conformance suite run the codecs and the server against; it is not a
// product (one mutex, one map, no eviction).
//
// The item semantics (what each command does to an item, counters, CAS,
// the meta stale-while-revalidate state) are package item's, applied here
// under one mutex. What the store implements, as memcached does:
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
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/shared/item"
	"github.com/moneta-cache/moneta/shared/protocol"
)

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
}

// Store is the in-memory reference handler. It is safe for concurrent use.
type Store struct {
	now         func() time.Time
	version     string
	maxItemSize int
	pid         int
	started     time.Time
	detail      atomic.Bool // "stats detail on|off"

	mu      sync.Mutex
	items   map[string]*entry // guarded by mu
	lastCAS uint64            // guarded by mu: the last CAS handed out
	// flushAt is a pending delayed flush_all (unix seconds, 0: none):
	// once now >= flushAt, items written before flushAt are gone.
	flushAt int64    // guarded by mu
	c       counters // guarded by mu
}

// entry is one stored item. Its value is never modified once stored (a
// write makes a new entry).
type entry struct {
	it      item.Item
	written int64 // unix second of the last write, for delayed flush_all
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
		pid:         os.Getpid(),
		items:       make(map[string]*entry),
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
	case protocol.CmdCacheMemlimit:
		// Checked as memcached checks it; a test store has no limit.
		resp.Status = protocol.StatusOK
		protocol.CheckMemlimit(req.Args, resp)
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

func expired(e *entry, now int64) bool {
	return !e.it.Live(now)
}

// lookup returns the live item under key, dropping it if it has expired.
func (s *Store) lookup(key []byte, now int64) *entry {
	e, _ := s.lookupExpired(key, now)
	return e
}

// lookupExpired is lookup that also reports whether an expired item was
// found (and dropped), for get_expired.
func (s *Store) lookupExpired(key []byte, now int64) (e *entry, wasExpired bool) {
	e, ok := s.items[string(key)]
	if !ok {
		return nil, false
	}
	if expired(e, now) {
		delete(s.items, string(key))
		return nil, true
	}
	return e, false
}

// cur is e's item for package item, nil for no entry.
func cur(e *entry) *item.Item {
	if e == nil {
		return nil
	}
	return &e.it
}

// apply carries out an outcome for key: a new version gets its CAS (the one
// the client asked for with meta E, or a fresh one), and a stored value is
// copied unless it is the old item's own (immutable) value.
func (s *Store) apply(key []byte, req *protocol.Request, old *entry, o *item.Outcome, now int64) {
	if o.NeedCAS && o.Status == protocol.StatusOK {
		if req.NewCAS != 0 {
			o.SetCAS(req.NewCAS)
		} else {
			s.lastCAS++
			o.SetCAS(s.lastCAS)
		}
	}
	switch o.Action {
	case item.Put:
		n := o.Next
		if old == nil || !sameBytes(n.Value, old.it.Value) {
			n.Value = append([]byte{}, n.Value...)
		}
		if !o.StateOnly {
			s.c.totalItems++
		}
		written := now
		if o.StateOnly && old != nil {
			written = old.written
		}
		s.items[string(key)] = &entry{it: n, written: written}
	case item.Delete:
		if o.NeedCAS {
			s.c.totalItems++ // a write born expired still counts
		}
		delete(s.items, string(key))
	}
}

func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (s *Store) get(req *protocol.Request, resp *protocol.Response, now time.Time, touch bool) {
	unix := now.Unix()
	for i, key := range req.Keys {
		e, wasExpired := s.lookupExpired(key, unix)
		if touch {
			s.c.cmdTouch++
		}
		s.c.cmdGet++
		o := item.Read(req, cur(e), unix)
		switch {
		case e == nil:
			s.c.getMisses++
			if wasExpired {
				s.c.getExpired++
			}
			if touch {
				s.c.touchMisses++
			}
		default:
			s.c.getHits++
			if touch {
				s.c.touchHits++
			}
		}
		if o.Status != protocol.StatusOK {
			continue
		}
		s.apply(key, req, e, &o, unix)
		o.AppendHit(resp, i)
	}
	resp.Status = protocol.StatusOK
}

// write runs a write command through package item.
func (s *Store) write(req *protocol.Request, resp *protocol.Response, now time.Time) item.Outcome {
	key := req.Key()
	unix := now.Unix()
	e := s.lookup(key, unix)
	o := item.Apply(req, cur(e), unix, s.maxItemSize, nil)
	s.apply(key, req, e, &o, unix)
	o.Reply(resp)
	return o
}

func (s *Store) touch(req *protocol.Request, resp *protocol.Response, now time.Time) {
	s.c.cmdTouch++
	if o := s.write(req, resp, now); o.Status == protocol.StatusOK {
		s.c.touchHits++
	} else {
		s.c.touchMisses++
	}
	resp.Hits = resp.Hits[:0]
}

func (s *Store) store(req *protocol.Request, resp *protocol.Response, now time.Time) {
	s.c.cmdSet++
	o := s.write(req, resp, now)
	if item.IsCompareAndSwap(req) {
		switch o.Status {
		case protocol.StatusOK:
			s.c.casHits++
		case protocol.StatusNotFound:
			s.c.casMisses++
		case protocol.StatusExists:
			s.c.casBadval++
		}
	}
}

func (s *Store) delete(req *protocol.Request, resp *protocol.Response, now time.Time) {
	switch o := s.write(req, resp, now); o.Status {
	case protocol.StatusOK:
		s.c.deleteHits++
	case protocol.StatusNotFound:
		s.c.deleteMisses++
	}
	if !req.Invalidate {
		resp.CAS = 0
	}
}

func (s *Store) arith(req *protocol.Request, resp *protocol.Response, now time.Time) {
	e := s.lookup(req.Key(), now.Unix())
	hits, misses := &s.c.decrHits, &s.c.decrMisses
	if req.Command == protocol.CmdIncr {
		hits, misses = &s.c.incrHits, &s.c.incrMisses
	}
	o := s.write(req, resp, now)
	switch {
	case e == nil:
		*misses++
	case o.Status == protocol.StatusOK:
		*hits++
	}
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
	for k, e := range s.items {
		if e.written < s.flushAt {
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
			// An in-memory test store: no memory limit, no evictions,
			// no connection limit, no socket of its own.
			protocol.Stat{Name: "maxbytes", Value: "0"},
			protocol.Stat{Name: "maxconns", Value: "0"},
			protocol.Stat{Name: "evictions", Value: "off"},
			protocol.Stat{Name: "domain_socket", Value: "NULL"},
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
		if protocol.AdminStats(req.Args, resp, &s.detail) {
			return // cachedump, detail: as memcached with no slab classes
		}
		// memcached answers an unknown group "ERROR" (binary: not
		// found); the codecs encode StatusNotFound that way.
		resp.Status = protocol.StatusNotFound
		return
	}
	unix := now.Unix()
	var bytes uint64
	for _, e := range s.items {
		if !expired(e, unix) {
			bytes += uint64(len(e.it.Value))
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
