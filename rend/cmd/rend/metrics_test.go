package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/rend/orca"
	"github.com/moneta-cache/moneta/shared/binproto"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// scrape reads /metrics (mctest.Scrape).
func scrape(t *testing.T, admin string) map[string]float64 { return mctest.Scrape(t, admin) }

// stats runs "stats [group]" on the text protocol.
func (c *conn) stats(group string) map[string]string { c.TB.Helper(); return c.Stats(group) }

// TestMetricsAndStatsMove drives known traffic through a full stack (real
// memcached, mnemonic and rend) and checks that /metrics and the stats
// command (text and binary) count it per layer: hits, misses, fills,
// batch-port replaces, deletes and latency observations.
func TestMetricsAndStatsMove(t *testing.T) {
	s := newStack(t, true)
	c, batch := dial(t, s.rend.regular), dial(t, s.rend.batch)
	m0, st0 := scrape(t, s.rend.admin), c.stats("")

	for _, k := range []string{"k1", "k2", "k3", "k4", "k5"} {
		c.set(k, []byte("v-"+k), 0, 0)
	}
	if _, _, _, ok := c.get("k1"); !ok { // L1 hit
		t.Fatal("k1 missing")
	}
	if _, _, _, ok := c.get("nothere"); ok { // L1 and L2 miss
		t.Fatal("nothere found")
	}
	batch.set("cold", []byte("c"), 0, 0) // L2 only: replace in L1 skipped
	batch.set("k1", []byte("w"), 0, 0)   // hot: replaced in L1
	for i := 0; i < 2; i++ {             // L2 hit and fill, then an L1 hit
		if v, _, _, ok := c.get("cold"); !ok || string(v) != "c" {
			t.Fatalf("cold: %q %v", v, ok)
		}
		if i == 0 {
			inL1(t, s.l1, "cold") // the fill runs behind the reply
		}
	}
	c.expect("delete k2\r\n", "DELETED")
	c.expect("delete nothere\r\n", "NOT_FOUND")

	m1, st1 := scrape(t, s.rend.admin), c.stats("")
	delta := func(key string) float64 { return m1[key] - m0[key] }
	for key, want := range map[string]float64{
		// client layer: what clients asked and got
		`rend_requests_total{command="set",layer="client",outcome="ok"}`:           7,
		`rend_requests_total{command="gets",layer="client",outcome="hit"}`:         3,
		`rend_requests_total{command="gets",layer="client",outcome="miss"}`:        1,
		`rend_keys_total{command="gets",layer="client",result="hit"}`:              3,
		`rend_keys_total{command="gets",layer="client",result="miss"}`:             1,
		`rend_request_seconds_count{command="gets",layer="client"}`:                4,
		`rend_requests_total{command="delete",layer="client",outcome="ok"}`:        1,
		`rend_requests_total{command="delete",layer="client",outcome="not_found"}`: 1,
		// per layer, as the orchestrator saw client keys
		`rend_layer_lookups_total{layer="l1",result="hit"}`:  2,
		`rend_layer_lookups_total{layer="l1",result="miss"}`: 2,
		`rend_layer_lookups_total{layer="l2",result="hit"}`:  1,
		`rend_layer_lookups_total{layer="l2",result="miss"}`: 1,
		`rend_l1_fills_total{result="stored"}`:               1,
		`rend_batch_replaces_total{result="replaced"}`:       1,
		`rend_batch_replaces_total{result="skipped"}`:        1,
		// per layer, as the backends saw requests (all values inline: one
		// L1 request per client key). Every write takes L1's copy out
		// first (a delete), then puts the result back with set: always on
		// the regular port, only the hot k1 on the batch port.
		`rend_request_seconds_count{command="get",layer="l1"}`:                 4,
		`rend_request_seconds_count{command="add",layer="l1"}`:                 1,
		`rend_request_seconds_count{command="set",layer="l1"}`:                 6,
		`rend_request_seconds_count{command="replace",layer="l1"}`:             0,
		`rend_request_seconds_count{command="get",layer="l2"}`:                 2,
		`rend_request_seconds_count{command="set",layer="l2"}`:                 7,
		`rend_requests_total{command="get",layer="l2",outcome="hit"}`:          1,
		`rend_requests_total{command="get",layer="l2",outcome="miss"}`:         1,
		`rend_requests_total{command="delete",layer="l1",outcome="ok"}`:        2,
		`rend_requests_total{command="delete",layer="l1",outcome="not_found"}`: 7,
	} {
		if got := delta(key); got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}
	for _, key := range []string{
		`rend_bytes_read_total`, `rend_bytes_written_total`,
		`rend_pool_requests_total{layer="l1"}`, `rend_pool_requests_total{layer="l2"}`,
	} {
		if delta(key) <= 0 {
			t.Errorf("%s did not move", key)
		}
	}
	for key, want := range map[string]float64{
		`rend_backend_up{layer="l1"}`: 1, `rend_backend_up{layer="l2"}`: 1,
		`rend_build_info{version="` + version + `"}`: 1,
	} {
		if m1[key] != want {
			t.Errorf("%s = %v, want %v", key, m1[key], want)
		}
	}

	n := func(st map[string]string, name string) float64 {
		v, err := strconv.ParseFloat(st[name], 64)
		if err != nil {
			t.Fatalf("stat %s = %q", name, st[name])
		}
		return v
	}
	for name, want := range map[string]float64{
		"cmd_get": 4, "get_hits": 3, "get_misses": 1, "cmd_set": 7, "l1_hits": 2, "l1_misses": 2,
		"l2_hits": 1, "l2_misses": 1, "l1_fills": 1, "batch_replaces": 1, "batch_replace_skips": 1,
		"delete_hits": 1, "delete_misses": 1, "l2_fallbacks": 0, "chunk_misses": 0,
	} {
		if got := n(st1, name) - n(st0, name); got != want {
			t.Errorf("stat %s moved by %v, want %v", name, got, want)
		}
	}
	// The stats command answers from the same counters as /metrics.
	if n(st1, "get_hits") != m1[`rend_keys_total{command="gets",layer="client",result="hit"}`] {
		t.Errorf("get_hits %s differs from /metrics", st1["get_hits"])
	}
	// Two test connections (the readiness probe's may still be closing).
	if m1["rend_connections_current"] < 2 || n(st1, "curr_connections") < 2 || m1["rend_connections_accepted_total"] < 2 {
		t.Errorf("connections: /metrics %v, stats %s", m1["rend_connections_current"], st1["curr_connections"])
	}
	if st1["pid"] != strconv.Itoa(s.rend.Pid()) || st1["version"] != version ||
		st1["l1_conns_up"] == "" || st1["l2_reconnects"] != "0" || st1["mode"] != "l1l2" {
		t.Errorf("stats: %v", st1)
	}

	// Binary stats: the same fields.
	b := dialBinary(t, s.rend.regular)
	b.c.Write(binproto.AppendStat(nil, nil, 3))
	bin := map[string]string{}
	for {
		r, err := binproto.ReadResponse(b.br, nil)
		if err != nil || r.Status != binproto.StatusOK {
			t.Fatalf("binary stats: %v %v", err, r.Status)
		}
		if len(r.Key) == 0 {
			break
		}
		bin[string(r.Key)] = string(r.Value)
	}
	if bin["get_hits"] != st1["get_hits"] || bin["l2_hits"] != st1["l2_hits"] || bin["pid"] != st1["pid"] {
		t.Errorf("binary stats %v differ from text %v", bin, st1)
	}

	// stats settings (text and binary): the effective configuration.
	set := c.stats("settings")
	for k, want := range map[string]string{
		"listen": s.rend.regular, "batch_listen": s.rend.batch, "l1": s.mc.Addr, "l2": s.mn.Addr,
		"admin": s.rend.admin, "chunk_size": "1064", "item_size_max": "20971520", "maxconns": "65536",
		"idle_timeout": "0", "backend_timeout": "2s", "log_level": "info", "mode": "l1l2",
	} {
		if set[k] != want {
			t.Errorf("stats settings %s = %q, want %q", k, set[k], want)
		}
	}
	r := b.roundTrip(binproto.AppendStat(nil, []byte("settings"), 4))
	if string(r.Key) != "mode" || string(r.Value) != "l1l2" {
		t.Errorf("binary stats settings: first %q %q", r.Key, r.Value)
	}

	// /metrics.json carries the same families.
	if _, body := mctest.Get(t, "http://"+s.rend.admin+"/metrics.json"); !strings.Contains(body, `"rend_layer_lookups_total"`) {
		t.Errorf("/metrics.json: %.300s", body)
	}
}

