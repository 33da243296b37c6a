package store

import (
	"time"

	"github.com/linxGnu/grocksdb"
)

var compressionTypes = map[string]grocksdb.CompressionType{
	"none":   grocksdb.NoCompression,
	"lz4":    grocksdb.LZ4Compression,
	"snappy": grocksdb.SnappyCompression,
	"zstd":   grocksdb.ZSTDCompression,
}

// maxWriteBuffers is the number of memtables a shard may hold: one being
// written and the rest waiting for (or in) flush. More than two absorbs a
// burst while a flush is slow without stalling writes.
const maxWriteBuffers = 4

// memtableBloomRatio is the share of a memtable given to its bloom filter.
const memtableBloomRatio = 0.01

// shardLayout is what the disk budget leaves each shard.
type shardLayout struct {
	writeBuffer int64 // bytes per memtable
	tableBudget int64 // FIFO: table files kept before the oldest is deleted
}

// layout splits o.MaxDiskBytes between shards. The WAL of a shard holds at
// most the unflushed memtables, so a share covers maxWriteBuffers+1 memtables
// of WAL plus the FIFO table budget. A small budget shrinks the memtables
// rather than the table budget, keeping at least ~70% for data.
func layout(o *Options) shardLayout {
	l := shardLayout{writeBuffer: o.WriteBufferBytes}
	if o.CompactionStyle != CompactionFIFO {
		return l
	}
	share := o.MaxDiskBytes / int64(o.Shards)
	l.writeBuffer = min(l.writeBuffer, share/16)
	l.writeBuffer = max(l.writeBuffer, 256<<10)
	l.tableBudget = share - int64(maxWriteBuffers+1)*l.writeBuffer
	return l
}

