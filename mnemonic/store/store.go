package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/grocksdb"
)

// lockStripes is the number of per-key write locks. Collisions only
// serialise writes to unrelated keys; 4096 makes that rare at any
// realistic concurrency.
const lockStripes = 4096

// Store is the sharded RocksDB item store. It is safe for concurrent use.
type Store struct {
	opts Options
	// detail is memcached's detail_enabled ("stats detail on|off").
	detail atomic.Bool
	log    *slog.Logger
	shards []*shard
	cache  *grocksdb.Cache
	vers   *versions
	flush  *flusher
	ro     *grocksdb.ReadOptions
	wo     *grocksdb.WriteOptions
	start  time.Time
	stats  counters

	// writeSlots bounds concurrent writes (nil: unbounded).
	writeSlots chan struct{}

	// locks serialise writes per key (see the package doc).
	locks [lockStripes]sync.Mutex
	// wgen counts the writes per lock stripe: commitJoined bumps a key's
	// stripe once its write landed (under the stripe), lookupMany notes it
	// before a lookup. Equal counts mean no write reached the stripe in
	// between (access.go, heldRecord).
	wgen [lockStripes]atomic.Uint64

	// recent holds read state not yet written (access.go); the flusher
	// (stateflush.go) closes flushDone when it ends.
	recent    recentAccess
	flushDone chan struct{}
	// persisting serialises persistState, so that when one returns every
	// state due before it began is written (not in another's hands).
	persisting sync.Mutex

	// guard refuses writes before the disk is full (see fault.go).
	guard diskGuard
	// stopWatch ends the watcher goroutine, which closes watchDone.
	stopWatch chan struct{}
	watchDone chan struct{}
	stopOnce  sync.Once

	// life guards the shards against Close and against the watcher
	// reopening a shard: every request holds it shared; Close and a reopen
	// take it exclusively.
	life   sync.RWMutex
	closed bool // guarded by life
}

// shard is one RocksDB instance. Its options own the compaction filter,
// which must outlive the DB, so they are destroyed only after Close.
type shard struct {
	idx  int // position in Store.shards, the label of its metrics
	dir  string
	opts *grocksdb.Options
	// db and readOnly change only while Store.life is held exclusively
	// (a reopen); db is nil while the shard cannot be opened at all.
	db       *grocksdb.DB
	readOnly bool
	// down is set when the shard stopped taking writes (a write failed,
	// or RocksDB reported a background error); the watcher reopens it.
	down atomic.Pointer[shardFault]
	// bgErrors is the background error count the watcher last saw.
	bgErrors uint64
	// commit groups concurrent writes (writebatch.go).
	commit committer
}

// metaFile records the shard count a data directory was created with.
const metaFile = "MNEMONIC"

