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
}

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
		st.Keys, _ = sh.db.GetIntProperty("rocksdb.estimate-num-keys")
		sst, _ := sh.db.GetIntProperty("rocksdb.total-sst-files-size")
		blob, _ := sh.db.GetIntProperty("rocksdb.total-blob-file-size")
		st.LiveDataBytes = sst + blob
		st.PendingCompactionBytes, _ = sh.db.GetIntProperty("rocksdb.estimate-pending-compaction-bytes")
		// num-files-at-level<N> is a string property only.
		st.L0Files, _ = strconv.ParseUint(strings.TrimSpace(sh.db.GetProperty("rocksdb.num-files-at-level0")), 10, 64)
		st.MemtableBytes, _ = sh.db.GetIntProperty("rocksdb.cur-size-all-mem-tables")
		st.DiskBytes = dirBytes(sh.dir)
	}
	return out
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
	if s.opts.ConnStats != nil {
		resp.Stats = s.opts.ConnStats(resp.Stats)
	}
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
	}
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
