package store

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Compaction styles. FIFO is the default: see the README for the numbers
// that chose it.
const (
	// CompactionFIFO keeps every flushed file as is and deletes the oldest
	// files once the shard's share of MaxDiskBytes is used: no compaction
	// IO at all, and eviction of the oldest data for free.
	CompactionFIFO = "fifo"
	// CompactionLeveled is RocksDB's default: bounded space, but overwrites
	// are rewritten several times by compactions. No disk budget.
	CompactionLeveled = "leveled"
	// CompactionUniversal merges sorted runs of similar size: less write
	// amplification than leveled, more space. No disk budget.
	CompactionUniversal = "universal"
)

// Defaults.
const (
	DefaultShards               = 4
	DefaultMaxDiskBytes         = 10 << 30
	DefaultBlockCacheBytes      = 256 << 20
	DefaultRateLimitBytesPerSec = 256 << 20
	// DefaultMaxItemSize is rend's default limit (orca.DefaultMaxItemSize):
	// with no flags on either, every value rend accepts is stored here.
	DefaultMaxItemSize      = 20 << 20
	DefaultWriteBufferBytes = 64 << 20
	DefaultBloomBitsPerKey  = 14
	DefaultBackgroundJobs   = 2
	DefaultMinBlobSize      = 512
	DefaultCompression      = "lz4"
	DefaultCompactionStyle  = CompactionFIFO
	// DefaultMinFreeDiskBytes is the free space below which writes are
	// refused: room for RocksDB's own files (new WAL files, MANIFEST,
	// OPTIONS, LOG) on top of the memtables it still has to flush, which
	// the store counts separately.
	DefaultMinFreeDiskBytes = 256 << 20
	// DefaultMaxOpenFiles bounds each shard's open table files, and is
	// what mnemonic reserves per shard ahead of client connections (see
	// cmd/mnemonic/fds.go). A FIFO shard keeps all its files open (RocksDB
	// requires it); with the default budget that is well under a hundred
	// files of ~64 MiB, and 1024 covers a 64 GiB share.
	DefaultMaxOpenFiles = 1024
	// DefaultStateFlushInterval and DefaultStateFlushPending: how long a
	// read's state (first fetch, last access) waits in memory before it is
	// written, at most, and how many records' worth wake the flusher
	// sooner (store/access.go).
	DefaultStateFlushInterval = 100 * time.Millisecond
	DefaultStateFlushPending  = 1024
	// DefaultWriteNice: off (-1), RocksDB writes run on their first
	// writer's thread at the process's priority. At +5 (bench/results/
	// l2path.md, sixth round) a 5k/s bulk overwrite's reader p99 halved on
	// two cores kept busy by other work, but on a quiet run the reader's
	// p99 did not move (5k/s: 12.6/7.5 ms at +5 vs 8.8/10.0 off) while a
	// loader offered 20k/s fell from 18.9k/17.7k to 13.0k/11.6k: the
	// issue forbids buying read latency by throttling the loader.
	DefaultWriteNice = -1
)

// minShardBudget is the smallest per-shard disk share accepted: below it the
// memtables and WAL alone would not fit.
const minShardBudget = 4 << 20