// TestAdminOffAndReload: -admin "" starts no admin listener; SIGHUP
// applies a new log level and connection limit from the file, reports what needs a restart, and
// keeps the configuration when the file no longer loads; logs are JSON
// with -log-format json.
func TestAdminOffAndReload(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "rend.toml")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("log_level = \"warn\"\nlog_format = \"json\"\n")
	s := newStack(t, false, "-config", cfg, "-admin", "")
	if c, err := net.DialTimeout("tcp", s.rend.admin, time.Second); err == nil {
		c.Close()
		t.Fatal("admin listener up with -admin \"\"")
	}
	c := dial(t, s.rend.regular)
	if got := c.stats("settings")["log_level"]; got != "warn" {
		t.Fatalf("log_level %q", got)
	}
	logText := s.rend.Log
	hup := func() {
		if err := s.rend.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	write("log_level = \"debug\"\nlog_format = \"json\"\nchunk_size = 2048\nmax_conns = 5000\n")
	hup()
	eventually(t, 10*time.Second, "log level applied", func() bool { return c.stats("settings")["log_level"] == "debug" })
	if got := c.stats("settings")["chunk_size"]; got != "1064" {
		t.Errorf("chunk_size changed to %s without a restart", got)
	}
	eventually(t, 10*time.Second, "reload logged", func() bool { return strings.Contains(logText(), "configuration reloaded") })
	var reloaded struct {
		Msg          string   `json:"msg"`
		Applied      []string `json:"applied"`
		NeedsRestart []string `json:"needs_restart"`
	}
	for _, l := range strings.Split(strings.TrimSpace(logText()), "\n") {
		if err := json.Unmarshal([]byte(l), &reloaded); err != nil {
			t.Fatalf("log line not JSON: %q", l)
		}
		if strings.Contains(reloaded.Msg, "reloaded") {
			break
		}
	}
	if got := c.stats("settings")["maxconns"]; got != "5000" {
		t.Errorf("maxconns %q after reload", got)
	}
	if strings.Join(reloaded.Applied, ",") != "max_conns=5000,log_level=debug" || strings.Join(reloaded.NeedsRestart, ",") != "chunk_size=2048" {
		t.Errorf("reload logged applied=%v needs_restart=%v", reloaded.Applied, reloaded.NeedsRestart)
	}

	write("log_level = \"loud\"\n")
	hup()
	eventually(t, 10*time.Second, "bad reload logged", func() bool { return strings.Contains(logText(), "not reloaded") })
	if got := c.stats("settings")["log_level"]; got != "debug" {
		t.Errorf("log_level %q after a bad reload", got)
	}
	c.expect("version\r\n", "VERSION "+version)
}

