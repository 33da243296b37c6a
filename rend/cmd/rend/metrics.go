package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/rend/orca"
	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/config"
	"github.com/moneta-cache/moneta/shared/mcclient"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metricsNS prefixes every rend metric name.
const metricsNS = "rend"

// registerMetrics creates the registry and everything in it except the
// per-layer backend metrics (start wraps the backends with those). The
// counters kept elsewhere (orca.Stats, server.Stats, the backend pools) are
// read at scrape time, so exporting them costs the request path nothing.
func (p *daemon) registerMetrics(pending *orca.Pending) {
	p.reg = prometheus.NewRegistry()
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metricsNS, Name: "build_info",
		Help: "Always 1; the version label says which rend runs.", ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	p.reg.MustRegister(build)
	p.client = metrics.NewCommands(p.reg, metricsNS, "client")
	p.reg.MustRegister(orca.Collector(metricsNS, p.stats, pending), server.Collector(metricsNS, p.conns), poolCollector("l1", p.l1))
	if p.l2 != nil {
		p.reg.MustRegister(poolCollector("l2", p.l2))
	}
	if p.bl1 != nil {
		p.reg.MustRegister(poolCollector("l1_batch", p.bl1), poolCollector("l2_batch", p.bl2))
	}
}

// poolCollector exports one backend's connection pool (mcclient.PoolFields),
// from one Stats() snapshot per scrape.
func poolCollector(layer string, c *mcclient.Client) prometheus.Collector {
	return metrics.NewCollector(metricsNS, mcclient.PoolFields, prometheus.Labels{"layer": layer}, c.Stats)
}

// extraStats appends the general stats fields that come from the client
// layer's metrics and the backend pools (the same numbers /metrics shows),
// named as memcached names them where it has them.
func (p *daemon) extraStats(dst []protocol.Stat) []protocol.Stat {
	add := func(name string, v uint64) {
		dst = append(dst, protocol.Stat{Name: name, Value: strconv.FormatUint(v, 10)})
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		tv := func(t syscall.Timeval) string { return fmt.Sprintf("%d.%06d", t.Sec, t.Usec) }
		dst = append(dst, protocol.Stat{Name: "rusage_user", Value: tv(ru.Utime)}, protocol.Stat{Name: "rusage_system", Value: tv(ru.Stime)})
	}
	add("threads", uint64(runtime.GOMAXPROCS(0)))
	c := p.client
	for _, f := range []struct {
		cmd        protocol.Command
		name       string
		hit, miss  metrics.Outcome
		badvalName string
	}{
		{protocol.CmdDelete, "delete", metrics.OutcomeOK, metrics.OutcomeNotFound, ""},
		{protocol.CmdIncr, "incr", metrics.OutcomeOK, metrics.OutcomeNotFound, ""},
		{protocol.CmdDecr, "decr", metrics.OutcomeOK, metrics.OutcomeNotFound, ""},
		{protocol.CmdCas, "cas", metrics.OutcomeOK, metrics.OutcomeNotFound, "cas_badval"},
		{protocol.CmdTouch, "touch", metrics.OutcomeOK, metrics.OutcomeNotFound, ""},
	} {
		add(f.name+"_hits", c.Requests(f.cmd, f.hit))
		add(f.name+"_misses", c.Requests(f.cmd, f.miss))
		if f.badvalName != "" {
			add(f.badvalName, c.Requests(f.cmd, metrics.OutcomeExists))
		}
	}
	var backendErrors uint64
	for cmd := protocol.Command(1); int(cmd) < protocol.NumCommands; cmd++ {
		backendErrors += c.Requests(cmd, metrics.OutcomeBackendError)
	}
	add("backend_error_replies", backendErrors)
	pool := func(layer string, cl *mcclient.Client) {
		if cl == nil {
			return
		}
		dst = mcclient.PoolFields.AppendStats(dst, layer+"_", cl.Stats())
	}
	pool("l1", p.l1)
	pool("l2", p.l2)
	pool("l1_batch", p.bl1)
	pool("l2_batch", p.bl2)
	return dst
}

// settings appends "stats settings": the effective configuration, one line
// per option under its TOML key (memcached's name where memcached has the
// setting: maxconns, item_size_max, idle_timeout in seconds), with unset
// addresses as NULL (memcached's word for an unset domain_socket).
func (p *daemon) settings(dst []protocol.Stat, mode orca.Mode) []protocol.Stat {
	o := *p.effective.Load()
	if o.MaxConns == 0 {
		o.MaxConns = server.DefaultMaxConns
	}
	if o.L2 == "" {
		o.BatchListen = "" // no batch port without L2
	}
	add := func(k, v string) { dst = append(dst, protocol.Stat{Name: k, Value: v}) }
	add("mode", mode.String())
	config.Settings(o, add)
	add("num_threads", strconv.Itoa(runtime.GOMAXPROCS(0)))
	add("cas_enabled", "yes")
	// memcached's settings that clients read, with rend's real values:
	// the memory limit and eviction policy of the cache rend keeps in RAM
	// are L1's; flush_all is always served; the regular port's socket.
	maxbytes, evictions := "0", "on"
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, resp := &protocol.Request{Command: protocol.CmdStats, Args: []byte("settings")}, new(protocol.Response)
	if p.l1.Handle(ctx, req, resp) == nil && resp.Status == protocol.StatusOK {
		for _, s := range resp.Stats {
			switch s.Name {
			case "maxbytes":
				maxbytes = s.Value
			case "evictions":
				evictions = s.Value
			}
		}
	}
	add("maxbytes", maxbytes)
	add("evictions", evictions)
	add("flush_enabled", "yes")
	add("domain_socket", unixPath(o.Listen))
	add("detail_enabled", yesNo(p.stats.Detail.Load()))
	return dst
}

// unixPath is the socket path of a unix address, else NULL (memcached's
// domain_socket setting).
func unixPath(a string) string {
	if network, path, err := addr.Parse(a); err == nil && network == "unix" {
		return path
	}
	return "NULL"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
