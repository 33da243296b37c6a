package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/client/ketama"
	"github.com/moneta-cache/moneta/shared/config"
)

// The memcached operations and their outcomes, through a replicated
// cluster with PolicyAll, checked against every zone.
func TestOperations(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 1)
	cfg := cl.config("a")
	cfg.Policy = PolicyAll
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	inAll := func(k, v string) {
		t.Helper()
		for zi := range cl.zones {
			if !holds(t, cl.server(zi, 0), k, v) {
				t.Fatalf("zone %d: %s != %q", zi, k, v)
			}
		}
	}
	is := func(err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
	}

	is(c.Add(ctx, &Item{Key: "k", Value: []byte("1")}), nil)
	is(c.Add(ctx, &Item{Key: "k", Value: []byte("2")}), ErrNotStored)
	inAll("k", "1")
	is(c.Replace(ctx, &Item{Key: "absent", Value: []byte("x")}), ErrNotStored)
	is(c.Replace(ctx, &Item{Key: "k", Value: []byte("b")}), nil)
	is(c.Append(ctx, &Item{Key: "k", Value: []byte("c")}), nil)
	is(c.Prepend(ctx, &Item{Key: "k", Value: []byte("a")}), nil)
	inAll("k", "abc")
	is(c.Append(ctx, &Item{Key: "absent", Value: []byte("x")}), ErrNotStored)

	_, err := c.Incr(ctx, "n", 1)
	is(err, ErrCacheMiss)
	is(c.Set(ctx, &Item{Key: "n", Value: []byte("10")}), nil)
	if v, err := c.Incr(ctx, "n", 5); err != nil || v != 15 {
		t.Fatalf("incr: %d %v", v, err)
	}
	if v, err := c.Decr(ctx, "n", 20); err != nil || v != 0 {
		t.Fatalf("decr: %d %v", v, err)
	}
	for zi := range cl.zones {
		// memcached keeps the length of a number that decr shortened,
		// padding it with spaces.
		if v, _ := dialRaw(t, cl.server(zi, 0)).get(t, "n"); strings.TrimSpace(v) != "0" {
			t.Fatalf("zone %d: n = %q", zi, v)
		}
	}
	_, err = c.Incr(ctx, "k", 1)
	is(err, ErrNonNumeric)

	is(c.Touch(ctx, "absent", 100), ErrCacheMiss)
	is(c.Touch(ctx, "k", 100), nil)

	// CompareAndSwap: read, change, swap; a stale version conflicts.
	it, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	stale := *it
	it.Value = []byte("swapped")
	is(c.CompareAndSwap(ctx, it), nil)
	inAll("k", "swapped")
	stale.Value = []byte("lost")
	is(c.CompareAndSwap(ctx, &stale), ErrCASConflict)
	inAll("k", "swapped")
	gone := &Item{Key: "absent", Value: []byte("x"), CAS: 1}
	is(c.CompareAndSwap(ctx, gone), ErrCacheMiss)

	// GetAndTouch returns the item and moves the expiry in every zone.
	is(c.Set(ctx, &Item{Key: "ttl", Value: []byte("t"), Expiration: 1000}), nil)
	it, err = c.GetAndTouch(ctx, "ttl", 5000)
	if err != nil || string(it.Value) != "t" {
		t.Fatalf("gat: %+v %v", it, err)
	}
	if left := int64(it.Expiration) - time.Now().Unix(); left < 4900 || left > 5001 {
		t.Errorf("gat expiration %d s from now", left)
	}
	for zi := range cl.zones {
		r := dialRaw(t, cl.server(zi, 0))
		eventually(t, 5*time.Second, "touch in every zone", func() bool {
			l := r.cmd(t, "mg ttl t")
			return strings.HasPrefix(l, "HD t49") || strings.HasPrefix(l, "HD t50")
		})
	}
	_, err = c.GetAndTouch(ctx, "absent", 10)
	is(err, ErrCacheMiss)

	is(c.Delete(ctx, "k"), nil)
	for zi := range cl.zones {
		if _, ok := dialRaw(t, cl.server(zi, 0)).get(t, "k"); ok {
			t.Fatalf("zone %d kept a deleted key", zi)
		}
	}
	is(c.Delete(ctx, "k"), ErrCacheMiss)

	// Values beyond memcached's 1 MiB item limit.
	is(c.Set(ctx, &Item{Key: "big", Value: make([]byte, 2<<20)}), ErrTooLarge)

	// Empty values round-trip as empty, not nil.
	is(c.Set(ctx, &Item{Key: "empty"}), nil)
	if it, err := c.Get(ctx, "empty"); err != nil || it.Value == nil || len(it.Value) != 0 {
		t.Fatalf("empty: %+v %v", it, err)
	}

	// SetMulti reports per-item failures.
	err = c.SetMulti(ctx, []*Item{{Key: "m1", Value: []byte("1")}, {Key: "m2", Value: make([]byte, 2<<20)}})
	var be *BulkError
	if !errors.As(err, &be) || len(be.Errors) != 1 || !errors.Is(be.Errors["m2"], ErrTooLarge) {
		t.Fatalf("setmulti: %v", err)
	}
	inAll("m1", "1")

	// The caller's buffer is not kept: changing it after Set changes nothing.
	buf := []byte("orig")
	is(c.Set(ctx, &Item{Key: "buf", Value: buf}), nil)
	copy(buf, "XXXX")
	inAll("buf", "orig")

	// A cancelled context is reported as such, not as a miss.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(cctx, "n"); !errors.Is(err, context.Canceled) {
		t.Fatalf("get with cancelled context: %v", err)
	}
	if _, err := c.GetMulti(cctx, []string{"n"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("getmulti with cancelled context: %v", err)
	}
	is(c.Set(cctx, &Item{Key: "n", Value: []byte("1")}), context.Canceled)

	c.Close()
	_, err = c.Get(ctx, "n")
	is(err, ErrClosed)
	is(c.Set(ctx, &Item{Key: "n"}), ErrClosed)
}

