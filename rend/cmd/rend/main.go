// Command rend is moneta's memcached proxy: clients speak memcached (text,
// meta, binary) to it; it keeps the hot set in a local memcached (L1, values
// chunked) and everything in mnemonic (L2, SSD). See rend/README.md.
//
//	rend [-config FILE] [-listen ADDR] [-batch-listen ADDR] [-l1 ADDR] [-l2 ADDR]
//	     [-admin ADDR] [-chunk-size BYTES] [-max-item-size BYTES] [more: -h]
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/rend/orca"
	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/config"
	"github.com/moneta-cache/moneta/shared/mcclient"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
	"github.com/prometheus/client_golang/prometheus"
)

// version is what -version prints and the "version" command answers; a
// variable (not a constant) so that `make build` can stamp it with
// -ldflags "-X main.version=...".
var version = "moneta-rend-0.1.0"

func main() {
	args := os.Args[1:]
	opts, showVersion, err := loadConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rend:", err)
		os.Exit(2)
	}
	if showVersion {
		fmt.Println(version)
		return
	}
	log, level := config.NewLogger(os.Stderr, opts.LogFormat, opts.LogLevel)
	setMaxProcs(opts.GoMaxProcs, log)

	sigs := config.NotifySignals()
	defer sigs.Close()
	reload := func() (Config, error) {
		o, _, err := loadConfig(args)
		return o, err
	}
	if err := run(sigs, opts, log, level, reload); err != nil {
		log.Error("rend: exiting", "err", err)
		os.Exit(1)
	}
}

