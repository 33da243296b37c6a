// Command mnemonic is moneta's SSD tier: a memcached-protocol server (text,
// meta and binary) that keeps every item in sharded RocksDB on local disk.
//
//	mnemonic [-config FILE] [-listen ADDR] [-data DIR] [-shards N] [-admin ADDR] ...
//
// SIGTERM or SIGINT: stop accepting, let in-flight requests finish, flush
// the memtables and close RocksDB. SIGHUP rereads the configuration file
// and applies log_level, max_conns and idle_timeout; other changed keys are
// logged as needing a restart.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/moneta-cache/moneta/mnemonic/store"
	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/config"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
	"github.com/prometheus/client_golang/prometheus"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

// Exit codes: 2 for a bad command line or configuration, 1 for a failure to
// start or to shut down cleanly.
func run(args []string) int {
	cfg, showVersion, err := loadConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mnemonic: %v\n", err)
		return 2
	}
	if showVersion {
		fmt.Println("mnemonic", version)
		return 0
	}
	log, level := config.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	tuneRuntime(cfg)
	applyFDBudget(&cfg, log)

	opts := cfg.storeOptions(version, log)
	p := &daemon{log: log, level: level, reg: prometheus.NewRegistry()}
	eff := cfg.effective(opts)
	p.effective.Store(&eff)
	// The shard metrics exist before the store opens: it reports every
	// RocksDB call to them.
	p.shards = newShardMetrics(p.reg, opts.Shards)
	opts.ObserveShard = p.shards.observe
	stats := new(server.Stats)
	st, err := store.Open(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mnemonic: %v\n", err)
		return 1
	}
	p.st = st
	p.registerMetrics(stats)

	srv, err := server.New(server.Config{
		MaxConns:        cfg.MaxConns,
		MaxValueBytes:   cfg.MaxValueBytes,
		IdleTimeout:     time.Duration(cfg.IdleTimeout),
		NetLoop:         cfg.NetLoop,
		RuntimeSyscalls: cfg.SocketIO == "runtime",
		ShutdownTimeout: time.Duration(cfg.ShutdownTimeout),
		// Base64 keys up to the encoded length of a 250-byte key: rend
		// passes binary-protocol keys with spaces or control bytes on in
		// base64 (memcached itself allows only 250 encoded bytes).
		Limits: protocol.Limits{MaxItemSize: opts.MaxItemSize,
			MaxBase64KeyLen: base64.StdEncoding.EncodedLen(protocol.DefaultMaxKeyLen),
			PeerFlags:       true}, // rend's mg G (protocol.Mods.ClassicRead)
		// A run of pipelined sets is read ahead only as far as the read
		// buffer holds whole requests (server.RunBatcher), and a run is
		// one RocksDB commit per shard: 64 KiB takes rend's pipelines of
		// 1 KiB sets in runs of up to ~60 instead of ~15. Only busy
		// connections hold one.
		ReadBufferSize: 64 << 10,
		Logger:         log,
		Stats:          stats,
		Name:           "mnemonic",
	}, p.handler())
	if err != nil {
		st.Close()
		fmt.Fprintf(os.Stderr, "mnemonic: %v\n", err)
		return 2
	}
	p.srv = srv
	if dir := socketDir(cfg.Listen); dir != "" {
		os.MkdirAll(dir, 0o750)
	}
	ln, err := addr.Listen(cfg.Listen, server.DefaultSocketMode)
	if err != nil {
		st.Close()
		fmt.Fprintf(os.Stderr, "mnemonic: %v\n", err)
		return 1
	}
	admin, err := metrics.StartAdmin(cfg.Admin, metrics.AdminMux(p.reg, health(st)), log)
	if err != nil {
		ln.Close()
		st.Close()
		fmt.Fprintf(os.Stderr, "mnemonic: admin listener %s: %v\n", cfg.Admin, err)
		return 1
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// Signals are caught before "serving" is logged: whoever waits for
	// that line (a test, an operator's script) may signal at once, and an
	// uncaught SIGHUP would end the process.
	sigs := config.NotifySignals()
	defer sigs.Close()
	log.Info("mnemonic serving", "version", version, "listen", cfg.Listen, "admin", cfg.Admin, "data", cfg.Data)
	code := 0
wait:
	for {
		select {
		case <-sigs.Reload:
			// systemd's ExecReload: reread the file with the
			// original flags on top, as at start.
			p.reload(func() (Config, error) {
				c, _, err := loadConfig(args)
				return c, err
			})
		case sig := <-sigs.Stop:
			log.Info("shutting down", "signal", sig.String())
			break wait
		case err := <-serveErr:
			log.Error("listener failed", "err", err)
			code = 1
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout)+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("in-flight requests cut off", "err", err)
	}
	if admin != nil {
		admin.Close(ctx)
	}
	// Only after the server has drained: Close waits for requests that
	// are still inside the store, then flushes the memtables.
	if err := st.Close(); err != nil {
		log.Error("closing the store", "err", err)
		return 1
	}
	log.Info("mnemonic stopped")
	return code
}

// tuneRuntime sets GOMAXPROCS and the GC target unless the environment
// already does.
//
// Every RocksDB call is a cgo call that keeps its P until it returns or
// sysmon hands the P off, which takes up to milliseconds once sysmon has
// backed off. With GOMAXPROCS equal to the core count, two writers inside
// WAL writes can leave no P for a read whose bytes have arrived; spare Ps
// let the kernel schedule it at once. (On the shared 2-core test machine
// the difference stayed within run-to-run noise; see
// bench/results/mnemonic-overwrite.md.) The Go heap is tiny (values live in
// RocksDB's memory), so the default GC target means several collections a
// second under writes; 400% costs a few megabytes and cuts them to a
// fraction.
func tuneRuntime(cfg Config) {
	if os.Getenv("GOMAXPROCS") == "" {
		n := cfg.MaxProcs
		if n <= 0 {
			n = max(8, 4*runtime.NumCPU())
		}
		runtime.GOMAXPROCS(n)
	}
	if os.Getenv("GOGC") == "" {
		p := cfg.GCPercent
		if p <= 0 {
			p = defaultGCPercent
		}
		debug.SetGCPercent(p)
	}
}

// socketDir is the directory of a Unix socket address, created at start so
// the default ./var/mnemonic.sock works in a fresh checkout.
func socketDir(a string) string {
	network, address, err := addr.Parse(a)
	if err != nil || network != "unix" {
		return ""
	}
	if i := strings.LastIndexByte(address, '/'); i > 0 {
		return address[:i]
	}
	return ""
}

// health answers /healthz: 200 while the store is open and takes writes;
// 503 with the reason while it is closed, the disk is full, or a shard is
// read-only or stopped (reads may still be served then).
func health(st *store.Store) metrics.Health {
	return func() (bool, map[string]string) {
		if st.ShardStats() == nil {
			return false, map[string]string{"store": "closed"}
		}
		faults := st.Faults()
		if len(faults) == 0 {
			return true, map[string]string{"store": "up"}
		}
		parts := map[string]string{"store": "degraded: reads served, writes refused"}
		for _, f := range faults {
			if f.Shard < 0 {
				parts["disk"] = f.Reason
			} else {
				parts[fmt.Sprintf("shard_%d", f.Shard)] = f.Reason
			}
		}
		return false, parts
	}
}