// Options configure a Store. Build them from defaults, the TOML file and
// flags, then call EnsureDefaults and Validate (Open does both).
type Options struct {
	// Dir is the data directory; shard i lives in Dir/shard-00i.
	Dir string
	// Shards is the number of RocksDB instances. It is fixed when Dir is
	// first created.
	Shards int
	// MaxDiskBytes is the disk budget for all shards together (SST files,
	// WAL). Past it the oldest files are deleted. Only CompactionFIFO
	// enforces it; 0 means no budget and is required for the other styles.
	MaxDiskBytes int64
	// SyncWrites fsyncs the WAL before acknowledging each write. Off, an
	// acknowledged write survives a crash of the process but not of the
	// machine.
	SyncWrites bool
	// BlockCacheBytes is the size of the LRU block cache shared by all
	// shards.
	BlockCacheBytes int64
	// RateLimitBytesPerSec bounds flush and compaction writes of all shards
	// together, so background IO cannot starve foreground reads.
	RateLimitBytesPerSec int64
	// MaxItemSize is the largest value stored, also after append/prepend.
	MaxItemSize int
	// CompactionStyle is CompactionFIFO, CompactionLeveled or
	// CompactionUniversal.
	CompactionStyle string
	// BlobFiles separates values of at least MinBlobSize bytes into blob
	// files (key-value separation); compactions then move only keys and
	// record headers. Not with FIFO.
	BlobFiles   bool
	MinBlobSize int
	// Compression is "none", "lz4", "snappy" or "zstd".
	Compression string
	// WriteBufferBytes is the size of one memtable of one shard. With a small
	// disk budget it is lowered to fit the shard's share.
	WriteBufferBytes int64
	// BloomBitsPerKey sizes the bloom filter of every table file (0 turns
	// filters off).
	BloomBitsPerKey float64
	// BackgroundJobs is the number of flush and compaction threads per shard
	// (RocksDB shares one thread pool, sized by the largest setting).
	BackgroundJobs int
	// MaxOpenFiles is RocksDB's max_open_files for each shard: table
	// files kept open (more are opened and closed through the table cache).
	// FIFO keeps every table file open whatever it says (RocksDB requires
	// it); it is then the number of descriptors reserved per shard.
	MaxOpenFiles int
	// MinFreeDiskBytes is the free space of the data directory's file
	// system that writes leave untouched; below it (plus the memtables
	// RocksDB has yet to flush) writes are refused until space is freed.
	// Negative means 0.
	MinFreeDiskBytes int64
	// WriteConcurrency bounds the write requests executing at once, so a
	// bulk writer on many connections cannot take every core from reads;
	// RocksDB commits concurrent writes as one group anyway. 0: unbounded.
	WriteConcurrency int
	// WriteNice, if positive, writes each shard's commit groups on a
	// thread of its own whose nice value is this much higher than the
	// process's, so RocksDB writes take a busy host's CPU only when reads
	// do not want it (writebatch.go, writeThread). 0 takes
	// DefaultWriteNice (off); negative: each group is written by its first
	// writer's thread, at the process's priority.
	WriteNice int
	// StateFlushInterval is how often the state reads change (an item's
	// first fetch for mg h, its last access for mg l) is written from
	// memory into the records, in one WriteBatch per shard; a kill -9
	// loses at most this interval of it (a clean Close writes it all).
	// Negative: each read writes its own record before replying.
	StateFlushInterval time.Duration
	// StateFlushPending wakes the flusher before its interval once that
	// many records' state waits.
	StateFlushPending int
	// Version is what the version command answers.
	Version string
	// Logger receives the store's logs; nil means slog.Default().
	Logger *slog.Logger
	// ObserveShard, if set, is called after every RocksDB Get, Put and
	// Delete with the shard's index, the call's duration and its error,
	// from the request's goroutine. It must be cheap and not block (an
	// atomic add into pre-resolved metrics): it runs inside the key's
	// stripe lock.
	ObserveShard func(shard int, op ShardOp, d time.Duration, err error)

	// table holds table settings that BenchmarkGetFullBudget compares with
	// the defaults (zero: RocksDB's default). Not configurable: none of
	// them helped enough to offer (bench/results/l2path.md).
	table tableTune
}

// tableTune are block-based table settings under measurement.
type tableTune struct {
	blockSize int // bytes of a data block (RocksDB's default: 4 KiB)
	// cacheIndexFilter keeps index and filter blocks in the block cache
	// (charged to it, L0's pinned there) instead of in each open table.
	cacheIndexFilter bool
	// mmapReads reads table files through mmap instead of pread.
	mmapReads bool
	// noMemtableBloom leaves out the memtables' whole-key bloom filter
	// (rocks.go), for BenchmarkGetBehindMemtables.
	noMemtableBloom bool
}

// ShardOp is the kind of RocksDB call ObserveShard reports.
type ShardOp uint8

const (
	ShardGet ShardOp = iota
	ShardPut
	ShardDelete
	NumShardOps
)

var shardOpNames = [NumShardOps]string{"get", "put", "delete"}

func (op ShardOp) String() string { return shardOpNames[op] }

