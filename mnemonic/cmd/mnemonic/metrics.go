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
	p.reg.MustRegister(build, p.st.Collector(metricsNS), server.Collector(metricsNS, conns))
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