// setMaxProcs applies the gomaxprocs option; 0 means autoMaxProcs of the
// CPUs the runtime found usable (its default GOMAXPROCS, which honours CPU
// affinity and cgroup limits). A GOMAXPROCS environment variable still
// wins over the automatic choice, as the Go runtime's users expect.
func setMaxProcs(n int, log *slog.Logger) {
	if n == 0 {
		if os.Getenv("GOMAXPROCS") != "" {
			return
		}
		n = autoMaxProcs(runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(n)
	log.Debug("rend: runtime parallelism", "gomaxprocs", n, "cpus", runtime.NumCPU())
}

// proc is one running rend: backends, orchestrators, listeners.
type daemon struct {
	opts   Config
	log    *slog.Logger
	l1, l2 *mcclient.Client
	// bl1, bl2 are the batch port's own connections to L1 and L2 (nil
	// without a batch port): a bulk load's pipelined sets then never sit
	// in front of a regular-port read on a backend connection, in rend's
	// queue or in the backend's per-connection order.
	bl1, bl2 *mcclient.Client
	stats    *orca.Stats
	conns    *server.Stats
	servers  []*server.Server
	orcas    []*orca.Orca // one per listener
	admin    *http.Server
	// ctx ends background work (the invalidation retry loop) at exit.
	ctx context.Context

	// reg holds every metric of the process; client counts the requests
	// clients sent (the l1 and l2 layers are counted by orca.Instrument).
	reg    *prometheus.Registry
	client *metrics.Commands
	// level is the logger's level, changed by SIGHUP.
	level *slog.LevelVar
	// effective is opts as changed by reloads (stats settings reads it
	// from connection goroutines while SIGHUP replaces it).
	effective atomic.Pointer[Config]
	started   time.Time
}

// run serves until a stop signal, then shuts down gracefully. Each SIGHUP
// rereads the configuration through load.
func run(sigs *config.Signals, opts Config, log *slog.Logger, level *slog.LevelVar, load func() (Config, error)) error {
	bg, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &daemon{opts: opts, log: log, stats: new(orca.Stats), conns: new(server.Stats), ctx: bg,
		level: level, started: time.Now()}
	p.effective.Store(&opts)
	defer p.closeBackends()
	errc := make(chan error, 3)
	if err := p.start(errc); err != nil {
		p.shutdown()
		return err
	}
	for {
		select {
		case <-sigs.Reload:
			p.reload(load)
		case sig := <-sigs.Stop:
			log.Info("rend: shutting down", "signal", sig.String())
			p.shutdown()
			return nil
		case err := <-errc:
			log.Error("rend: listener failed", "err", err)
			p.shutdown()
			return err
		}
	}
}

func (p *daemon) start(errc chan<- error) error {
	o := p.opts
	var err error
	bt := time.Duration(o.BackendTimeout)
	// rend's own L1 items are at most one chunk plus a header, but an item
	// someone else stored under a client key can be as large as memcached
	// allows (1 MiB by default): accepting that much lets rend read it as
	// "not a rend header" (a miss) instead of failing the whole batch.
	//
	// L1 gets go out as classic multi-key gets lines: memcached serves a
	// multi-get for less per key than one mg each, and rend needs no TTL
	// from L1 (the header carries the expiry).
	//
	// The breakers make a frozen backend fail fast (and Healthy false), so
	// that rend serves from the other layer instead of waiting bt per call.
	// L1 is a local memcached that answers in microseconds: no reply for
	// L1StallTimeout means frozen. L2 may legitimately be slow (compaction,
	// large values), so only its backend timeout counts.
	breakerFailures := o.BreakerFailures
	if breakerFailures == 0 {
		breakerFailures = -1 // off
	}
	writes, err := mcclient.ParseWriteMode(o.BackendWrites)
	if err != nil {
		return err
	}
	// writeConns is how many connections carry writes: the regular port
	// concentrates its lone sets (l1/l2_write_conns); the batch port's
	// runs are pipelined bursts already and use every connection, so a
	// bulk load is not served by one mnemonic connection goroutine.
	newL1 := func(port string, writeConns int) (*mcclient.Client, error) {
		return mcclient.New(mcclient.Config{Addr: o.L1, Conns: o.L1Conns, WriteConns: writeConns, RequestTimeout: bt, Writes: writes,
			MaxValueSize: max(2*o.ChunkSize+1024, 2<<20), ClassicGets: true, Logger: p.log.With("layer", "L1", "port", port),
			RuntimeSyscalls: o.SocketIO == "runtime",
			BreakerFailures: breakerFailures, BreakerStall: time.Duration(o.L1StallTimeout), BreakerOpen: time.Duration(o.BreakerOpen)})
	}
	newL2 := func(port string, writeConns int) (*mcclient.Client, error) {
		return mcclient.New(mcclient.Config{Addr: o.L2, Conns: o.L2Conns, WriteConns: writeConns,
			RequestTimeout: bt, Writes: writes, RuntimeSyscalls: o.SocketIO == "runtime",
			MaxValueSize: o.MaxItemSize + 1024, Logger: p.log.With("layer", "L2", "port", port),
			// mnemonic takes every binary key of up to 250 bytes in base64
			// (protocol.Limits.MaxBase64KeyLen); memcached (L1) does not,
			// which orca handles with hashed L1 names.
			MaxBase64KeyLen: base64.StdEncoding.EncodedLen(protocol.DefaultMaxKeyLen),
			BreakerFailures: breakerFailures, BreakerOpen: time.Duration(o.BreakerOpen)})
	}
	if p.l1, err = newL1("regular", o.L1WriteConns); err != nil {
		return err
	}
	if o.L2 != "" {
		if p.l2, err = newL2("regular", o.L2WriteConns); err != nil {
			return err
		}
		if o.BatchListen != "" {
			// The batch port's own connections (daemon.bl1): under a
			// bulk load through the batch port, regular-port reads
			// queued behind its runs of sets on shared connections.
			if p.bl1, err = newL1("batch", 0); err != nil {
				return err
			}
			if p.bl2, err = newL2("batch", 0); err != nil {
				return err
			}
		}
	}
	locks := orca.NewLocks(o.LockStripes)
	pending := new(orca.Pending)
	p.registerMetrics(pending)
	// Every backend call, the orchestrators' and the retry loop's, is
	// counted per layer.
	l1cmds := metrics.NewCommands(p.reg, metricsNS, "l1")
	l1 := orca.Instrument(p.l1, l1cmds)
	var l2, bl1, bl2 orca.Backend
	if p.bl1 != nil {
		bl1 = orca.Instrument(p.bl1, l1cmds)
	}
	if p.l2 != nil {
		l2cmds := metrics.NewCommands(p.reg, metricsNS, "l2")
		l2 = orca.Instrument(p.l2, l2cmds)
		if p.bl2 != nil {
			bl2 = orca.Instrument(p.bl2, l2cmds)
		}
		// Retry the L1 invalidations that failed (see orca.Pending).
		go pending.Run(p.ctx, l1, 100*time.Millisecond, p.log)
		// Release keys held after ambiguous L2 writes once L2 settles.
		go pending.RunL2(p.ctx, l2, 100*time.Millisecond, p.log)
	}
	newOrca := func(mode orca.Mode) (*orca.Orca, error) {
		cfg := orca.Config{Mode: mode, L1: l1, Locks: locks, Stats: p.stats, Pending: pending,
			ChunkSize: o.ChunkSize, MaxItemSize: o.MaxItemSize, Version: version,
			Started: p.started, Logger: p.log}
		if mode != orca.L1Only {
			cfg.L2, cfg.L2Peer = l2, true
		}
		if mode == orca.L1L2Batch {
			cfg.L1, cfg.L2 = bl1, bl2
		}
		return orca.New(cfg)
	}
	type listener struct {
		name, addr string
		mode       orca.Mode
	}
	ls := []listener{{"regular", o.Listen, orca.L1Only}}
	if p.l2 != nil {
		ls[0].mode = orca.L1L2
		if o.BatchListen != "" {
			ls = append(ls, listener{"batch", o.BatchListen, orca.L1L2Batch})
		}
	}
	for _, l := range ls {
		h, err := newOrca(l.mode)
		if err != nil {
			return err
		}
		p.orcas = append(p.orcas, h)
		srv, err := server.New(server.Config{
			MaxConns: o.MaxConns, IdleTimeout: time.Duration(o.IdleTimeout),
			MaxValueBytes:   o.MaxValueBytes,
			ShutdownTimeout: time.Duration(o.ShutdownTimeout),
			Limits:          protocol.Limits{MaxItemSize: o.MaxItemSize},
			Stats:           p.conns, Logger: p.log, Name: l.name,
			NetLoop: o.NetLoop, RuntimeSyscalls: o.SocketIO == "runtime",
			// A 100-key multi-get of 1 KiB values is a 105 KB reply: a
			// 16 KiB buffer wrote it in 7 syscalls, 64 KiB in 2 (rend CPU
			// per key -15..25%). Only busy connections hold the buffer.
			WriteBufferSize: 64 << 10,
		}, p.handler(h, l.mode))
		if err != nil {
			return err
		}
		ln, err := addr.Listen(l.addr, server.DefaultSocketMode)
		if err != nil {
			return err
		}
		p.servers = append(p.servers, srv)
		p.log.Info("rend: serving", "port", l.name, "addr", l.addr, "mode", l.mode.String())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, server.ErrServerClosed) {
				errc <- fmt.Errorf("%s port: %w", l.name, err)
			}
		}()
	}
	if o.Admin != "" {
		ln, err := addr.Listen(o.Admin, 0)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		p.admin = &http.Server{Handler: p.adminMux(), ReadHeaderTimeout: 5 * time.Second}
		p.log.Info("rend: admin", "addr", o.Admin)
		go func() {
			if err := p.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin: %w", err)
			}
		}()
	}
	return nil
}

