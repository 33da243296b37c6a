package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/moneta-cache/moneta/mnemonic/store"
	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/config"
	"github.com/moneta-cache/moneta/shared/server"
)

// Config is mnemonic's configuration: the TOML file's keys, and the flags
// of the same names with dashes. Zero values mean "the default".
type Config struct {
	// Serve: listen, admin, max_item_size.
	config.Serve
	Data   string `toml:"data"`
	Shards int    `toml:"shards"`

	MaxDiskBytes         int64   `toml:"max_disk_bytes"`
	SyncWrites           bool    `toml:"sync_writes"`
	BlockCacheBytes      int64   `toml:"block_cache_bytes"`
	RateLimitBytesPerSec int64   `toml:"rate_limit_bytes_per_sec"`
	CompactionStyle      string  `toml:"compaction_style"`
	BlobFiles            bool    `toml:"blob_files"`
	MinBlobSize          int     `toml:"min_blob_size"`
	Compression          string  `toml:"compression"`
	WriteBufferBytes     int64   `toml:"write_buffer_bytes"`
	BloomBitsPerKey      float64 `toml:"bloom_bits_per_key"`
	BackgroundJobs       int     `toml:"background_jobs"`
	WriteConcurrency     int     `toml:"write_concurrency"`
	WriteNice            int     `toml:"write_nice"`
	MinFreeDiskBytes     int64   `toml:"min_free_disk_bytes"`
	MaxOpenFiles         int     `toml:"max_open_files"`
	// StateFlushInterval: see store.Options (negative: synchronous).
	StateFlushInterval config.Duration `toml:"state_flush_interval"`

	MaxProcs  int `toml:"max_procs"`
	GCPercent int `toml:"gc_percent"`
	// Daemon: max_conns, max_value_bytes, idle_timeout, shutdown_timeout,
	// log_level, log_format.
	config.Daemon
}

// defaultConfig is what mnemonic runs with when there is no file and no
// flag (DESIGN §10).
func defaultConfig() Config {
	c := Config{
		Serve: config.Serve{Listen: "unix:./var/mnemonic.sock", Admin: "127.0.0.1:11298",
			MaxItemSize: store.DefaultMaxItemSize},
		Data:            "./var/mnemonic",
		Shards:          4,
		MaxDiskBytes:    store.DefaultMaxDiskBytes,
		CompactionStyle: store.DefaultCompactionStyle,
		Compression:     store.DefaultCompression,
		// The store's constant defaults are spelled out (rather than left
		// 0 for the store to fill) so that deploy/mnemonic.toml and
		// `stats settings` show real numbers.
		BlockCacheBytes:      store.DefaultBlockCacheBytes,
		RateLimitBytesPerSec: store.DefaultRateLimitBytesPerSec,
		MinBlobSize:          store.DefaultMinBlobSize,
		WriteBufferBytes:     store.DefaultWriteBufferBytes,
		BloomBitsPerKey:      store.DefaultBloomBitsPerKey,
		BackgroundJobs:       store.DefaultBackgroundJobs,
		WriteNice:            store.DefaultWriteNice,
		MinFreeDiskBytes:     store.DefaultMinFreeDiskBytes,
		MaxOpenFiles:         store.DefaultMaxOpenFiles,
		StateFlushInterval:   config.Duration(store.DefaultStateFlushInterval),
		GCPercent:            defaultGCPercent,
		Daemon:               config.DefaultDaemon(),
	}
	c.MaxConns = server.DefaultMaxConns
	return c
}

// defaultGCPercent: see tuneRuntime.
const defaultGCPercent = 400

// storeOptions builds the store's options from c, with defaults filled.
func (c Config) storeOptions(version string, log *slog.Logger) store.Options {
	o := store.Options{
		Dir: c.Data, Shards: c.Shards, MaxDiskBytes: c.MaxDiskBytes, SyncWrites: c.SyncWrites,
		BlockCacheBytes: c.BlockCacheBytes, RateLimitBytesPerSec: c.RateLimitBytesPerSec,
		MaxItemSize: c.MaxItemSize, CompactionStyle: c.CompactionStyle, BlobFiles: c.BlobFiles,
		MinBlobSize: c.MinBlobSize, Compression: c.Compression, WriteBufferBytes: c.WriteBufferBytes,
		BloomBitsPerKey: c.BloomBitsPerKey, BackgroundJobs: c.BackgroundJobs,
		WriteConcurrency: c.WriteConcurrency, MinFreeDiskBytes: c.MinFreeDiskBytes,
		WriteNice:    c.WriteNice,
		MaxOpenFiles: c.MaxOpenFiles, StateFlushInterval: time.Duration(c.StateFlushInterval),
		Version: version, Logger: log,
	}
	// A leveled or universal store has no budget; an operator who picked
	// one in the file should not have to zero the fifo default as well.
	if o.CompactionStyle != "" && o.CompactionStyle != store.CompactionFIFO && c.MaxDiskBytes == defaultConfig().MaxDiskBytes {
		o.MaxDiskBytes = 0
	}
	o.EnsureDefaults()
	return o
}

