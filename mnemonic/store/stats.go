package store

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// counters are the store's memcached-style statistics.
type counters struct {
	cmdGet, getHits, getMisses, getExpired, getFlushed   atomic.Uint64
	cmdSet, totalItems, cmdTouch, touchHits, touchMisses atomic.Uint64
	casHits, casMisses, casBadval                        atomic.Uint64
	incrHits, incrMisses, decrHits, decrMisses           atomic.Uint64
	deleteHits, deleteMisses, cmdFlush                   atomic.Uint64
	// shardFaults counts shards that stopped taking writes, shardReopens
	// the reopens that brought one back (not zeroed by stats reset).
	shardFaults, shardReopens atomic.Uint64
	// walDroppedRecords counts WAL records recovery did not replay (see
	// wal.go), walDroppedWrites their readable entries, walTornTails WAL
	// files that ended in a partly written record (not zeroed either).
	walDroppedRecords, walDroppedWrites, walTornTails atomic.Uint64
}

// Counters is a snapshot of the store's memcached-style counters that
// /metrics exports beside the per-command metrics (which cannot tell an
// expired or flushed miss from an absent key).
type Counters struct {
	GetExpired, GetFlushed, ItemsWritten uint64
	// DiskFullRefused counts writes refused because the disk was full;
	// ShardFaults shards that stopped taking writes; ShardReopens the
	// reopens that brought one back.
	DiskFullRefused, ShardFaults, ShardReopens uint64
	// DiskFreeBytes is the free space of the data directory's file system
	// at the last check; DiskFull is true while writes are refused for it.
	DiskFreeBytes int64
	DiskFull      bool
	// WALDroppedRecords are WAL records a recovery did not replay (they
	// may hold acknowledged writes), WALDroppedWrites the keys written or
	// deleted in those of them that could be read, WALTornTails recoveries
	// that dropped a final, partly written (never acknowledged) record.
	WALDroppedRecords, WALDroppedWrites, WALTornTails uint64
}

// Counters returns the current counters.
func (s *Store) Counters() Counters {
	return Counters{GetExpired: s.stats.getExpired.Load(), GetFlushed: s.stats.getFlushed.Load(),
		ItemsWritten: s.stats.totalItems.Load(), DiskFullRefused: s.guard.refused.Load(),
		ShardFaults: s.stats.shardFaults.Load(), ShardReopens: s.stats.shardReopens.Load(),
		DiskFreeBytes: s.guard.free.Load(), DiskFull: s.guard.full.Load(),
		WALDroppedRecords: s.stats.walDroppedRecords.Load(), WALDroppedWrites: s.stats.walDroppedWrites.Load(),
		WALTornTails: s.stats.walTornTails.Load()}
}

// BlockCacheBytes is the memory the shared block cache uses now.
func (s *Store) BlockCacheBytes() uint64 { return s.cache.GetUsage() }

// reset zeroes every counter (stats reset).
func (c *counters) reset() {
	for _, v := range []*atomic.Uint64{
		&c.cmdGet, &c.getHits, &c.getMisses, &c.getExpired, &c.getFlushed,
		&c.cmdSet, &c.totalItems, &c.cmdTouch, &c.touchHits, &c.touchMisses,
		&c.casHits, &c.casMisses, &c.casBadval,
		&c.incrHits, &c.incrMisses, &c.decrHits, &c.decrMisses,
		&c.deleteHits, &c.deleteMisses, &c.cmdFlush,
	} {
		v.Store(0)
	}
}

// ShardStats are one shard's RocksDB figures.
type ShardStats struct {
	Keys                   uint64 // rocksdb.estimate-num-keys (includes overwritten and expired records)
	DiskBytes              int64  // bytes of every file in the shard's directory
	LiveDataBytes          uint64 // table and blob files
	PendingCompactionBytes uint64
	L0Files                uint64
	MemtableBytes          uint64
	// WriteStopped is true while RocksDB stops writes (too many L0 files
	// or memtables, too much pending compaction); DelayedWriteRate is the
	// rate, in bytes/s, writes are slowed to, 0 when they are not.
	WriteStopped     bool
	DelayedWriteRate uint64
	// StallSeconds is the cumulative time writes were stalled (stopped or
	// delayed) since the shard was opened.
	StallSeconds       float64
	RunningCompactions uint64
	RunningFlushes     uint64
	// BackgroundErrors counts failed flushes and compactions since open.
	BackgroundErrors uint64
	// Down is true while the shard takes no writes (read-only, stopped
	// by an error, or not open); the watcher reopens it.
	Down bool
}

