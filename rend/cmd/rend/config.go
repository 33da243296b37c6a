package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/rend/orca"
	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/config"
	"github.com/moneta-cache/moneta/shared/mcclient"
)

// Config is rend's configuration: defaults, then the TOML file (-config),
// then the flags the operator set. TOML keys are the flag names with
// underscores (DESIGN §10).
type Config struct {
	// Serve: listen (the regular port), admin, max_item_size.
	config.Serve
	BatchListen string `toml:"batch_listen"`
	L1          string `toml:"l1"`
	L2          string `toml:"l2"`
	ChunkSize   int    `toml:"chunk_size"`

	// Daemon: max_conns (over both ports), max_value_bytes, idle_timeout,
	// shutdown_timeout, log_level, log_format.
	config.Daemon
	L1Conns int `toml:"l1_conns"`
	L2Conns int `toml:"l2_conns"`
	// L1WriteConns and L2WriteConns are how many of each backend's
	// regular-port connections carry its writes (the first ones; reads
	// use all; the batch port's runs use all of its own): a
	// backend then finds concurrent writes together, several per socket
	// read, reply and (mnemonic) RocksDB commit, which cost fewer syscalls
	// and wake-ups per set than one per connection (bench/results/
	// l2path.md, "Fourth round"). 0: all of them.
	L1WriteConns int `toml:"l1_write_conns"`
	L2WriteConns int `toml:"l2_write_conns"`
	// BackendWrites is who writes a backend connection's requests:
	// "combine" (the calling goroutines, the first for all) or "handoff"
	// (a writer goroutine per connection); see mcclient.WriteMode.
	BackendWrites  string          `toml:"backend_writes"`
	BackendTimeout config.Duration `toml:"backend_timeout"`
	// BreakerFailures, BreakerOpen and L1StallTimeout configure the
	// backends' circuit breakers (mcclient breaker.go).
	BreakerFailures int             `toml:"breaker_failures"`
	BreakerOpen     config.Duration `toml:"breaker_open"`
	L1StallTimeout  config.Duration `toml:"l1_stall_timeout"`
	LockStripes     int             `toml:"lock_stripes"`
	// GoMaxProcs is the runtime parallelism (GOMAXPROCS); 0 picks
	// autoMaxProcs. Not reloadable.
	GoMaxProcs int `toml:"gomaxprocs"`
}

func defaultConfig() Config {
	return Config{
		Serve: config.Serve{Listen: "127.0.0.1:11211", Admin: "127.0.0.1:11299",
			MaxItemSize: orca.DefaultMaxItemSize},
		BatchListen:     "127.0.0.1:11212",
		L1:              "unix:./var/memcached.sock",
		ChunkSize:       chunk.DefaultChunkSize,
		Daemon:          config.DefaultDaemon(),
		L1Conns:         2,
		L2Conns:         4,
		L1WriteConns:    1,
		L2WriteConns:    1,
		BackendWrites:   "combine",
		BackendTimeout:  config.Duration(2 * time.Second),
		BreakerFailures: 3,
		BreakerOpen:     config.Duration(time.Second),
		L1StallTimeout:  config.Duration(500 * time.Millisecond),
		LockStripes:     orca.DefaultStripes,
	}
}

// Validate reports every option that cannot work, each naming its TOML
// key and flag (config.Bad), since either may have set it.
func (o *Config) Validate() error {
	var errs []error
	bad := func(key string, v any, want string) { errs = append(errs, config.Bad(key, v, want)) }
	for _, a := range []struct {
		key, v   string
		optional bool
	}{{"listen", o.Listen, false}, {"l1", o.L1, false}, {"batch_listen", o.BatchListen, true}, {"l2", o.L2, true}, {"admin", o.Admin, true}} {
		if a.v == "" && a.optional {
			continue
		}
		if _, _, err := addr.Parse(a.v); err != nil {
			bad(a.key, fmt.Sprintf("%q", a.v), err.Error())
		}
	}
	errs = append(errs,
		config.Need(o.ChunkSize >= 16 && o.ChunkSize <= 512<<10, "chunk_size", o.ChunkSize, fmt.Sprintf("want 16..%d", 512<<10)),
		config.Need(o.MaxItemSize >= 1 && o.MaxItemSize <= 1<<30, "max_item_size", o.MaxItemSize, fmt.Sprintf("want 1..%d", 1<<30)),
		config.Need(o.BackendTimeout > 0, "backend_timeout", o.BackendTimeout, "want more than 0"),
		config.Need(o.BreakerFailures >= 0, "breaker_failures", o.BreakerFailures, "want 0 (breakers off) or more"),
		config.Need(o.BreakerOpen > 0, "breaker_open", o.BreakerOpen, "want more than 0"),
		config.Need(o.L1StallTimeout > 0, "l1_stall_timeout", o.L1StallTimeout, "want more than 0"),
		config.Need(o.L1Conns >= 1, "l1_conns", o.L1Conns, "want at least 1"),
		config.Need(o.L2Conns >= 1, "l2_conns", o.L2Conns, "want at least 1"),
		config.Need(o.L1WriteConns >= 0 && o.L1WriteConns <= o.L1Conns, "l1_write_conns", o.L1WriteConns, "want 0..l1_conns"),
		config.Need(o.L2WriteConns >= 0 && o.L2WriteConns <= o.L2Conns, "l2_write_conns", o.L2WriteConns, "want 0..l2_conns"),
		config.Need(validWrites(o.BackendWrites), "backend_writes", fmt.Sprintf("%q", o.BackendWrites), "want combine or handoff"),
		config.Need(o.LockStripes >= 1, "lock_stripes", o.LockStripes, "want at least 1"),
		config.Need(o.GoMaxProcs >= 0, "gomaxprocs", o.GoMaxProcs, "want 0 (automatic) or more"),
	)
	errs = append(errs, o.Daemon.Check()...)
	return errors.Join(errs...)
}