// shutdown stops the listeners and lets requests in flight finish (each
// server bounds that by ShutdownTimeout).
func (p *daemon) shutdown() {
	done := make(chan struct{}, len(p.servers))
	for _, s := range p.servers {
		go func() {
			if err := s.Shutdown(context.Background()); err != nil {
				p.log.Warn("rend: shutdown cut requests short", "err", err)
			}
			done <- struct{}{}
		}()
	}
	for range p.servers {
		<-done
	}
	// L1 fills still running behind replies already sent finish before
	// the backends close (run's deferred closeBackends).
	for _, o := range p.orcas {
		o.WaitFills()
	}
	if p.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p.admin.Shutdown(ctx)
		cancel()
	}
}

func (p *daemon) closeBackends() {
	if p.l1 != nil {
		p.l1.Close()
	}
	for _, c := range []*mcclient.Client{p.l2, p.bl1, p.bl2} {
		if c != nil {
			c.Close()
		}
	}
}

// backendState is one backend in /healthz.
type backendState struct {
	Addr       string `json:"addr"`
	Up         bool   `json:"up"`
	ConnsUp    int    `json:"conns_up"`
	Conns      int    `json:"conns"`
	Reconnects uint64 `json:"reconnects"`
	// Breaker is the circuit breaker: closed, open or half_open.
	Breaker      string `json:"breaker"`
	BreakerOpens uint64 `json:"breaker_opens"`
}

func state(c *mcclient.Client) *backendState {
	if c == nil {
		return nil
	}
	s := c.Stats()
	return &backendState{Addr: s.Addr, Up: c.Healthy(), ConnsUp: s.ConnsUp, Conns: s.Conns, Reconnects: s.Reconnects,
		Breaker: s.Breaker, BreakerOpens: s.BreakerOpens}
}

// adminMux serves /healthz (200 when every backend is up, 503 otherwise,
// with each backend's state), /stats (the stats command's counters as
// JSON) and, from shared/metrics, /metrics, /metrics.json and /debug/pprof/.
func (p *daemon) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	// The more specific patterns below win over this one, so rend's
	// /healthz (per-backend detail) replaces the generic one.
	mux.Handle("/", metrics.AdminMux(p.reg, nil))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		body := struct {
			Status string        `json:"status"`
			L1     *backendState `json:"l1"`
			L2     *backendState `json:"l2,omitempty"`
		}{Status: "ok", L1: state(p.l1), L2: state(p.l2)}
		code := http.StatusOK
		if !body.L1.Up || (body.L2 != nil && !body.L2.Up) {
			body.Status, code = "degraded", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]string{}
		for _, s := range p.extraStats(p.conns.AppendStats(p.stats.AppendStats(nil))) {
			out[s.Name] = s.Value
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	return mux
}
