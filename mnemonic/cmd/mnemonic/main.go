// Command mnemonic is moneta's SSD tier: a memcached-protocol server (text,
// meta and binary) that keeps every item in sharded RocksDB on local disk.
//
//	mnemonic [-config FILE] [-listen ADDR] [-data DIR] [-shards N] [-admin ADDR] ...
//
// SIGTERM or SIGINT: stop accepting, let in-flight requests finish, flush
// the memtables and close RocksDB. SIGHUP is logged and otherwise ignored
// (settings are read at start).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/mnemonic/store"
	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "mnemonic: log_level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	tuneRuntime(cfg)

	opts := store.Options{
		Dir: cfg.Data, Shards: cfg.Shards, MaxDiskBytes: cfg.MaxDiskBytes, SyncWrites: cfg.SyncWrites,
		BlockCacheBytes: cfg.BlockCacheBytes, RateLimitBytesPerSec: cfg.RateLimitBytesPerSec,
		MaxItemSize: cfg.MaxItemSize, CompactionStyle: cfg.CompactionStyle, BlobFiles: cfg.BlobFiles,
		MinBlobSize: cfg.MinBlobSize, Compression: cfg.Compression, WriteBufferBytes: cfg.WriteBufferBytes,
		BloomBitsPerKey: cfg.BloomBitsPerKey, BackgroundJobs: cfg.BackgroundJobs,
		WriteConcurrency: cfg.WriteConcurrency,
		Version:          version, Logger: log,
	}
	// A leveled or universal store has no budget; an operator who picked
	// one in the file should not have to zero the fifo default as well.
	if opts.CompactionStyle != "" && opts.CompactionStyle != store.CompactionFIFO && cfg.MaxDiskBytes == defaultConfig().MaxDiskBytes {
		opts.MaxDiskBytes = 0
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "mnemonic: invalid configuration: %v\n", err)
		return 2
	}
	if _, _, err := addr.Parse(cfg.Listen); err != nil {
		fmt.Fprintf(os.Stderr, "mnemonic: listen: %v\n", err)
		return 2
	}

	stats := new(server.Stats)
	opts.ConnStats = stats.AppendStats
	st, err := store.Open(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mnemonic: %v\n", err)
		return 1
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cmds := metrics.NewCommands(reg, "mnemonic", "l2")
	handler := observed(st, cmds)

	srv, err := server.New(server.Config{
		MaxConns:        cfg.MaxConns,
		IdleTimeout:     time.Duration(cfg.IdleTimeout),
		ShutdownTimeout: time.Duration(cfg.ShutdownTimeout),
		Limits:          protocol.Limits{MaxItemSize: opts.MaxItemSize},
		Logger:          log,
		Stats:           stats,
		Name:            "mnemonic",
	}, handler)
	if err != nil {
		st.Close()
		fmt.Fprintf(os.Stderr, "mnemonic: %v\n", err)
		return 2
	}
	if dir := socketDir(cfg.Listen); dir != "" {
		os.MkdirAll(dir, 0o750)
	}
	ln, err := addr.Listen(cfg.Listen, server.DefaultSocketMode)
	if err != nil {
		st.Close()
		fmt.Fprintf(os.Stderr, "mnemonic: %v\n", err)
		return 1
	}
	admin, err := metrics.StartAdmin(cfg.Admin, metrics.AdminMux(reg, health(st)), log)
	if err != nil {
		ln.Close()
		st.Close()
		fmt.Fprintf(os.Stderr, "mnemonic: admin listener %s: %v\n", cfg.Admin, err)
		return 1
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("mnemonic serving", "version", version, "listen", cfg.Listen, "admin", cfg.Admin, "data", cfg.Data)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	code := 0
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Info("SIGHUP ignored: settings are read at start; restart to apply a new configuration")
				continue
			}
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
			p = 400
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

// health answers /healthz: the store is up while it answers a stats probe.
func health(st *store.Store) metrics.Health {
	return func() (bool, map[string]string) {
		if st.ShardStats() == nil {
			return false, map[string]string{"store": "closed"}
		}
		return true, map[string]string{"store": "up"}
	}
}

// observed records every request's command, outcome and latency.
func observed(h protocol.Handler, cmds *metrics.Commands) protocol.Handler {
	return protocol.HandlerFunc(func(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
		start := time.Now()
		err := h.Handle(ctx, req, resp)
		o := metrics.OutcomeOf(resp.Status)
		if req.Command.IsRead() && resp.Status == protocol.StatusOK {
			cmds.Keys(req.Command, len(resp.Hits), len(req.Keys)-len(resp.Hits))
			o = metrics.OutcomeHit
			if len(resp.Hits) == 0 {
				o = metrics.OutcomeMiss
			}
		}
		cmds.Observe(req.Command, o, start)
		return err
	})
}
