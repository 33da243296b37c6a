package main

import (
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/mnemonic/store"
	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/config"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metricsNS prefixes every mnemonic metric name.
const metricsNS = "mnemonic"

// shardMetrics count each shard's RocksDB calls. Every child is resolved
// when they are created, so observing a call is an index and atomic adds.
type shardMetrics struct {
	ops     [][store.NumShardOps]prometheus.Counter
	errs    [][store.NumShardOps]prometheus.Counter
	latency [][store.NumShardOps]prometheus.Observer
}

func newShardMetrics(reg prometheus.Registerer, shards int) *shardMetrics {
	ops := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNS, Name: "shard_ops_total",
		Help: "RocksDB calls by shard and operation (get, put, delete)."}, []string{"shard", "op"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNS, Name: "shard_errors_total",
		Help: "RocksDB calls that failed, by shard and operation."}, []string{"shard", "op"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metricsNS, Name: "shard_op_seconds",
		Help: "RocksDB call latency by shard and operation.", Buckets: metrics.LatencyBuckets}, []string{"shard", "op"})
	reg.MustRegister(ops, errs, lat)
	m := &shardMetrics{
		ops:     make([][store.NumShardOps]prometheus.Counter, shards),
		errs:    make([][store.NumShardOps]prometheus.Counter, shards),
		latency: make([][store.NumShardOps]prometheus.Observer, shards),
	}
	for i := 0; i < shards; i++ {
		sh := strconv.Itoa(i)
		for op := store.ShardOp(0); op < store.NumShardOps; op++ {
			m.ops[i][op] = ops.WithLabelValues(sh, op.String())
			m.errs[i][op] = errs.WithLabelValues(sh, op.String())
			m.latency[i][op] = lat.WithLabelValues(sh, op.String())
		}
	}
	return m
}

// observe fits store.Options.ObserveShard.
func (m *shardMetrics) observe(shard int, op store.ShardOp, d time.Duration, err error) {
	m.ops[shard][op].Inc()
	m.latency[shard][op].Observe(d.Seconds())
	if err != nil {
		m.errs[shard][op].Inc()
	}
}

// rocksCollector exports each shard's RocksDB figures, read from the
// properties at scrape time (one ShardStats call per scrape), so they cost
// the request path nothing.
type rocksCollector struct {
	st    *store.Store
	descs []rocksFigure
	cache *prometheus.Desc
}

type rocksFigure struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	get  func(*store.ShardStats) float64
}

func newRocksCollector(st *store.Store) *rocksCollector {
	c := &rocksCollector{st: st, cache: prometheus.NewDesc(metricsNS+"_block_cache_bytes",
		"Memory used by the block cache all shards share.", nil, nil)}
	fig := func(name, help string, typ prometheus.ValueType, get func(*store.ShardStats) float64) {
		c.descs = append(c.descs, rocksFigure{prometheus.NewDesc(metricsNS+"_rocksdb_"+name, help, []string{"shard"}, nil), typ, get})
	}
	g, k := prometheus.GaugeValue, prometheus.CounterValue
	fig("estimated_keys", "Estimated keys (overwritten and expired records not yet compacted included).", g, func(s *store.ShardStats) float64 { return float64(s.Keys) })
	fig("disk_bytes", "Bytes of every file in the shard's directory (what the disk budget counts).", g, func(s *store.ShardStats) float64 { return float64(s.DiskBytes) })
	fig("live_data_bytes", "Bytes of table and blob files.", g, func(s *store.ShardStats) float64 { return float64(s.LiveDataBytes) })
	fig("memtable_bytes", "Bytes of the active and immutable memtables.", g, func(s *store.ShardStats) float64 { return float64(s.MemtableBytes) })
	fig("pending_compaction_bytes", "Estimated bytes compaction has to rewrite.", g, func(s *store.ShardStats) float64 { return float64(s.PendingCompactionBytes) })
	fig("l0_files", "Table files in level 0 (many of them slow reads and then stall writes).", g, func(s *store.ShardStats) float64 { return float64(s.L0Files) })
	fig("write_stopped", "1 while RocksDB stops writes to the shard.", g, func(s *store.ShardStats) float64 {
		if s.WriteStopped {
			return 1
		}
		return 0
	})
	fig("delayed_write_rate_bytes", "Rate writes are slowed to, in bytes/s; 0 when they are not delayed.", g, func(s *store.ShardStats) float64 { return float64(s.DelayedWriteRate) })
	fig("stall_seconds_total", "Time writes were stalled (stopped or delayed) since start.", k, func(s *store.ShardStats) float64 { return s.StallSeconds })
	fig("running_compactions", "Compactions running now.", g, func(s *store.ShardStats) float64 { return float64(s.RunningCompactions) })
	fig("running_flushes", "Memtable flushes running now.", g, func(s *store.ShardStats) float64 { return float64(s.RunningFlushes) })
	fig("background_errors_total", "Flushes and compactions that failed since the shard was opened.", k, func(s *store.ShardStats) float64 { return float64(s.BackgroundErrors) })
	fig("shard_down", "1 while the shard takes no writes (read-only on a full disk, or stopped by an error until reopened).", g, func(s *store.ShardStats) float64 { return b2f(s.Down) })
	return c
}

// Describe implements prometheus.Collector.
func (c *rocksCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.descs {
		ch <- f.desc
	}
	ch <- c.cache
}

