package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/linxGnu/grocksdb"
)

// Storage faults: a full disk, a shard that RocksDB stopped (background
// error), a shard opened read-only. The store never lets a fault end the
// process: reads go on, writes are refused with a fixed SERVER_ERROR, and a
// watcher goroutine brings the shards back when the cause is gone.
//
// Why refuse before RocksDB sees the full disk, rather than let it fail and
// Resume: Debian's librocksdb 7.8 is built with assertions, and the first
// ENOSPC on a WAL append aborts the process in WritableFileWriter (measured:
// SIGABRT on the first write that did not fit). The C API has no
// DB::Resume either. So the store keeps its own account of the free space and
// stops writing while RocksDB still has room for what it already accepted.

// msgDiskFull is the reply to a write refused for lack of disk space or
// because its shard is read-only or stopped. memcached has no disk; its
// nearest reply, "out of memory storing object", would send an operator to
// the wrong resource, so the text says what it is.
const msgDiskFull = "out of disk space, writes refused"

// msgShardDown is the reply to a write whose shard RocksDB has stopped (a
// background error) until the watcher has reopened it.
const msgShardDown = "storage unavailable, writes refused"

// watchInterval is how often the watcher reads the free space, the shards'
// pending memtables and their background error counts.
const watchInterval = 100 * time.Millisecond

// diskGuard accounts for free disk space between two watcher checks.
type diskGuard struct {
	// room is how many bytes writes may still add before the next check:
	// the free space less MinFreeDiskBytes and the memtables RocksDB has
	// yet to flush. Each write takes twice its record size (the WAL now, a
	// table file when its memtable is flushed). At or below 0 writes are
	// refused.
	room atomic.Int64
	// free is the free space found by the last check (for stats).
	free atomic.Int64
	// full is set while the last check found no room.
	full atomic.Bool
	// refused counts writes refused for lack of disk space.
	refused atomic.Uint64
}

// take reserves n bytes for a write; false means the disk is full (until
// the next check finds room).
func (g *diskGuard) take(n int64) bool {
	if g.room.Add(-n) >= 0 {
		return true
	}
	g.refused.Add(1)
	g.full.Store(true)
	return false
}

// freeBytes returns the bytes available to an unprivileged writer on the
// file system holding dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// writeCost is what the disk guard charges a write request: its record in
// the WAL and again in a table file. An append's old value is not counted;
// MinFreeDiskBytes covers such slack.
func writeCost(keyLen, valueLen int) int64 {
	return 2 * int64(keyLen+valueLen+headerLen+64)
}

// shardFault is why a shard does not take writes.
type shardFault struct {
	reason string
	since  time.Time
}

// fault returns the shard's fault, nil while it is healthy.
func (sh *shard) fault() *shardFault { return sh.down.Load() }

// setFault records the first fault of a healthy shard; later ones keep the
// first reason, which is the cause.
func (sh *shard) setFault(reason string) bool {
	return sh.down.CompareAndSwap(nil, &shardFault{reason: reason, since: time.Now()})
}

// openShardDB opens sh's RocksDB read-write, or read-only when readOnly.
func openShardDB(sh *shard, readOnly bool) (*grocksdb.DB, error) {
	if readOnly {
		return grocksdb.OpenDbForReadOnly(sh.opts, sh.dir, false)
	}
	return grocksdb.OpenDb(sh.opts, sh.dir)
}

// isNoSpace reports whether err is RocksDB's or the OS's "disk full".
func isNoSpace(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "No space left"))
}

// watch runs until stop closes: every watchInterval it refreshes the disk
// guard, notices shards that RocksDB stopped, and reopens shards that are
// read-only or stopped once there is room again.
func (s *Store) watch(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.check()
	}
}

// check is one round of watch.
func (s *Store) check() {
	free, err := freeBytes(s.opts.Dir)
	if err != nil {
		s.log.Warn("cannot read free disk space", "dir", s.opts.Dir, "err", err)
		return
	}
	s.guard.free.Store(free)
	pending, needReopen := s.scanShards()
	room := free - s.opts.MinFreeDiskBytes - pending
	if needReopen && room > s.reopenNeed() && fdHeadroom() >= reopenFDs*s.opts.Shards {
		// Writes to a shard that stays down are refused by the shard
		// (writable), not by the disk account.
		s.reopenShards()
	}
	wasFull := s.guard.full.Load() || s.guard.room.Load() < 0
	s.guard.room.Store(room)
	s.guard.full.Store(room <= 0)
	switch {
	case room <= 0 && !wasFull:
		s.log.Warn("disk full: refusing writes until space is freed (reads go on)", "dir", s.opts.Dir,
			"free_bytes", free, "min_free_disk_bytes", s.opts.MinFreeDiskBytes, "pending_flush_bytes", pending)
	case room > 0 && wasFull:
		s.log.Info("disk space available again: writes resume", "dir", s.opts.Dir, "free_bytes", free)
	}
}

// reopenFDs is the descriptors a shard's reopen needs besides its table
// files (WAL, MANIFEST, LOG, LOCK, OPTIONS, directories), with a margin.
const reopenFDs = 64