// A CompareAndSwap on an item read from a fallback zone compares in that
// zone, where its CAS version comes from.
func TestCompareAndSwapInFallbackZone(t *testing.T) {
	cl := startCluster(t, []string{"a", "b"}, 1)
	cfg := cl.config("a")
	cfg.Policy = PolicyOne
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	// Only zone b has the key, so the read falls back to b.
	if r := dialRaw(t, cl.server(1, 0)).cmd(t, "set onlyb 0 0 1\r\nx"); r != "STORED" {
		t.Fatal(r)
	}
	it, err := c.Get(ctx, "onlyb")
	if err != nil {
		t.Fatal(err)
	}
	it.Value = []byte("y")
	if err := c.CompareAndSwap(ctx, it); err != nil {
		t.Fatalf("cas in the serving zone: %v", err)
	}
	eventually(t, 5*time.Second, "both zones to hold the swapped value", func() bool {
		return holds(t, cl.server(0, 0), "onlyb", "y") && holds(t, cl.server(1, 0), "onlyb", "y")
	})
}

func TestPolicyRequired(t *testing.T) {
	want := map[Policy][]int{ // acknowledgements needed for 1..5 zones
		PolicyNone:        {0, 0, 0, 0, 0},
		PolicyOne:         {1, 1, 1, 1, 1},
		PolicyQuorum:      {1, 2, 2, 3, 3},
		PolicyAllMinusOne: {1, 1, 2, 3, 4},
		PolicyAll:         {1, 2, 3, 4, 5},
	}
	for p, w := range want {
		for n := 1; n <= 5; n++ {
			if got := p.required(n); got != w[n-1] {
				t.Errorf("%s with %d zones: %d, want %d", p, n, got, w[n-1])
			}
		}
		if q, err := ParsePolicy(p.String()); err != nil || q != p {
			t.Errorf("parse %s: %v %v", p, q, err)
		}
	}
}

// Reads start at the local zone and spread the fallbacks over the others;
// writes start at the local zone and follow configuration order.
func TestZoneOrder(t *testing.T) {
	c := &Client{cfg: Config{}}
	topo := &topology{zones: make([]*zone, 4), local: 2}
	second := map[int]int{}
	for i := 0; i < 3000; i++ {
		o := c.readOrder(topo, nil)
		if len(o) != 4 || o[0] != 2 {
			t.Fatalf("order %v", o)
		}
		seen := map[int]bool{}
		for _, z := range o {
			seen[z] = true
		}
		if len(seen) != 4 {
			t.Fatalf("order %v repeats a zone", o)
		}
		second[o[1]]++
	}
	for z := range 4 {
		if z != 2 && (second[z] < 800 || second[z] > 1200) {
			t.Errorf("zone %d is the first fallback %d times of 3000", z, second[z])
		}
	}
	c.cfg.FallbackZones = 1
	if o := c.readOrder(topo, nil); len(o) != 2 {
		t.Errorf("FallbackZones=1: %v", o)
	}
	c.cfg.ReadFallback = FallbackNever
	if o := c.readOrder(topo, nil); len(o) != 1 || o[0] != 2 {
		t.Errorf("FallbackNever: %v", o)
	}
	c.cfg.ReplicaWrites = 3
	if w := c.writeTargets(topo, false, nil); len(w) != 3 || w[0] != 2 || w[1] != 3 || w[2] != 0 {
		t.Errorf("write targets %v", w)
	}
	if w := c.writeTargets(topo, true, nil); len(w) != 4 {
		t.Errorf("all-zone targets %v", w)
	}
}