// Collect implements prometheus.Collector. A closed store (shutting down)
// exports nothing rather than stale figures.
func (c *rocksCollector) Collect(ch chan<- prometheus.Metric) {
	shards := c.st.ShardStats()
	if shards == nil {
		return
	}
	for i := range shards {
		label := strconv.Itoa(i)
		for _, f := range c.descs {
			ch <- prometheus.MustNewConstMetric(f.desc, f.typ, f.get(&shards[i]), label)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.cache, prometheus.GaugeValue, float64(c.st.BlockCacheBytes()))
}

// storeCollector exports the store's counters that the per-command metrics
// cannot tell apart (a miss on an expired or flushed record).
func storeCollector(st *store.Store) prometheus.Collector {
	s := metrics.NewSnapshot(st.Counters)
	n := func(name string) string { return metricsNS + "_" + name }
	s.Counter(n("get_expired_total"), "Reads that found an expired record (answered as misses).", nil, func(c store.Counters) float64 { return float64(c.GetExpired) })
	s.Counter(n("get_flushed_total"), "Reads that found a record flush_all invalidated (answered as misses).", nil, func(c store.Counters) float64 { return float64(c.GetFlushed) })
	s.Counter(n("items_written_total"), "Records written (memcached's total_items).", nil, func(c store.Counters) float64 { return float64(c.ItemsWritten) })
	s.Counter(n("disk_full_refused_total"), "Writes refused because the disk was full (SERVER_ERROR out of disk space).", nil, func(c store.Counters) float64 { return float64(c.DiskFullRefused) })
	s.Counter(n("shard_faults_total"), "Times a shard stopped taking writes (a failed write or a RocksDB background error).", nil, func(c store.Counters) float64 { return float64(c.ShardFaults) })
	s.Counter(n("shard_reopens_total"), "Times a read-only or stopped shard was reopened read-write.", nil, func(c store.Counters) float64 { return float64(c.ShardReopens) })
	s.Counter(n("wal_dropped_records_total"), "WAL records a shard's recovery did not replay (kPointInTimeRecovery stops at the first unreadable one); they may hold acknowledged writes.", nil, func(c store.Counters) float64 { return float64(c.WALDroppedRecords) })
	s.Counter(n("wal_dropped_writes_total"), "Keys written or deleted in the readable WAL records recovery dropped.", nil, func(c store.Counters) float64 { return float64(c.WALDroppedWrites) })
	s.Counter(n("wal_torn_tails_total"), "Recoveries that dropped a partly written final WAL record (cut by a crash, never acknowledged).", nil, func(c store.Counters) float64 { return float64(c.WALTornTails) })
	s.Gauge(n("disk_free_bytes"), "Free space of the data directory's file system at the last check (every 100ms).", nil, func(c store.Counters) float64 { return float64(c.DiskFreeBytes) })
	s.Gauge(n("disk_full"), "1 while writes are refused because the disk is full.", nil, func(c store.Counters) float64 { return b2f(c.DiskFull) })
	return s
}

// daemon is the running mnemonic's state that the handler, the admin
// listener and SIGHUP share.
type daemon struct {
	// srv is set once the server exists, before SIGHUP is handled.
	srv    *server.Server
	log    *slog.Logger
	level  *slog.LevelVar
	st     *store.Store
	reg    *prometheus.Registry
	cmds   *metrics.Commands
	shards *shardMetrics
	// effective is the configuration in force, replaced by reloads and
	// read by `stats settings` from connection goroutines.
	effective atomic.Pointer[Config]
}

// registerMetrics fills p.reg; p.shards must exist (store.Open needed its
// observer) and is registered already.
func (p *daemon) registerMetrics(conns *server.Stats) {
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metricsNS, Name: "build_info",
		Help: "Always 1; the version label says which mnemonic runs.", ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	p.reg.MustRegister(build, newRocksCollector(p.st), server.Collector(metricsNS, conns), storeCollector(p.st))
	p.cmds = metrics.NewCommands(p.reg, metricsNS, "l2")
}

// extraStats appends what the store does not know: the thread count and
// each shard's RocksDB call counts (the numbers /metrics shows).
func (p *daemon) extraStats(dst []protocol.Stat) []protocol.Stat {
	add := func(name string, v uint64) {
		dst = append(dst, protocol.Stat{Name: name, Value: strconv.FormatUint(v, 10)})
	}
	add("threads", uint64(runtime.GOMAXPROCS(0)))
	for i := range p.shards.ops {
		for op := store.ShardOp(0); op < store.NumShardOps; op++ {
			add(fmt.Sprintf("shard_%d_%s_ops", i, op), metrics.Count(p.shards.ops[i][op]))
		}
	}
	return dst
}

// settings appends "stats settings": the effective configuration, one line
// per key under its TOML name (memcached's name where memcached has the
// setting: maxconns, item_size_max, idle_timeout in seconds), with an unset
// address as NULL, as memcached shows an unset domain_socket.
func (p *daemon) settings(dst []protocol.Stat) []protocol.Stat {
	c := *p.effective.Load()
	add := func(k, v string) { dst = append(dst, protocol.Stat{Name: k, Value: v}) }
	config.Settings(c, add)
	add("num_threads", strconv.Itoa(runtime.GOMAXPROCS(0)))
	add("cas_enabled", "yes")
	// memcached's settings that clients read, with mnemonic's real
	// values: the capacity is the disk budget, past which the oldest data
	// goes (0: unbounded, nothing is evicted).
	add("maxbytes", strconv.FormatInt(c.MaxDiskBytes, 10))
	evictions := "off"
	if c.MaxDiskBytes > 0 {
		evictions = "on"
	}
	add("evictions", evictions)
	add("flush_enabled", "yes")
	domain := "NULL"
	if network, path, err := addr.Parse(c.Listen); err == nil && network == "unix" {
		domain = path
	}
	add("domain_socket", domain)
	detail := "no"
	if p.st.Detail() {
		detail = "yes"
	}
	add("detail_enabled", detail)
	return dst
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