// ShardStats returns the figures of every shard.
func (s *Store) ShardStats() []ShardStats {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil
	}
	out := make([]ShardStats, len(s.shards))
	for i, sh := range s.shards {
		st := &out[i]
		st.Down = !sh.writable()
		if sh.db == nil {
			continue
		}
		st.Keys, _ = sh.db.GetIntProperty("rocksdb.estimate-num-keys")
		sst, _ := sh.db.GetIntProperty("rocksdb.total-sst-files-size")
		blob, _ := sh.db.GetIntProperty("rocksdb.total-blob-file-size")
		st.LiveDataBytes = sst + blob
		st.PendingCompactionBytes, _ = sh.db.GetIntProperty("rocksdb.estimate-pending-compaction-bytes")
		// num-files-at-level<N> is a string property only.
		st.L0Files, _ = strconv.ParseUint(strings.TrimSpace(sh.db.GetProperty("rocksdb.num-files-at-level0")), 10, 64)
		st.MemtableBytes, _ = sh.db.GetIntProperty("rocksdb.cur-size-all-mem-tables")
		st.DiskBytes = dirBytes(sh.dir)
		stopped, _ := sh.db.GetIntProperty("rocksdb.is-write-stopped")
		st.WriteStopped = stopped != 0
		st.DelayedWriteRate, _ = sh.db.GetIntProperty("rocksdb.actual-delayed-write-rate")
		st.RunningCompactions, _ = sh.db.GetIntProperty("rocksdb.num-running-compactions")
		st.RunningFlushes, _ = sh.db.GetIntProperty("rocksdb.num-running-flushes")
		st.BackgroundErrors, _ = sh.db.GetIntProperty("rocksdb.background-errors")
		// The stall time is only in the text of rocksdb.dbstats (the map
		// form, with db.write_stall_micros, is not in the C API).
		st.StallSeconds = parseStall(sh.db.GetProperty("rocksdb.dbstats"))
	}
	return out
}

// parseStall reads the cumulative stall time from the text of the
// rocksdb.dbstats property, a line "Cumulative stall: 00:00:1.250 H:M:S,
// 0.1 percent". It returns 0 if the line is missing or malformed.
func parseStall(dbstats string) float64 {
	_, rest, ok := strings.Cut(dbstats, "Cumulative stall: ")
	if !ok {
		return 0
	}
	hms, _, ok := strings.Cut(rest, " H:M:S")
	parts := strings.Split(hms, ":")
	if !ok || len(parts) != 3 {
		return 0
	}
	h, err1 := strconv.ParseUint(parts[0], 10, 64)
	m, err2 := strconv.ParseUint(parts[1], 10, 64)
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0
	}
	return float64(h*3600+m*60) + sec
}

// DiskBytes is the total size of the data directory, as the budget counts it.
func (s *Store) DiskBytes() int64 { return dirBytes(s.opts.Dir) }

// dirBytes sums the sizes of the regular files below dir. Files that vanish
// while it walks (a compaction deleting its inputs) are skipped.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// Detail reports whether "stats detail on" is in force (detail_enabled).
func (s *Store) Detail() bool { return s.detail.Load() }

