package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
)

// freeAddr returns a loopback TCP address nothing listens on now.
func freeAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", mctest.FreePort(t)) }

// httpGet fetches url and requires status code.
func httpGet(t *testing.T, url string, code int) string {
	t.Helper()
	got, body := mctest.Get(t, url)
	if got != code {
		t.Fatalf("GET %s: %d, want %d\n%.300s", url, got, code, body)
	}
	return body
}

// scrape reads /metrics (mctest.Scrape).
func scrape(t *testing.T, admin string) map[string]float64 { return mctest.Scrape(t, admin) }

// textStats runs "stats [group]" and returns its fields.
func textStats(c *textConn, group string) map[string]string { c.TB.Helper(); return c.Stats(group) }

// TestMetricsAndStats drives known traffic through a real mnemonic and
// checks that /metrics, text stats and binary stats all count it.
func TestMetricsAndStats(t *testing.T) {
	admin := freeAddr(t)
	// The flusher of read state an hour away: the counts below are the
	// requests' own.
	p := startMnemonic(t, "", "-admin", admin, "-state-flush-interval", "1h")
	c := dialText(t, p.Addr)
	for i := 0; i < 10; i++ {
		c.do(fmt.Sprintf("set k%d 0 0 1\r\nv\r\n", i), "STORED")
	}
	for i := 0; i < 15; i++ {
		c.send(fmt.Sprintf("get k%d\r\n", i))
		if i < 10 {
			c.expect(fmt.Sprintf("VALUE k%d 0 1", i), "v")
		}
		c.expect("END")
	}
	c.do("delete k0\r\n", "DELETED")
	c.do("delete k0\r\n", "NOT_FOUND")

	m := scrape(t, admin)
	for name, want := range map[string]float64{
		`mnemonic_requests_total{command="set",layer="l2",outcome="ok"}`:           10,
		`mnemonic_requests_total{command="get",layer="l2",outcome="hit"}`:          10,
		`mnemonic_requests_total{command="get",layer="l2",outcome="miss"}`:         5,
		`mnemonic_requests_total{command="delete",layer="l2",outcome="ok"}`:        1,
		`mnemonic_requests_total{command="delete",layer="l2",outcome="not_found"}`: 1,
		`mnemonic_keys_total{command="get",layer="l2",result="miss"}`:              5,
		`mnemonic_request_seconds_count{command="get",layer="l2"}`:                 15,
		`mnemonic_connections_current`:                                             1,
		`mnemonic_items_written_total`:                                             10,
		`mnemonic_build_info{version="dev"}`:                                       1,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	// Per-shard figures: every call lands on one of the two shards.
	var puts, gets float64
	for sh := 0; sh < 2; sh++ {
		puts += m[fmt.Sprintf(`mnemonic_shard_ops_total{op="put",shard="%d"}`, sh)]
		gets += m[fmt.Sprintf(`mnemonic_shard_op_seconds_count{op="get",shard="%d"}`, sh)]
		for _, fig := range []string{"estimated_keys", "disk_bytes", "memtable_bytes", "pending_compaction_bytes",
			"l0_files", "write_stopped", "delayed_write_rate_bytes", "stall_seconds_total", "background_errors_total"} {
			if _, ok := m[fmt.Sprintf(`mnemonic_rocksdb_%s{shard="%d"}`, fig, sh)]; !ok {
				t.Errorf("no mnemonic_rocksdb_%s for shard %d", fig, sh)
			}
		}
	}
	// 15 gets, plus the lookups of the two deletes. The first get of each
	// of the 10 items is its first fetch (mg h), which waits in memory for
	// the flusher: no write of its own.
	if puts != 10 || gets != 17 {
		t.Errorf("shard puts %v gets %v, want 10 and 17", puts, gets)
	}
	if m["mnemonic_bytes_read_total"] == 0 || m["mnemonic_bytes_written_total"] == 0 || m["mnemonic_connections_accepted_total"] < 1 {
		t.Errorf("connection byte counters did not move: %v", m)
	}

	st := textStats(c, "")
	for k, want := range map[string]string{"cmd_get": "15", "get_hits": "10", "get_misses": "5", "cmd_set": "10",
		"delete_hits": "1", "delete_misses": "1", "curr_connections": "1", "shards": "2"} {
		if st[k] != want {
			t.Errorf("stats %s = %q, want %s", k, st[k], want)
		}
	}
	sp0, _ := strconv.Atoi(st["shard_0_put_ops"])
	sp1, _ := strconv.Atoi(st["shard_1_put_ops"])
	if sp0+sp1 != 10 || st["shard_0_write_stopped"] != "false" || st["shard_1_memtable_bytes"] == "" {
		t.Errorf("per-shard stats: %v", st)
	}

	// Binary stats: one packet per field, then one with an empty key.
	b := dialBin(t, p.Addr)
	b.send(binPacket{op: 0x10})
	bin := map[string]string{}
	for {
		r := b.recv()
		if r.status != 0 {
			t.Fatalf("binary stats status %#x", r.status)
		}
		if len(r.key) == 0 {
			break
		}
		bin[string(r.key)] = string(r.value)
	}
	if bin["get_hits"] != "10" || bin["cmd_get"] != "15" || bin["shard_1_put_ops"] != st["shard_1_put_ops"] {
		t.Errorf("binary stats differ from text: %v", bin)
	}

	set := textStats(c, "settings")
	// max_conns is what the descriptor limit leaves after RocksDB's reserve.
	_, maxConns, _ := fdBudget(fdLimit(), 2, 1024, 65536)
	for k, want := range map[string]string{"listen": p.Addr, "admin": admin, "shards": "2", "item_size_max": "20971520",
		"maxconns": strconv.Itoa(maxConns), "compaction_style": "fifo", "block_cache_bytes": strconv.Itoa(8 << 20), "log_level": "warn",
		"log_format": "text", "idle_timeout": "0", "cas_enabled": "yes"} {
		if set[k] != want {
			t.Errorf("stats settings %s = %q, want %q", k, set[k], want)
		}
	}

	if j := httpGet(t, "http://"+admin+"/metrics.json", http.StatusOK); !strings.Contains(j, "mnemonic_shard_ops_total") {
		t.Errorf("/metrics.json lacks the shard metrics: %.300s", j)
	}
	httpGet(t, "http://"+admin+"/healthz", http.StatusOK)
	httpGet(t, "http://"+admin+"/debug/pprof/", http.StatusOK)
	p.stop()
}

// TestSIGHUPReload: SIGHUP applies a new log_level from the file, reports
// keys that need a restart, and a broken file changes nothing; logs are
// JSON with -log-format json.
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "m.toml")
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("shards = 2\nmax_disk_bytes = 268435456\nblock_cache_bytes = 8388608\nlog_level = \"info\"\n")
	p := startArgs(t, "", []string{"-config", cfgPath, "-log-format", "json"})
	c := dialText(t, p.Addr)

	// logged returns the JSON log records whose msg is msg.
	logged := func(msg string) []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(p.Log(), "\n") {
			if l == "" {
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("log line is not JSON: %q", l)
			}
			if rec["msg"] == msg {
				out = append(out, rec)
			}
		}
		return out
	}
	// The socket accepts (listen backlog) a moment before the line is
	// written.
	eventually(t, 5*time.Second, "the JSON start line", func() bool { return len(logged("mnemonic serving")) == 1 })

	write("shards = 3\nmax_disk_bytes = 268435456\nblock_cache_bytes = 8388608\nlog_level = \"debug\"\nmax_conns = 10\n")
	p.Signal(syscall.SIGHUP)
	eventually(t, 5*time.Second, "reload log", func() bool { return len(logged("SIGHUP: configuration reloaded")) == 1 })
	rec := logged("SIGHUP: configuration reloaded")[0]
	if fmt.Sprint(rec["applied"]) != "[max_conns=10 log_level=debug]" || fmt.Sprint(rec["needs_restart"]) != "[shards=3]" {
		t.Errorf("reload record %v", rec)
	}
	set := textStats(c, "settings")
	if set["log_level"] != "debug" || set["shards"] != "2" || set["maxconns"] != "10" {
		t.Errorf("after reload: log_level %s shards %s maxconns %s", set["log_level"], set["shards"], set["maxconns"])
	}

	write("log_level = \"loud\"\n")
	p.Signal(syscall.SIGHUP)
	eventually(t, 5*time.Second, "rejected reload log", func() bool { return len(logged("SIGHUP: configuration not reloaded")) == 1 })
	if e := fmt.Sprint(logged("SIGHUP: configuration not reloaded")[0]["err"]); !strings.Contains(e, "log_level") {
		t.Errorf("rejection does not name log_level: %s", e)
	}
	if set := textStats(c, "settings"); set["log_level"] != "debug" {
		t.Errorf("a broken file changed log_level to %s", set["log_level"])
	}
	c.do("set a 0 0 1\r\nx\r\n", "STORED")
	p.stop()
}
