package store

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
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
	// writeCommits counts RocksDB writes (WriteBatches) and writeOps the
	// puts and deletes in them; readCalls counts lookups into RocksDB (one
	// MultiGet or Get of one shard) and readKeys their keys. Their ratios
	// are the commit group and lookup batch sizes (writebatch.go,
	// multiget.go).
	writeCommits, writeOps, readCalls, readKeys atomic.Uint64
	// stateWrites counts the records (or side records) the flusher wrote
	// for reads' state (access.go), stateHeld those of them written from
	// the copy the read kept, without a second lookup (heldRecord).
	stateWrites, stateHeld atomic.Uint64
}

// commandFields are memcached's per-command counters (stats reset zeroes
// them), in memcached's order. The per-command metrics count the same
// requests, so only what those cannot tell apart is exported here.
var commandFields = metrics.Fields[*Store]{
	{Stat: "cmd_get", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.cmdGet.Load()) }},
	{Stat: "cmd_set", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.cmdSet.Load()) }},
	{Stat: "cmd_flush", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.cmdFlush.Load()) }},
	{Stat: "cmd_touch", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.cmdTouch.Load()) }},
	{Stat: "get_hits", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.getHits.Load()) }},
	{Stat: "get_misses", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.getMisses.Load()) }},
	{Stat: "get_expired", Metric: "get_expired_total", Help: "Reads that found an expired record (answered as misses).",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.getExpired.Load()) }},
	{Stat: "get_flushed", Metric: "get_flushed_total", Help: "Reads that found a record flush_all invalidated (answered as misses).",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.getFlushed.Load()) }},
	{Stat: "delete_misses", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.deleteMisses.Load()) }},
	{Stat: "delete_hits", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.deleteHits.Load()) }},
	{Stat: "incr_misses", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.incrMisses.Load()) }},
	{Stat: "incr_hits", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.incrHits.Load()) }},
	{Stat: "decr_misses", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.decrMisses.Load()) }},
	{Stat: "decr_hits", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.decrHits.Load()) }},
	{Stat: "cas_misses", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.casMisses.Load()) }},
	{Stat: "cas_hits", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.casHits.Load()) }},
	{Stat: "cas_badval", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.casBadval.Load()) }},
	{Stat: "touch_hits", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.touchHits.Load()) }},
	{Stat: "touch_misses", Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.touchMisses.Load()) }},
	{Stat: "total_items", Metric: "items_written_total", Help: "Records written (memcached's total_items).",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.totalItems.Load()) }},
	{Stat: "rocksdb_write_commits", Metric: "rocksdb_write_commits_total", Help: "RocksDB writes (WriteBatches) made; rocksdb_write_ops per commit is the commit group size.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.writeCommits.Load()) }},
	{Stat: "rocksdb_write_ops", Metric: "rocksdb_write_ops_total", Help: "Puts and deletes in the RocksDB writes made.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.writeOps.Load()) }},
	{Stat: "rocksdb_read_calls", Metric: "rocksdb_read_calls_total", Help: "RocksDB lookups (one MultiGet or Get of one shard); rocksdb_read_keys per call is the lookup batch size.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.readCalls.Load()) }},
	{Stat: "rocksdb_read_keys", Metric: "rocksdb_read_keys_total", Help: "Keys looked up in RocksDB.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.readKeys.Load()) }},
	{Stat: "state_writes", Metric: "state_writes_total", Help: "Records written in batches for the state reads changed (first fetch, last access).",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.stateWrites.Load()) }},
	{Stat: "state_held", Metric: "state_held_total", Help: "Read state batched from the record its read kept, without reading it again.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.stateHeld.Load()) }},
	{Stat: "state_pending", Metric: "state_pending", Kind: metrics.Gauge, Help: "Records whose read state waits in memory for the next batch.",
		Read: func(s *Store) metrics.Value { return metrics.Int(s.recent.due.Load()) }},
}

// healthFields are the store's memory, disk, shard and WAL health (not
// zeroed by stats reset). The block cache row reads the cache: its callers
// hold life and have checked that the store is open.
var healthFields = metrics.Fields[*Store]{
	{Stat: "block_cache_bytes", Metric: "block_cache_bytes", Kind: metrics.Gauge, Help: "Memory used by the block cache all shards share.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.cache.GetUsage()) }},
	{Stat: "disk_free_bytes", Metric: "disk_free_bytes", Kind: metrics.Gauge, Help: "Free space of the data directory's file system at the last check (every 100ms).",
		Read: func(s *Store) metrics.Value { return metrics.Int(s.guard.free.Load()) }},
	{Stat: "disk_full", Metric: "disk_full", Kind: metrics.Gauge, Help: "1 while writes are refused because the disk is full.",
		Read: func(s *Store) metrics.Value { return metrics.Bool(s.guard.full.Load()) }},
	{Stat: "disk_full_refused", Metric: "disk_full_refused_total", Help: "Writes refused because the disk was full (SERVER_ERROR out of disk space).",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.guard.refused.Load()) }},
	{Stat: "shard_faults", Metric: "shard_faults_total", Help: "Times a shard stopped taking writes (a failed write or a RocksDB background error).",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.shardFaults.Load()) }},
	{Stat: "shard_reopens", Metric: "shard_reopens_total", Help: "Times a read-only or stopped shard was reopened read-write.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.shardReopens.Load()) }},
	{Stat: "wal_dropped_records", Metric: "wal_dropped_records_total", Help: "WAL records a shard's recovery did not replay (kPointInTimeRecovery stops at the first unreadable one); they may hold acknowledged writes.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.walDroppedRecords.Load()) }},
	{Stat: "wal_dropped_writes", Metric: "wal_dropped_writes_total", Help: "Keys written or deleted in the readable WAL records recovery dropped.",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.walDroppedWrites.Load()) }},
	{Stat: "wal_torn_tails", Metric: "wal_torn_tails_total", Help: "Recoveries that dropped a partly written final WAL record (cut by a crash, never acknowledged).",
		Read: func(s *Store) metrics.Value { return metrics.Uint(s.stats.walTornTails.Load()) }},
}