// effective returns c as the process runs it: the store's adjustments
// (max_disk_bytes 0 for leveled) and filled defaults written back, so
// `stats settings` shows what is in force.
func (c Config) effective(o store.Options) Config {
	c.MaxDiskBytes, c.CompactionStyle, c.Compression = o.MaxDiskBytes, o.CompactionStyle, o.Compression
	c.BlockCacheBytes, c.RateLimitBytesPerSec, c.MinBlobSize = o.BlockCacheBytes, o.RateLimitBytesPerSec, o.MinBlobSize
	c.WriteBufferBytes, c.BloomBitsPerKey, c.BackgroundJobs = o.WriteBufferBytes, o.BloomBitsPerKey, o.BackgroundJobs
	c.MaxItemSize, c.Shards, c.MinFreeDiskBytes = o.MaxItemSize, o.Shards, o.MinFreeDiskBytes
	c.MaxOpenFiles = o.MaxOpenFiles
	if c.MaxConns == 0 {
		c.MaxConns = server.DefaultMaxConns
	}
	if c.GCPercent == 0 {
		c.GCPercent = defaultGCPercent
	}
	return c
}

// Validate reports every setting that cannot work, each naming its TOML key
// and flag (config.Bad), since either may have set it.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, v any, want string) { errs = append(errs, config.Bad(key, v, want)) }
	if _, _, err := addr.Parse(c.Listen); err != nil {
		bad("listen", fmt.Sprintf("%q", c.Listen), err.Error())
	}
	if c.Admin != "" {
		if _, _, err := addr.Parse(c.Admin); err != nil {
			bad("admin", fmt.Sprintf("%q", c.Admin), err.Error())
		}
	}
	errs = append(errs,
		config.Need(c.MaxProcs >= 0, "max_procs", c.MaxProcs, "want 0 (automatic) or more"),
		config.Need(c.MinFreeDiskBytes >= 0, "min_free_disk_bytes", c.MinFreeDiskBytes, "want 0 (the default) or more"),
		config.Need(c.GCPercent >= 0, "gc_percent", c.GCPercent, "want 0 (the default) or more"),
	)
	errs = append(errs, c.Daemon.Check()...)
	// The store's own checks name their keys too.
	o := c.storeOptions("", slog.Default())
	if err := o.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// bindFlags defines one flag per config key on fs, writing into c, with c's
// current values as the defaults -h shows.
func bindFlags(fs *flag.FlagSet, c *Config) {
	c.Serve.BindFlags(fs, "address to serve memcached protocols on: unix:/path or host:port",
		"admin HTTP address for /healthz, /metrics, /debug/pprof (empty: off)")
	fs.StringVar(&c.Data, "data", c.Data, "data directory (one RocksDB per shard below it)")
	fs.IntVar(&c.Shards, "shards", c.Shards, "number of RocksDB shards (fixed when the data directory is created)")
	fs.Int64Var(&c.MaxDiskBytes, "max-disk-bytes", c.MaxDiskBytes, "disk budget; past it the oldest data is evicted (fifo only; 0 with leveled/universal)")
	fs.BoolVar(&c.SyncWrites, "sync-writes", c.SyncWrites, "fsync the WAL before acknowledging each write")
	fs.Int64Var(&c.BlockCacheBytes, "block-cache-bytes", c.BlockCacheBytes, "shared block cache size (0: 256 MiB)")
	fs.Int64Var(&c.RateLimitBytesPerSec, "rate-limit-bytes-per-sec", c.RateLimitBytesPerSec, "flush+compaction write rate limit for all shards")
	fs.StringVar(&c.CompactionStyle, "compaction-style", c.CompactionStyle, "fifo, leveled or universal")
	fs.BoolVar(&c.BlobFiles, "blob-files", c.BlobFiles, "key-value separation into blob files (leveled/universal only)")
	fs.IntVar(&c.MinBlobSize, "min-blob-size", c.MinBlobSize, "smallest value put in a blob file")
	fs.StringVar(&c.Compression, "compression", c.Compression, "none, lz4, snappy or zstd")
	fs.Int64Var(&c.WriteBufferBytes, "write-buffer-bytes", c.WriteBufferBytes, "memtable size per shard (lowered to fit a small fifo budget)")
	fs.Float64Var(&c.BloomBitsPerKey, "bloom-bits-per-key", c.BloomBitsPerKey, "bloom filter bits per key")
	fs.IntVar(&c.BackgroundJobs, "background-jobs", c.BackgroundJobs, "flush and compaction threads")
	fs.IntVar(&c.WriteConcurrency, "write-concurrency", c.WriteConcurrency, "write requests executing at once (0: unbounded)")
	fs.IntVar(&c.WriteNice, "write-nice", c.WriteNice, "nice value added to the threads that write RocksDB (negative: writes run on the request's thread at the process's priority)")
	fs.IntVar(&c.MaxOpenFiles, "max-open-files", c.MaxOpenFiles, "RocksDB table files kept open per shard; reserved ahead of client connections")
	fs.Var(&c.StateFlushInterval, "state-flush-interval", "how long a read's state (mg h first fetch, mg l last access) may wait in memory before it is written in a batch; a kill -9 loses at most this much of it (negative: each read writes its own before replying)")
	fs.Int64Var(&c.MinFreeDiskBytes, "min-free-disk-bytes", c.MinFreeDiskBytes, "free disk space writes leave untouched; below it writes are refused until space is freed")
	fs.IntVar(&c.MaxProcs, "max-procs", c.MaxProcs, "GOMAXPROCS (0: 4 per core, at least 8; see the README)")
	fs.IntVar(&c.GCPercent, "gc-percent", c.GCPercent, "Go GC target percentage")
	c.Daemon.BindFlags(fs)
}

// loadConfig builds the configuration from defaults, then the file named by
// -config, then the flags the operator set.
func loadConfig(args []string) (Config, bool, error) {
	cfg, showVersion, err := config.Parse("mnemonic", args, defaultConfig, bindFlags)
	if err != nil || showVersion {
		return Config{}, showVersion, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, false, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, false, nil
}