// EnsureDefaults fills unset fields with defaults.
func (o *Options) EnsureDefaults() {
	if o.Shards == 0 {
		o.Shards = DefaultShards
	}
	o.CompactionStyle = strings.ToLower(o.CompactionStyle)
	if o.CompactionStyle == "" {
		o.CompactionStyle = DefaultCompactionStyle
	}
	if o.MaxDiskBytes == 0 && o.CompactionStyle == CompactionFIFO {
		o.MaxDiskBytes = DefaultMaxDiskBytes
	}
	if o.BlockCacheBytes == 0 {
		o.BlockCacheBytes = DefaultBlockCacheBytes
	}
	if o.RateLimitBytesPerSec == 0 {
		o.RateLimitBytesPerSec = DefaultRateLimitBytesPerSec
	}
	if o.MaxItemSize == 0 {
		o.MaxItemSize = DefaultMaxItemSize
	}
	if o.MinBlobSize == 0 {
		o.MinBlobSize = DefaultMinBlobSize
	}
	if o.Compression == "" {
		o.Compression = DefaultCompression
	}
	if o.WriteBufferBytes == 0 {
		o.WriteBufferBytes = DefaultWriteBufferBytes
	}
	if o.BloomBitsPerKey == 0 {
		o.BloomBitsPerKey = DefaultBloomBitsPerKey
	}
	if o.BackgroundJobs == 0 {
		o.BackgroundJobs = DefaultBackgroundJobs
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if o.MinFreeDiskBytes == 0 {
		o.MinFreeDiskBytes = DefaultMinFreeDiskBytes
	} else if o.MinFreeDiskBytes < 0 {
		o.MinFreeDiskBytes = 0
	}
	if o.StateFlushInterval == 0 {
		o.StateFlushInterval = DefaultStateFlushInterval
	}
	if o.WriteNice == 0 {
		o.WriteNice = DefaultWriteNice
	}
	if o.StateFlushPending <= 0 {
		o.StateFlushPending = DefaultStateFlushPending
	}
	if o.Version == "" {
		o.Version = "mnemonic"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports the first invalid setting, naming its TOML key.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Dir == "" {
		bad("data: empty data directory")
	}
	if o.Shards < 1 || o.Shards > 256 {
		bad("shards: %d is not in 1..256", o.Shards)
	}
	switch o.CompactionStyle {
	case CompactionFIFO:
		if o.MaxDiskBytes <= 0 {
			bad("max_disk_bytes: fifo compaction needs a positive disk budget")
		} else if o.MaxDiskBytes/int64(max(o.Shards, 1)) < minShardBudget {
			bad("max_disk_bytes: %d leaves less than %d bytes per shard", o.MaxDiskBytes, minShardBudget)
		}
		if o.BlobFiles {
			bad("blob_files: not supported with compaction_style = \"fifo\" (FIFO never compacts, so there is nothing to separate)")
		}
	case CompactionLeveled, CompactionUniversal:
		if o.MaxDiskBytes != 0 {
			bad("max_disk_bytes: only compaction_style = \"fifo\" enforces a disk budget; set it to 0 with %q", o.CompactionStyle)
		}
	default:
		bad("compaction_style: %q is not fifo, leveled or universal", o.CompactionStyle)
	}
	if o.BlockCacheBytes < 0 {
		bad("block_cache_bytes: negative")
	}
	if o.RateLimitBytesPerSec < 0 {
		bad("rate_limit_bytes_per_sec: negative")
	}
	if o.MaxItemSize < 1 || o.MaxItemSize > 128<<20 {
		bad("max_item_size: %d is not in 1..%d", o.MaxItemSize, 128<<20)
	}
	if _, ok := compressionTypes[o.Compression]; !ok {
		bad("compression: %q is not none, lz4, snappy or zstd", o.Compression)
	}
	if o.WriteBufferBytes < 1<<20 {
		bad("write_buffer_bytes: %d is below 1 MiB", o.WriteBufferBytes)
	}
	if o.BloomBitsPerKey < 0 {
		bad("bloom_bits_per_key: negative")
	}
	if o.BackgroundJobs < 1 || o.BackgroundJobs > 64 {
		bad("background_jobs: %d is not in 1..64", o.BackgroundJobs)
	}
	if o.MaxOpenFiles < 20 {
		bad("max_open_files: %d is below RocksDB's minimum of 20", o.MaxOpenFiles)
	}
	if o.WriteNice > 19 {
		bad("write_nice: %d is above 19", o.WriteNice)
	}
	if o.WriteConcurrency < 0 {
		bad("write_concurrency: negative")
	}
	if o.MinBlobSize < 0 {
		bad("min_blob_size: negative")
	}
	return errors.Join(errs...)
}