func TestConfigValidation(t *testing.T) {
	good := func() Config {
		return Config{Zones: []Zone{{Name: "a", Servers: []string{"127.0.0.1:1"}}}}
	}
	for name, mutate := range map[string]func(*Config){
		"no zones":          func(c *Config) { c.Zones = nil },
		"unnamed zone":      func(c *Config) { c.Zones[0].Name = "" },
		"no servers":        func(c *Config) { c.Zones[0].Servers = nil },
		"bad address":       func(c *Config) { c.Zones[0].Servers = []string{"nonsense"} },
		"duplicate server":  func(c *Config) { c.Zones[0].Servers = []string{"h:1", "h:1"} },
		"unknown local":     func(c *Config) { c.LocalZone = "x" },
		"replica writes":    func(c *Config) { c.ReplicaWrites = 2 },
		"batch mismatch":    func(c *Config) { c.Zones[0].BatchServers = []string{"h:1", "h:2"} },
		"prefix space":      func(c *Config) { c.Prefix = "a b" },
		"ring names count":  func(c *Config) { c.Zones[0].RingNames = []string{"x", "y"} },
		"unknown continuum": func(c *Config) { c.Zones[0].Continuum = "crc32" },
	} {
		c := good()
		mutate(&c)
		c.EnsureDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	c := good()
	c.BatchPort = 11212
	c.EnsureDefaults()
	if b, err := c.batchAddrs(c.Zones[0]); err != nil || len(b) != 1 || b[0] != "127.0.0.1:11212" {
		t.Errorf("derived batch address %v %v", b, err)
	}
	c.Zones[0].Servers = []string{"unix:/tmp/x.sock"}
	if _, err := c.batchAddrs(c.Zones[0]); err == nil {
		t.Error("derived a batch port for a unix socket")
	}
	// An unknown zone in the environment is ignored (with a warning), not fatal.
	c = good()
	c.getenv = func(string) string { return "elsewhere" }
	c.Logger = testLogger()
	cl, err := newClient(c, func(string) (conn, error) { return nopConn{}, nil })
	if err != nil || cl.LocalZone() != "" {
		t.Fatalf("env zone: %v %q", err, cl.LocalZone())
	}
	cl.Close()
}

// The README's example configuration parses into the Config it describes.
func TestConfigTOML(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "```toml\n")
	end := strings.Index(s[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no toml example in README.md")
	}
	path := filepath.Join(t.TempDir(), "cluster.toml")
	os.WriteFile(path, []byte(s[start+8:start+8+end]), 0o600)
	var cfg Config
	if err := config.Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Zones) != 3 || len(cfg.Zones[0].Servers) != 2 || cfg.Policy != PolicyQuorum ||
		cfg.ReadTimeout != 20*time.Millisecond || cfg.WriteTimeout != 2500*time.Millisecond ||
		cfg.ReadFallback != FallbackOnMissOrError || cfg.BatchWrites != BatchBulk || cfg.BatchPort != 11212 ||
		!cfg.HashLongKeys || cfg.Prefix == "" {
		t.Fatalf("parsed %+v", cfg)
	}
}

// RingNames place keys by other names than the dial addresses: the
// placement of a spymemcached/EVCache client that knows the servers as
// "host/ip:port".
func TestRingNames(t *testing.T) {
	cl := startCluster(t, []string{"a"}, 2)
	names := []string{"cache-1.example/10.0.0.1:11211", "cache-2.example/10.0.0.2:11211"}
	cfg := cl.config("a")
	cfg.Zones[0].RingNames = names
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	ring := ketama.New(names)
	for i := 0; i < 50; i++ {
		k := key(i)
		if err := c.Set(ctx, &Item{Key: k, Value: []byte("r")}); err != nil {
			t.Fatal(err)
		}
		want := cl.server(0, ring.Locate([]byte(k)))
		if !holds(t, want, k, "r") {
			t.Fatalf("key %s not on %s, the server named %s", k, want, names[ring.Locate([]byte(k))])
		}
	}
}

// Continuum "twemproxy" builds the ring a nutcracker pool builds, which for
// 25 servers differs from libketama's (deploy/fleet checks it against a real
// nutcracker).
func TestContinuumTwemproxy(t *testing.T) {
	z := Zone{Name: "a"}
	for i := 0; i < 25; i++ {
		z.Servers = append(z.Servers, "10.0.0."+strconv.Itoa(i+1)+":11211")
	}
	if got := z.newRing().Len(); got != 25*160 {
		t.Fatalf("default continuum: %d points", got)
	}
	z.Continuum = "twemproxy"
	if got := z.newRing().Len(); got != 25*156 {
		t.Fatalf("twemproxy continuum: %d points, want %d", got, 25*156)
	}
}