// shardFields are one shard's RocksDB figures: stats lines shard_<N>_<name>,
// metrics rocksdb_<name>{shard="<N>"}.
var shardFields = metrics.Fields[ShardStats]{
	{Stat: "keys", Metric: "rocksdb_estimated_keys", Kind: metrics.Gauge, Help: "Estimated keys (overwritten and expired records not yet compacted included).",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.Keys) }},
	{Stat: "disk_bytes", Metric: "rocksdb_disk_bytes", Kind: metrics.Gauge, Help: "Bytes of every file in the shard's directory (what the disk budget counts).",
		Read: func(s ShardStats) metrics.Value { return metrics.Int(s.DiskBytes) }},
	{Stat: "live_data_bytes", Metric: "rocksdb_live_data_bytes", Kind: metrics.Gauge, Help: "Bytes of table and blob files.",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.LiveDataBytes) }},
	{Stat: "pending_compaction_bytes", Metric: "rocksdb_pending_compaction_bytes", Kind: metrics.Gauge, Help: "Estimated bytes compaction has to rewrite.",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.PendingCompactionBytes) }},
	{Stat: "l0_files", Metric: "rocksdb_l0_files", Kind: metrics.Gauge, Help: "Table files in level 0 (many of them slow reads and then stall writes).",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.L0Files) }},
	{Stat: "memtable_bytes", Metric: "rocksdb_memtable_bytes", Kind: metrics.Gauge, Help: "Bytes of the active and immutable memtables.",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.MemtableBytes) }},
	{Stat: "write_stopped", Metric: "rocksdb_write_stopped", Kind: metrics.Gauge, Help: "1 while RocksDB stops writes to the shard.",
		Read: func(s ShardStats) metrics.Value { return metrics.Bool(s.WriteStopped) }},
	{Stat: "delayed_write_rate", Metric: "rocksdb_delayed_write_rate_bytes", Kind: metrics.Gauge, Help: "Rate writes are slowed to, in bytes/s; 0 when they are not delayed.",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.DelayedWriteRate) }},
	{Stat: "stall_seconds", Metric: "rocksdb_stall_seconds_total", Help: "Time writes were stalled (stopped or delayed) since start.",
		Read: func(s ShardStats) metrics.Value { return metrics.Float(s.StallSeconds) }},
	{Stat: "running_compactions", Metric: "rocksdb_running_compactions", Kind: metrics.Gauge, Help: "Compactions running now.",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.RunningCompactions) }},
	{Metric: "rocksdb_running_flushes", Kind: metrics.Gauge, Help: "Memtable flushes running now.",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.RunningFlushes) }},
	{Stat: "background_errors", Metric: "rocksdb_background_errors_total", Help: "Flushes and compactions that failed since the shard was opened.",
		Read: func(s ShardStats) metrics.Value { return metrics.Uint(s.BackgroundErrors) }},
	{Stat: "down", Metric: "rocksdb_shard_down", Kind: metrics.Gauge, Help: "1 while the shard takes no writes (read-only on a full disk, or stopped by an error until reopened).",
		Read: func(s ShardStats) metrics.Value { return metrics.Bool(s.Down) }},
}