// fdHeadroom returns how many more descriptors the process may open: the
// soft RLIMIT_NOFILE less the entries of /proc/self/fd. When descriptors
// ran out the listing itself fails, which reads as no headroom.
func fdHeadroom() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	if r.Cur > 1<<30 {
		return 1 << 30
	}
	return int(r.Cur) - len(ents)
}

// reopenNeed is the room a reopen needs: opening replays each shard's WAL
// into a memtable and flushes it, at most a few memtables per shard.
func (s *Store) reopenNeed() int64 { return 2 * layout(&s.opts).writeBuffer * int64(s.opts.Shards) }

// scanShards sums the memtable bytes RocksDB has yet to flush, marks shards
// whose background error count grew as down (RocksDB stops a shard's writes
// after a failed flush or compaction until it is reopened), and reports
// whether any shard needs reopening.
func (s *Store) scanShards() (pending int64, needReopen bool) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return 0, false
	}
	for _, sh := range s.shards {
		if f := sh.fault(); f != nil {
			needReopen = true
			continue
		}
		if sh.readOnly || sh.db == nil {
			needReopen = true
			continue
		}
		m, _ := sh.db.GetIntProperty("rocksdb.cur-size-all-mem-tables")
		pending += int64(m)
		if n, _ := sh.db.GetIntProperty("rocksdb.background-errors"); n > sh.bgErrors {
			sh.bgErrors = n
			if stopped := probeWrites(sh.db); stopped != nil {
				s.shardDown(sh, "background error: "+stopped.Error())
				needReopen = true
			}
		}
	}
	return pending, needReopen
}

// probeWrites writes an empty batch: RocksDB answers it with the background
// error that stopped the shard, and nothing when writes still work. An empty
// batch adds no key.
func probeWrites(db *grocksdb.DB) error {
	b := grocksdb.NewWriteBatch()
	defer b.Destroy()
	wo := grocksdb.NewDefaultWriteOptions()
	defer wo.Destroy()
	wo.DisableWAL(true)
	return db.Write(wo, b)
}

// shardDown marks sh as not taking writes, logs it once and counts it.
func (s *Store) shardDown(sh *shard, reason string) {
	if sh.setFault(reason) {
		s.stats.shardFaults.Add(1)
		s.log.Error("shard stopped taking writes; mnemonic will reopen it (reads go on)", "shard", sh.idx,
			"dir", sh.dir, "reason", reason)
	}
}

// reopenShards closes every read-only or stopped shard and opens it
// read-write again, holding the store exclusively (requests wait, for the
// time RocksDB takes to replay the shard's WAL). A shard that does not open
// read-write is opened read-only, so reads go on; it stays down. It reports
// whether it reopened any shard.
func (s *Store) reopenShards() bool {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return false
	}
	reopened := false
	for _, sh := range s.shards {
		f := sh.fault()
		if !sh.readOnly && f == nil {
			continue
		}
		if sh.db != nil {
			sh.db.Close()
		}
		// A write that failed may have left a partial WAL record.
		scans, serr := scanShardWALs(sh.dir)
		db, err := openShardDB(sh, false)
		if err == nil && serr == nil {
			s.reportRecovery(sh, scans, db)
		}
		if err != nil {
			s.log.Error("cannot reopen shard read-write; it stays read-only", "shard", sh.idx, "dir", sh.dir, "err", err)
			if db, err = openShardDB(sh, true); err != nil {
				// Not even read-only: requests to the shard fail
				// (errShardDown) until a later round opens it.
				s.log.Error("cannot reopen shard read-only", "shard", sh.idx, "dir", sh.dir, "err", err)
				db = nil
			}
			sh.db, sh.readOnly = db, true
			if f == nil {
				sh.setFault(fmt.Sprintf("read-only: %v", err))
			}
			continue
		}
		sh.db, sh.readOnly = db, false
		sh.bgErrors = 0
		sh.down.Store(nil)
		s.stats.shardReopens.Add(1)
		reopened = true
		s.log.Info("shard reopened read-write: writes resume", "shard", sh.idx, "dir", sh.dir)
	}
	return reopened
}

// Fault describes a storage fault for /healthz.
type Fault struct {
	Shard  int    // -1 for the whole store (disk full)
	Reason string // what is wrong
}

// Faults returns every fault in force; none means the store takes writes.
func (s *Store) Faults() []Fault {
	var out []Fault
	if s.guard.full.Load() {
		out = append(out, Fault{Shard: -1, Reason: fmt.Sprintf("disk full: %d bytes free, min_free_disk_bytes %d; writes refused",
			s.guard.free.Load(), s.opts.MinFreeDiskBytes)})
	}
	s.life.RLock()
	defer s.life.RUnlock()
	for _, sh := range s.shards {
		if f := sh.fault(); f != nil {
			out = append(out, Fault{Shard: sh.idx, Reason: f.reason + " (since " + f.since.UTC().Format(time.RFC3339) + ")"})
		} else if sh.readOnly {
			out = append(out, Fault{Shard: sh.idx, Reason: "read-only"})
		}
	}
	return out
}