// statsReply answers "stats" with memcached's general fields that a store
// can know (connection counts belong to the server) plus per-shard figures,
// and "stats settings" with the store's configuration.
func (s *Store) statsReply(req *protocol.Request, resp *protocol.Response, now time.Time) {
	add := func(name string, v string) { resp.Stats = append(resp.Stats, protocol.Stat{Name: name, Value: v}) }
	u := func(name string, v uint64) { add(name, strconv.FormatUint(v, 10)) }
	i := func(name string, v int64) { add(name, strconv.FormatInt(v, 10)) }
	resp.Status = protocol.StatusOK
	switch string(req.Args) {
	case "":
	case "settings":
		i("item_size_max", int64(s.opts.MaxItemSize))
		i("shards", int64(s.opts.Shards))
		i("max_disk_bytes", s.opts.MaxDiskBytes)
		add("compaction_style", s.opts.CompactionStyle)
		add("blob_files", strconv.FormatBool(s.opts.BlobFiles))
		add("sync_writes", strconv.FormatBool(s.opts.SyncWrites))
		add("compression", s.opts.Compression)
		i("block_cache_bytes", s.opts.BlockCacheBytes)
		i("rate_limit_bytes_per_sec", s.opts.RateLimitBytesPerSec)
		add("data", s.opts.Dir)
		return
	case "items", "conns", "slabs":
		// No slab classes and no per-connection view here: memcached
		// answers an empty cache's groups with just END.
		return
	case "sizes":
		add("sizes_status", "disabled")
		return
	case "reset":
		// No stats with StatusOK: the text codec answers "RESET".
		s.stats.reset()
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
	st := &s.stats
	i("pid", int64(os.Getpid()))
	i("uptime", int64(now.Sub(s.start)/time.Second))
	i("time", now.Unix())
	add("version", s.opts.Version)
	i("pointer_size", 64)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		add("rusage_user", rusageString(ru.Utime))
		add("rusage_system", rusageString(ru.Stime))
	}
	u("cmd_get", st.cmdGet.Load())
	u("cmd_set", st.cmdSet.Load())
	u("cmd_flush", st.cmdFlush.Load())
	u("cmd_touch", st.cmdTouch.Load())
	u("get_hits", st.getHits.Load())
	u("get_misses", st.getMisses.Load())
	u("get_expired", st.getExpired.Load())
	u("get_flushed", st.getFlushed.Load())
	u("delete_misses", st.deleteMisses.Load())
	u("delete_hits", st.deleteHits.Load())
	u("incr_misses", st.incrMisses.Load())
	u("incr_hits", st.incrHits.Load())
	u("decr_misses", st.decrMisses.Load())
	u("decr_hits", st.decrHits.Load())
	u("cas_misses", st.casMisses.Load())
	u("cas_hits", st.casHits.Load())
	u("cas_badval", st.casBadval.Load())
	u("touch_hits", st.touchHits.Load())
	u("touch_misses", st.touchMisses.Load())
	u("total_items", st.totalItems.Load())

	shards := s.ShardStats()
	var keys uint64
	var disk int64
	for _, sh := range shards {
		keys += sh.Keys
		disk += sh.DiskBytes
	}
	u("curr_items", keys)
	i("bytes", disk)
	i("limit_maxbytes", s.opts.MaxDiskBytes)
	u("block_cache_bytes", s.cache.GetUsage())
	i("shards", int64(len(shards)))
	for n, sh := range shards {
		p := "shard_" + strconv.Itoa(n) + "_"
		u(p+"keys", sh.Keys)
		i(p+"disk_bytes", sh.DiskBytes)
		u(p+"live_data_bytes", sh.LiveDataBytes)
		u(p+"pending_compaction_bytes", sh.PendingCompactionBytes)
		u(p+"l0_files", sh.L0Files)
		u(p+"memtable_bytes", sh.MemtableBytes)
		add(p+"write_stopped", strconv.FormatBool(sh.WriteStopped))
		u(p+"delayed_write_rate", sh.DelayedWriteRate)
		add(p+"stall_seconds", strconv.FormatFloat(sh.StallSeconds, 'f', 3, 64))
		u(p+"running_compactions", sh.RunningCompactions)
		u(p+"background_errors", sh.BackgroundErrors)
		add(p+"down", strconv.FormatBool(sh.Down))
	}
	c := s.Counters()
	i("disk_free_bytes", c.DiskFreeBytes)
	add("disk_full", strconv.FormatBool(c.DiskFull))
	u("disk_full_refused", c.DiskFullRefused)
	u("shard_faults", c.ShardFaults)
	u("shard_reopens", c.ShardReopens)
	u("wal_dropped_records", c.WALDroppedRecords)
	u("wal_dropped_writes", c.WALDroppedWrites)
	u("wal_torn_tails", c.WALTornTails)
}

func rusageString(tv syscall.Timeval) string {
	return strconv.FormatInt(tv.Sec, 10) + "." + leftPad6(tv.Usec)
}

func leftPad6(v int64) string {
	s := strconv.FormatInt(v, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}