// Collector exports the store's counters, health and per-shard RocksDB
// figures as Prometheus metrics named ns_..., read at scrape time (one
// ShardStats per scrape), so they cost the request path nothing. A closed
// store exports nothing rather than stale figures (its cache is freed).
func (s *Store) Collector(ns string) prometheus.Collector {
	self := func() *Store { return s }
	return &storeCollector{s: s, c: metrics.Collectors{
		metrics.NewCollector(ns, commandFields, nil, self),
		metrics.NewCollector(ns, healthFields, nil, self),
		metrics.NewListCollector(ns, shardFields, "shard", s.shardStats),
	}}
}

type storeCollector struct {
	s *Store
	c metrics.Collectors
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { c.c.Describe(ch) }

// Collect implements prometheus.Collector. It holds life so that Close
// cannot free the cache and the shards while they are read.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.life.RLock()
	defer c.s.life.RUnlock()
	if c.s.closed {
		return
	}
	c.c.Collect(ch)
}

// reset zeroes every counter (stats reset).
func (c *counters) reset() {
	for _, v := range []*atomic.Uint64{
		&c.cmdGet, &c.getHits, &c.getMisses, &c.getExpired, &c.getFlushed,
		&c.cmdSet, &c.totalItems, &c.cmdTouch, &c.touchHits, &c.touchMisses,
		&c.casHits, &c.casMisses, &c.casBadval,
		&c.incrHits, &c.incrMisses, &c.decrHits, &c.decrMisses,
		&c.deleteHits, &c.deleteMisses, &c.cmdFlush,
		&c.writeCommits, &c.writeOps, &c.readCalls, &c.readKeys, &c.stateWrites, &c.stateHeld,
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

// ShardStats returns the figures of every shard; nil once the store is
// closed.
func (s *Store) ShardStats() []ShardStats {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil
	}
	return s.shardStats()
}

// shardStats is ShardStats for a caller that holds life and has found the
// store open (a second RLock could deadlock behind a waiting Close).
func (s *Store) shardStats() []ShardStats {
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
	resp.Stats = commandFields.AppendStats(resp.Stats, "", s)
	// Handle holds life and found the store open.
	shards := s.shardStats()
	var keys uint64
	var disk int64
	for _, sh := range shards {
		keys += sh.Keys
		disk += sh.DiskBytes
	}
	u("curr_items", keys)
	i("bytes", disk)
	i("limit_maxbytes", s.opts.MaxDiskBytes)
	i("shards", int64(len(shards)))
	for n, sh := range shards {
		resp.Stats = shardFields.AppendStats(resp.Stats, "shard_"+strconv.Itoa(n)+"_", sh)
	}
	resp.Stats = healthFields.AppendStats(resp.Stats, "", s)
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