// Open opens (creating if needed) the store in o.Dir.
func Open(o Options) (*Store, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("cannot open RocksDB at %s: %w", o.Dir, err)
	}
	if err := checkMeta(o.Dir, o.Shards); err != nil {
		return nil, err
	}
	s := &Store{opts: o, log: o.Logger, start: time.Now()}
	if o.WriteConcurrency > 0 {
		s.writeSlots = make(chan struct{}, o.WriteConcurrency)
	}
	var err error
	if s.vers, err = openVersions(o.Dir, time.Now()); err != nil {
		return nil, fmt.Errorf("cannot open RocksDB at %s: versions: %w", o.Dir, err)
	}
	if s.flush, err = openFlusher(o.Dir); err != nil {
		return nil, fmt.Errorf("cannot open RocksDB at %s: flush state: %w", o.Dir, err)
	}
	s.cache = grocksdb.NewLRUCache(uint64(o.BlockCacheBytes))
	base := baseOptions(&o, s.cache)
	defer base.Destroy()
	filter := &expiryFilter{flush: s.flush}
	wbs := layout(&o).writeBuffer
	// On a full disk RocksDB cannot open read-write (it writes a new WAL,
	// MANIFEST and OPTIONS file), and trying risks its ENOSPC abort: open
	// read-only, serve reads, and let the watcher reopen once there is room.
	free, ferr := freeBytes(o.Dir)
	lowDisk := ferr == nil && free < o.MinFreeDiskBytes+s.reopenNeed()
	if lowDisk {
		s.log.Warn("disk full at start: opening every shard read-only until space is freed", "dir", o.Dir,
			"free_bytes", free, "min_free_disk_bytes", o.MinFreeDiskBytes)
	}
	for i := 0; i < o.Shards; i++ {
		sh := &shard{idx: i, dir: filepath.Join(o.Dir, fmt.Sprintf("shard-%03d", i))}
		sh.opts = base.Clone()
		sh.opts.SetCompactionFilter(filter)
		// Keys spread evenly, so equal memtables would fill and flush in
		// all shards at the same moment, and reads would meet every
		// shard's flush at once. Memtables of slightly different sizes
		// (100%, 97%, 94%... of the setting) drift apart instead.
		sh.opts.SetWriteBufferSize(uint64(wbs - wbs*int64(i%8)*3/100))
		sh.readOnly = lowDisk
		scans, serr := scanShardWALs(sh.dir)
		if serr != nil {
			s.log.Warn("cannot read the WAL before recovery; records it drops will not be counted", "shard", i, "err", serr)
		}
		sh.db, err = openShardDB(sh, lowDisk)
		if err != nil && !lowDisk && isNoSpace(err) {
			s.log.Warn("disk full: opening shard read-only until space is freed", "shard", i, "err", err)
			sh.readOnly = true
			sh.db, err = openShardDB(sh, true)
		}
		if err == nil && serr == nil {
			s.reportRecovery(sh, scans, sh.db)
		}
		if err != nil {
			sh.opts.Destroy()
			s.closeShards()
			s.cache.Destroy()
			return nil, fmt.Errorf("cannot open RocksDB at %s: %w", sh.dir, err)
		}
		s.shards = append(s.shards, sh)
	}
	s.ro = grocksdb.NewDefaultReadOptions()
	s.wo = grocksdb.NewDefaultWriteOptions()
	s.wo.SetSync(o.SyncWrites)
	if ferr == nil && !lowDisk {
		s.guard.room.Store(free - o.MinFreeDiskBytes)
	}
	s.guard.free.Store(free)
	s.guard.full.Store(lowDisk)
	if o.WriteNice > 0 {
		for _, sh := range s.shards {
			s.startWriteThread(sh)
		}
	}
	s.stopWatch, s.watchDone = make(chan struct{}), make(chan struct{})
	go s.watch(s.stopWatch, s.watchDone)
	if o.StateFlushInterval > 0 {
		s.recent.deferOK = true
		s.recent.flushAt = int64(o.StateFlushPending)
		s.recent.wake = make(chan struct{}, 1)
		s.flushDone = make(chan struct{})
		go s.flushStates(o.StateFlushInterval, s.stopWatch, s.flushDone)
	}
	l := layout(&o)
	s.log.Info("store open", "dir", o.Dir, "shards", o.Shards, "compaction", o.CompactionStyle,
		"max_disk_bytes", o.MaxDiskBytes, "write_buffer", l.writeBuffer, "fifo_table_budget", l.tableBudget,
		"blob_files", o.BlobFiles, "sync_writes", o.SyncWrites)
	return s, nil
}

// checkMeta creates dir's meta file or checks that it matches shards.
func checkMeta(dir string, shards int) error {
	p := filepath.Join(dir, metaFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return writeFileSync(p, []byte(fmt.Sprintf("format = 1\nshards = %d\n", shards)))
	}
	if err != nil {
		return fmt.Errorf("cannot open RocksDB at %s: %w", dir, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "shards = "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("cannot open RocksDB at %s: corrupt %s", dir, p)
			}
			if n != shards {
				return fmt.Errorf("cannot open RocksDB at %s: it was created with %d shards, not %d "+
					"(keys would hash to other shards); use -shards %d or a new data directory", dir, n, shards, n)
			}
			return nil
		}
	}
	return fmt.Errorf("cannot open RocksDB at %s: corrupt %s", dir, p)
}

