package store

import (
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCollector scrapes the store's tables: the counters, the health rows
// and a series per shard, and nothing once the store is closed (its block
// cache is freed then, so reading it would be a use after free).
func TestCollector(t *testing.T) {
	s, err := Open(testOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	set(t, s, protocol.CmdSet, "k", "v", 0, 0)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector("x"))
	series := func() map[string]int {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, mf := range mfs {
			out[mf.GetName()] = len(mf.GetMetric())
		}
		return out
	}
	got := series()
	for name, n := range map[string]int{"x_items_written_total": 1, "x_block_cache_bytes": 1, "x_disk_full": 1,
		"x_rocksdb_estimated_keys": 2, "x_rocksdb_running_flushes": 2, "x_rocksdb_shard_down": 2} {
		if got[name] != n {
			t.Errorf("%s: %d series, want %d (all: %v)", name, got[name], n, got)
		}
	}
	s.Close()
	if got := series(); len(got) != 0 {
		t.Errorf("a closed store exported %v", got)
	}
}

// TestStatsLines checks the generated lines of the general stats: the
// per-shard rows under their shard_N_ prefix and the health rows after
// them, formatted as before the tables (true/false, three decimals).
func TestStatsLines(t *testing.T) {
	s := openTest(t, testOptions(t.TempDir()))
	m := map[string]string{}
	var order []string
	for _, st := range do(t, s, req(protocol.CmdStats)).Stats {
		m[st.Name] = st.Value
		order = append(order, st.Name)
	}
	for name, want := range map[string]string{"shard_0_write_stopped": "false", "shard_1_down": "false",
		"shard_1_stall_seconds": "0.000", "disk_full": "false", "total_items": "0", "shards": "2"} {
		if m[name] != want {
			t.Errorf("%s = %q, want %q", name, m[name], want)
		}
	}
	if _, ok := m["shard_0_running_flushes"]; ok {
		t.Error("a metrics-only row became a stats line")
	}
	if order[len(order)-1] != "wal_torn_tails" {
		t.Errorf("last line %q, want wal_torn_tails", order[len(order)-1])
	}
}