// baseOptions builds the RocksDB options common to all shards. The rate
// limiter and block cache inside are shared by every clone: RocksDB holds
// them by shared pointer, so one limiter bounds the background IO of all
// shards together.
func baseOptions(o *Options, cache *grocksdb.Cache) *grocksdb.Options {
	l := layout(o)
	ro := grocksdb.NewDefaultOptions()
	ro.SetCreateIfMissing(true)
	// Flushes and compactions yield the CPU to request handling, and
	// compactions yield the disk too: reads are what a cache is for, and
	// a flush that falls behind only slows writers (memtables queue up to
	// maxWriteBuffers), never readers. The wrapper points at RocksDB's
	// default Env, which every shard (and every store in the process)
	// uses, so lowering it again is harmless; destroying the wrapper
	// leaves the default Env alone.
	env := grocksdb.NewDefaultEnv()
	env.LowerThreadPoolCPUPriority()
	env.LowerHighPriorityThreadPoolCPUPriority()
	env.LowerThreadPoolIOPriority()
	env.Destroy()
	// Debian's build logs at DEBUG unless told otherwise; INFO keeps the
	// compaction summaries an operator needs, and the LOG files are capped.
	ro.SetInfoLogLevel(grocksdb.InfoInfoLogLevel)
	ro.SetMaxLogFileSize(8 << 20)
	ro.SetKeepLogFileNum(3)
	ro.SetMaxBackgroundJobs(o.BackgroundJobs)
	ro.SetWALRecoveryMode(walRecoveryMode) // why: see wal.go
	// Bounded, not RocksDB's default of unlimited: the process reserves
	// this many descriptors per shard ahead of client connections. FIFO
	// compaction requires every table file open (RocksDB 7.8 refuses
	// anything but -1); there the disk budget bounds the file count and
	// MaxOpenFiles is only the reservation.
	if o.CompactionStyle == CompactionFIFO {
		ro.SetMaxOpenFiles(-1)
	} else {
		ro.SetMaxOpenFiles(o.MaxOpenFiles)
	}
	// Write back data in small steps instead of leaving the kernel to flush
	// hundreds of megabytes at once, which stalls reads behind the burst.
	ro.SetBytesPerSync(1 << 20)
	ro.SetWriteBufferSize(uint64(l.writeBuffer))
	ro.SetMaxWriteBufferNumber(maxWriteBuffers)
	ro.SetMaxTotalWalSize(uint64(maxWriteBuffers * l.writeBuffer))
	// A whole-key bloom filter per memtable: a point lookup of a key the
	// memtables do not hold (most reads of a cache bigger than its memory)
	// skips the skip-list searches of up to maxWriteBuffers memtables of
	// 64 MiB, which were ~11% of mnemonic's CPU on beyond-RAM gets
	// (bench/results/l2path.md, "Fifth round"). The filter takes this
	// share of each memtable's size: 1% of 64 MiB is ~80 bits per 1 KiB
	// item, ~10 per 100-byte item.
	if !o.table.noMemtableBloom {
		ro.SetMemTablePrefixBloomSizeRatio(memtableBloomRatio)
		ro.SetMemtableWholeKeyFiltering(true)
	}
	if o.RateLimitBytesPerSec > 0 {
		ro.SetRateLimiter(grocksdb.NewRateLimiter(o.RateLimitBytesPerSec, 100*1000, 10))
	}
	comp := compressionTypes[o.Compression]
	ro.SetCompression(comp)

	bbto := grocksdb.NewDefaultBlockBasedTableOptions()
	bbto.SetBlockCache(cache)
	if o.BloomBitsPerKey > 0 {
		bbto.SetFilterPolicy(grocksdb.NewBloomFilterFull(o.BloomBitsPerKey))
	}
	// A point lookup in a block finds its key through a small hash index
	// instead of a binary search over restart points.
	bbto.SetDataBlockIndexType(grocksdb.KDataBlockIndexTypeBinarySearchAndHash)
	bbto.SetDataBlockHashRatio(0.75)
	if o.table.blockSize > 0 {
		bbto.SetBlockSize(o.table.blockSize)
	}
	if o.table.mmapReads {
		ro.SetAllowMmapReads(true)
	}
	if o.table.cacheIndexFilter {
		bbto.SetCacheIndexAndFilterBlocks(true)
		bbto.SetPinL0FilterAndIndexBlocksInCache(true)
	}
	ro.SetBlockBasedTableFactory(bbto)

	switch o.CompactionStyle {
	case CompactionFIFO:
		ro.SetCompactionStyle(grocksdb.FIFOCompactionStyle)
		fifo := grocksdb.NewDefaultFIFOCompactionOptions()
		fifo.SetMaxTableFilesSize(uint64(l.tableBudget))
		ro.SetFIFOCompactionOptions(fifo)
		// Every FIFO file stays in L0; the L0 file-count stall triggers
		// would stop writes for good once the budget holds more files
		// than the trigger, because FIFO never merges them.
		ro.SetLevel0SlowdownWritesTrigger(1 << 30)
		ro.SetLevel0StopWritesTrigger(1 << 30)
	case CompactionUniversal:
		ro.SetCompactionStyle(grocksdb.UniversalCompactionStyle)
		ro.SetUniversalCompactionOptions(grocksdb.NewDefaultUniversalCompactionOptions())
	default:
		ro.SetCompactionStyle(grocksdb.LevelCompactionStyle)
		ro.SetLevelCompactionDynamicLevelBytes(true)
	}
	if o.BlobFiles {
		ro.EnableBlobFiles(true)
		ro.SetMinBlobSize(uint64(o.MinBlobSize))
		ro.SetBlobFileSize(256 << 20)
		ro.SetBlobCompressionType(comp)
		// Overwrites leave dead values in old blob files; garbage
		// collection relocates the live ones when compaction reaches the
		// oldest quarter of blob files.
		ro.EnableBlobGC(true)
		ro.SetBlobGCAgeCutoff(0.25)
	}
	return ro
}

// expiryFilter drops records that are expired or covered by a flush_all
// whenever a compaction rewrites them. RocksDB may call it from several
// compaction threads at once; it only reads atomics.
type expiryFilter struct {
	flush *flusher
}

func (f *expiryFilter) Name() string { return "mnemonic.expiry" }

func (f *expiryFilter) SetIgnoreSnapshots(bool) {}

func (f *expiryFilter) Destroy() {}

func (f *expiryFilter) Filter(_ int, _, val []byte) (bool, []byte) {
	h, _, ok := decodeRecord(val)
	if !ok {
		// Not a record of ours: keep it, a read treats it as a miss.
		return false, nil
	}
	now := time.Now()
	if h.expiry != 0 && int64(h.expiry) <= now.Unix() {
		return true, nil
	}
	return f.flush.load().covers(h.stamp, now.UnixNano()), nil
}
