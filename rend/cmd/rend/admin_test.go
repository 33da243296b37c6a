package main

import (
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/binproto"
)

// TestStatsGroups (issue 10 item 6): the stats groups and settings clients
// read, with real values, from rend (every mode) and mnemonic. The
// deterministic replies are also a conformance script
// (stats/admin-groups.txt); this checks the values.
func TestStatsGroups(t *testing.T) {
	s := newStack(t, true) // memcached -m 256
	mn := dial(t, s.mn.Addr)
	for _, port := range []string{s.rend.regular, s.rend.batch} {
		c := dial(t, port)
		st := c.stats("settings")
		for k, want := range map[string]string{
			"maxbytes": "268435456", "evictions": "on", "flush_enabled": "yes",
			"item_size_max": "20971520", "cas_enabled": "yes", "maxconns": "65536",
			"domain_socket": "NULL", "detail_enabled": "no",
		} {
			if st[k] != want {
				t.Errorf("rend %s: stats settings %s = %q, want %q", port, k, st[k], want)
			}
		}
	}
	c := dial(t, s.rend.regular)
	c.expect("stats detail on\r\n", "OK")
	if v := c.stats("settings")["detail_enabled"]; v != "yes" {
		t.Errorf("detail_enabled after stats detail on: %q", v)
	}
	c.expect("stats detail dump\r\n", "END")
	c.expect("stats detail off\r\n", "OK")
	c.expect("stats cachedump 1 10\r\n", "END")
	c.expect("stats cachedump 64 10\r\n", "CLIENT_ERROR Illegal slab id")

	// cache_memlimit changes L1's limit (rend's maxbytes is L1's).
	c.expect("cache_memlimit 100\r\n", "OK")
	if v := c.stats("settings")["maxbytes"]; v != "104857600" {
		t.Errorf("maxbytes after cache_memlimit 100: %q", v)
	}
	c.expect("cache_memlimit 7\r\n", "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m")

	// stats slabs and items are L1's: rend's header items show up there.
	c.set("slab-key", []byte("v"), 0, 0)
	slabs, items := c.stats("slabs"), c.stats("items")
	if slabs["active_slabs"] == "" || slabs["active_slabs"] == "0" || slabs["total_malloced"] == "" {
		t.Errorf("stats slabs: %v", slabs)
	}
	found := false
	for k := range items {
		found = found || strings.HasSuffix(k, ":number")
	}
	if !found {
		t.Errorf("stats items: %v", items)
	}

	// Binary: detail on answers the terminator only.
	b := dialBinary(t, s.rend.regular)
	if r := b.roundTrip(binproto.AppendStat(nil, []byte("detail on"), 3)); r.Status != binproto.StatusOK || len(r.Key) != 0 {
		t.Errorf("binary stats detail on: %v %q", r.Status, r.Key)
	}

	// mnemonic: its disk budget and socket.
	st := mn.stats("settings")
	if st["maxbytes"] == "" || st["evictions"] == "" || st["flush_enabled"] != "yes" || st["cas_enabled"] != "yes" ||
		st["item_size_max"] == "" || st["maxconns"] == "" || !strings.HasSuffix(st["domain_socket"], "mn.sock") {
		t.Errorf("mnemonic stats settings: %v", st)
	}
	mn.expect("stats detail on\r\n", "OK")
	mn.expect("stats cachedump 1 1\r\n", "END")
}