func validWrites(s string) bool {
	_, err := mcclient.ParseWriteMode(s)
	return err == nil
}

// autoMaxProcs is the default parallelism for cpus usable CPUs: half of
// them, at least one. rend shares its host with the L1 memcached (and
// usually mnemonic), whose threads need the other half; a rend allowed
// every core wakes idle threads to run each request's goroutines, and on
// the 2-core development machine that made every request cost 16% more
// CPU (28.0 -> 23.6 µs at 50 conns, depth 1) for no throughput
// (bench/results/hotpath.md). Only the 2-core point is measured; on a
// large host the rule keeps half the cores for the backends.
func autoMaxProcs(cpus int) int {
	return max(1, cpus/2)
}

func bindFlags(fs *flag.FlagSet, o *Config) {
	o.Serve.BindFlags(fs, "regular port: host:port or unix:/path (text, meta and binary)",
		"admin HTTP address: /metrics, /metrics.json, /healthz, /stats, /debug/pprof/ (empty: off)")
	fs.StringVar(&o.BatchListen, "batch-listen", o.BatchListen, "batch port (only with -l2; empty: off)")
	fs.StringVar(&o.L1, "l1", o.L1, "L1 memcached address")
	fs.StringVar(&o.L2, "l2", o.L2, "L2 mnemonic address (empty: L1-only mode)")
	fs.IntVar(&o.ChunkSize, "chunk-size", o.ChunkSize, "data bytes per L1 chunk")
	o.Daemon.BindFlags(fs)
	fs.IntVar(&o.L1Conns, "l1-conns", o.L1Conns, "pipelined connections to L1")
	fs.IntVar(&o.L2Conns, "l2-conns", o.L2Conns, "pipelined connections to L2")
	fs.IntVar(&o.L1WriteConns, "l1-write-conns", o.L1WriteConns, "of the L1 connections, how many carry writes (0: all)")
	fs.IntVar(&o.L2WriteConns, "l2-write-conns", o.L2WriteConns, "of the L2 connections, how many carry writes (0: all)")
	fs.StringVar(&o.BackendWrites, "backend-writes", o.BackendWrites, "who writes backend requests: combine (the callers, the first for all) or handoff (a writer goroutine per connection)")
	fs.Var(&o.BackendTimeout, "backend-timeout", "how long one backend call may take")
	fs.IntVar(&o.BreakerFailures, "breaker-failures", o.BreakerFailures, "consecutive timed-out calls that open a backend's circuit breaker (0: breakers off)")
	fs.Var(&o.BreakerOpen, "breaker-open", "how long an open breaker fails calls fast before it probes the backend")
	fs.Var(&o.L1StallTimeout, "l1-stall-timeout", "an L1 connection answering nothing this long with calls outstanding opens L1's breaker")
	fs.IntVar(&o.LockStripes, "lock-stripes", o.LockStripes, "number of striped key locks")
	fs.IntVar(&o.GoMaxProcs, "gomaxprocs", o.GoMaxProcs, "threads running Go code at once (0: half the CPUs, at least 1)")
}

// loadConfig parses args: defaults, then -config FILE, then the flags set.
func loadConfig(args []string) (Config, bool, error) {
	opts, showVersion, err := config.Parse("rend", args, defaultConfig, bindFlags)
	if err != nil || showVersion {
		return Config{}, showVersion, err
	}
	return opts, false, opts.Validate()
}