// TestObservedDoesNotAllocate: the client-layer recording adds no
// allocation to a request (the backend layers use the same
// metrics.Commands.Request, checked in shared/metrics).
func TestObservedDoesNotAllocate(t *testing.T) {
	p := &daemon{client: metrics.NewCommands(prometheus.NewRegistry(), "x", "client")}
	next := protocol.HandlerFunc(func(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
		resp.Hits = resp.Hits[:0]
		resp.AppendHit(0, []byte("v"), 0, 1, 0)
		return nil
	})
	h := p.handler(next, orca.L1L2)
	req := &protocol.Request{Command: protocol.CmdGet}
	req.AddKey([]byte("k"))
	resp := new(protocol.Response)
	ctx := context.Background()
	base := testing.AllocsPerRun(1000, func() { next.Handle(ctx, req, resp) })
	if n := testing.AllocsPerRun(1000, func() { h.Handle(ctx, req, resp) }); n != base {
		t.Fatalf("observed handler: %v allocs, bare: %v", n, base)
	}
	down := errors.New("backend down")
	failing := p.handler(protocol.HandlerFunc(func(context.Context, *protocol.Request, *protocol.Response) error {
		return down
	}), orca.L1L2)
	if n := testing.AllocsPerRun(1000, func() { failing.Handle(ctx, req, resp) }); n != 0 {
		t.Fatalf("observed error path: %v allocs", n)
	}
}