// Close flushes every memtable to disk (so the next start replays no WAL),
// closes the shards and frees the shared cache. Requests after Close fail.
func (s *Store) Close() error {
	// The watcher takes life itself (to reopen shards): stop it first.
	// Only Close closes stopWatch, and only once, guarded by life.
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return nil
	}
	s.life.Unlock()
	s.stopOnce.Do(func() { close(s.stopWatch) })
	<-s.watchDone
	if s.flushDone != nil {
		<-s.flushDone
	}
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	// Before the memtables are flushed: the read state kept only in
	// memory (access.go) goes into the records.
	if err := s.persistState(true, time.Now()); err != nil {
		errs = append(errs, err)
	}
	s.vers.close()
	// Requests that still write lead their own groups from here on.
	for _, sh := range s.shards {
		s.stopWriteThread(sh)
	}
	fo := grocksdb.NewDefaultFlushOptions()
	fo.SetWait(true)
	for _, sh := range s.shards {
		// A read-only or stopped shard cannot flush; its WAL holds
		// what its memtables held, and the next start replays it.
		if sh.db == nil || sh.readOnly || sh.fault() != nil {
			continue
		}
		if err := sh.db.Flush(fo); err != nil {
			errs = append(errs, fmt.Errorf("flush %s: %w", sh.dir, err))
		}
	}
	fo.Destroy()
	s.closeShards()
	s.ro.Destroy()
	s.wo.Destroy()
	s.cache.Destroy()
	return errors.Join(errs...)
}

// closeShards closes each DB, then destroys its options (which own the
// compaction filter the DB used until it closed).
func (s *Store) closeShards() {
	for _, sh := range s.shards {
		if sh.db != nil {
			sh.db.Close()
		}
		sh.opts.Destroy()
	}
	s.shards = nil
}

// hashKey is FNV-1a 64: stable across processes and releases, unlike
// hash/maphash, because it decides which shard holds a key on disk.
func hashKey(k []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range k {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func (s *Store) shardFor(h uint64) *shard { return s.shards[h%uint64(len(s.shards))] }

// lockFor returns the write lock of a key. It uses the hash's high bits so
// that the stripes of one shard are not a subset chosen by the low bits.
func (s *Store) lockFor(h uint64) *sync.Mutex { return &s.locks[(h>>32)%lockStripes] }

// CompactAll runs a full manual compaction of every shard, so the
// compaction filter sees every record. It is for tests and maintenance.
// Debian's librocksdb asserts when a manual compaction races automatic ones,
// so those are switched off for its duration.
func (s *Store) CompactAll() error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return errClosed
	}
	for _, sh := range s.shards {
		if err := sh.db.SetOptions([]string{"disable_auto_compactions"}, []string{"true"}); err != nil {
			return err
		}
		sh.db.CompactRange(grocksdb.Range{})
		if err := sh.db.SetOptions([]string{"disable_auto_compactions"}, []string{"false"}); err != nil {
			return err
		}
	}
	return nil
}

// FlushMemtables writes every shard's memtables to table files.
func (s *Store) FlushMemtables() error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return errClosed
	}
	fo := grocksdb.NewDefaultFlushOptions()
	defer fo.Destroy()
	fo.SetWait(true)
	for _, sh := range s.shards {
		if err := sh.db.Flush(fo); err != nil {
			return err
		}
	}
	return nil
}

var errClosed = errors.New("store: closed")

// errShardDown is the error of a request to a shard that is read-only,
// stopped or not open; its reply is a fixed SERVER_ERROR, not a log line per
// request (the fault is logged once and counted).
var errShardDown = errors.New("store: shard not taking writes")
