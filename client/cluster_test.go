package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Each policy waits for exactly the zones it names: with the key's server
// frozen (SIGSTOP) in some zones, a policy that can be met without them
// returns at once, and one that cannot waits out WriteTimeout and reports
// ErrUnavailable. What each zone holds is read from the servers directly.
func TestWritePolicies(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 2)
	const wt = time.Second
	cases := []struct {
		policy  Policy
		frozen  []int // zones whose owner of the key is frozen
		wantErr bool
	}{
		{PolicyAll, nil, false},
		{PolicyAll, []int{2}, true},
		{PolicyAllMinusOne, []int{2}, false},
		{PolicyAllMinusOne, []int{1, 2}, true},
		{PolicyQuorum, []int{2}, false},
		{PolicyQuorum, []int{1, 2}, true},
		{PolicyOne, []int{1, 2}, false},
		{PolicyOne, []int{0, 1, 2}, true},
		{PolicyNone, []int{0, 1, 2}, false},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s/frozen%v", tc.policy, tc.frozen), func(t *testing.T) {
			cfg := cl.config("a")
			cfg.Policy = tc.policy
			cfg.WriteTimeout = wt
			cfg.FailureThreshold = 1000 // keep frozen servers "up": this test is about waiting
			c := newTestClient(t, cfg)
			k := fmt.Sprintf("policy-%d", i)
			for _, z := range tc.frozen {
				cl.freeze(ownerIn(cl.zones[z], k))
			}
			start := time.Now()
			err := c.Set(ctxT(t), &Item{Key: k, Value: []byte("v")})
			took := time.Since(start)
			if tc.wantErr {
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("err %v, want ErrUnavailable", err)
				}
				if took < wt*9/10 {
					t.Errorf("failed after %v, before the write timeout %v", took, wt)
				}
			} else {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				if took >= wt*9/10 {
					t.Errorf("took %v: waited for a frozen zone", took)
				}
			}
			for zi, z := range cl.zones {
				if slices.Contains(tc.frozen, zi) {
					continue
				}
				// The write reached every zone that can answer, even when
				// the call did not wait for it.
				owner := ownerIn(z, k)
				eventually(t, 5*time.Second, "zone "+z.Name+" to hold the key", func() bool { return holds(t, owner, k, "v") })
			}
			for _, z := range tc.frozen {
				cl.thaw(ownerIn(cl.zones[z], k))
			}
		})
	}
}

// A write the call did not wait for goes on in the background: with PolicyOne
// and zone c's server frozen the call returns at once, and once the server
// resumes (within WriteTimeout) the value lands there too.
func TestBackgroundWriteCompletes(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 1)
	cfg := cl.config("a")
	cfg.Policy = PolicyOne
	cfg.WriteTimeout = 5 * time.Second
	c := newTestClient(t, cfg)
	cl.freeze(cl.server(2, 0))
	start := time.Now()
	if err := c.Set(ctxT(t), &Item{Key: "bg", Value: []byte("later")}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Set took %v: waited for the frozen zone", took)
	}
	cl.thaw(cl.server(2, 0))
	eventually(t, 5*time.Second, "frozen zone to receive the write", func() bool {
		return holds(t, cl.server(2, 0), "bg", "later")
	})
	if s := c.Stats(); s.BackgroundWriteFailures != 0 {
		t.Fatalf("background failures: %+v", s)
	}
}

// ReplicaWrites limits the zones written: the local zone, then the next in
// configuration order (wrapping). Deletes still go everywhere.
func TestReplicaWrites(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 1)
	cfg := cl.config("b")
	cfg.ReplicaWrites = 2
	cfg.Policy = PolicyAll
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	if err := c.Set(ctx, &Item{Key: "two", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"a": false, "b": true, "c": true}
	for zi, z := range cl.zones {
		if got := holds(t, cl.server(zi, 0), "two", "x"); got != want[z.Name] {
			t.Errorf("zone %s holds=%v, want %v", z.Name, got, want[z.Name])
		}
	}
	// A copy in a zone outside the write set (left by an older
	// configuration) is deleted too.
	if r := dialRaw(t, cl.server(0, 0)).cmd(t, "set two 0 0 1\r\nx"); r != "STORED" {
		t.Fatal(r)
	}
	if err := c.Delete(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	for zi := range cl.zones {
		if holds(t, cl.server(zi, 0), "two", "x") {
			t.Errorf("zone %d still holds the deleted key", zi)
		}
	}
}

// Reads go to the local zone (named by the environment variable here): the
// other zones see no gets at all, per the servers' own stats.
func TestLocalZoneReads(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 2)
	wcfg := cl.config("a")
	wcfg.Policy = PolicyAll
	w := newTestClient(t, wcfg)
	ctx := ctxT(t)
	const n = 200
	keys := make([]string, n)
	for i := range keys {
		keys[i] = key(i)
		if err := w.Set(ctx, &Item{Key: keys[i], Value: []byte(keys[i])}); err != nil {
			t.Fatal(err)
		}
	}
	for a := range cl.mc {
		if r := dialRaw(t, a).cmd(t, "stats reset"); r != "RESET" {
			t.Fatal(r)
		}
	}
	rcfg := cl.config("")
	rcfg.getenv = func(k string) string {
		if k == DefaultZoneEnv {
			return "b"
		}
		return ""
	}
	r := newTestClient(t, rcfg)
	if r.LocalZone() != "b" {
		t.Fatalf("local zone %q", r.LocalZone())
	}
	for _, k := range keys {
		it, err := r.Get(ctx, k)
		if err != nil || string(it.Value) != k {
			t.Fatalf("get %s: %v %v", k, it, err)
		}
	}
	m, err := r.GetMulti(ctx, keys)
	if err != nil || len(m) != n {
		t.Fatalf("getmulti: %d items, %v", len(m), err)
	}
	for zi, z := range cl.zones {
		var gets, hits uint64
		for _, a := range z.Servers {
			s := dialRaw(t, a).stats(t)
			gets += s["cmd_get"]
			hits += s["get_hits"]
			if z.Name == "b" && s["get_hits"] == 0 {
				t.Errorf("server %s of the local zone served nothing: ketama spread?", a)
			}
		}
		t.Logf("zone %s: cmd_get=%d get_hits=%d", z.Name, gets, hits)
		switch {
		case zi == 1 && hits != 2*n:
			t.Errorf("local zone served %d hits, want %d", hits, 2*n)
		case zi != 1 && gets != 0:
			t.Errorf("zone %s got %d gets, want 0", z.Name, gets)
		}
	}
	if s := r.Stats(); s.FallbackHits != 0 || s.Hits != 2*n {
		t.Errorf("client stats %+v", s)
	}
}

// ReadFallback controls whether a local miss is asked of other zones.
func TestFallbackModes(t *testing.T) {
	cl := startCluster(t, []string{"a", "b"}, 1)
	// The key exists only in zone b.
	if r := dialRaw(t, cl.server(1, 0)).cmd(t, "set onlyb 3 0 2\r\nhi"); r != "STORED" {
		t.Fatal(r)
	}
	ctx := ctxT(t)
	for _, tc := range []struct {
		mode Fallback
		hit  bool
	}{{FallbackOnMissOrError, true}, {FallbackOnError, false}, {FallbackNever, false}} {
		cfg := cl.config("a")
		cfg.ReadFallback = tc.mode
		c := newTestClient(t, cfg)
		it, err := c.Get(ctx, "onlyb")
		if tc.hit != (err == nil) {
			t.Errorf("%s: %v %v", tc.mode, it, err)
		}
		if err != nil && !errors.Is(err, ErrCacheMiss) {
			t.Errorf("%s: %v", tc.mode, err)
		}
		m, err := c.GetMulti(ctx, []string{"onlyb", "nothere"})
		if err != nil || (len(m) == 1) != tc.hit {
			t.Errorf("%s: getmulti %v %v", tc.mode, m, err)
		}
		if tc.hit && (it.Flags != 3 || string(m["onlyb"].Value) != "hi") {
			t.Errorf("%s: %+v %+v", tc.mode, it, m["onlyb"])
		}
	}
}

// writeKeys sets n keys with PolicyAll through a separate client.
func writeKeys(t *testing.T, cl *cluster, n int) []string {
	t.Helper()
	cfg := cl.config("a")
	cfg.Policy = PolicyAll
	w := newTestClient(t, cfg)
	keys := make([]string, n)
	items := make([]*Item, n)
	for i := range keys {
		keys[i] = key(i)
		items[i] = &Item{Key: keys[i], Value: []byte("v" + keys[i])}
	}
	if err := w.SetMulti(ctxT(t), items); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return keys
}

// Killing one server of the local zone: every read still succeeds (from the
// other zones) with no error and bounded latency; the server is marked down
// and then skipped rather than asked again.
func TestKillServerFallsBack(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 2)
	keys := writeKeys(t, cl, 300)
	cfg := cl.config("a")
	cfg.ReadTimeout = 250 * time.Millisecond
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	dead := cl.server(0, 0)
	cl.stop(dead)
	var worst time.Duration
	owned := 0
	for _, k := range keys {
		if ownerIn(cl.zones[0], k) == dead {
			owned++
		}
		start := time.Now()
		it, err := c.Get(ctx, k)
		worst = max(worst, time.Since(start))
		if err != nil || string(it.Value) != "v"+k {
			t.Fatalf("get %s with a dead server: %v %v", k, it, err)
		}
	}
	t.Logf("%d keys, %d owned by the dead server, worst latency %v", len(keys), owned, worst)
	// A killed server fails at once; the bound only says "no hang" with
	// room for a loaded machine (a hang would last the 5 s write timeout).
	if worst > cfg.ReadTimeout+time.Second {
		t.Errorf("worst latency %v, read timeout %v", worst, cfg.ReadTimeout)
	}
	m, err := c.GetMulti(ctx, keys)
	if err != nil || len(m) != len(keys) {
		t.Fatalf("getmulti with a dead server: %d of %d, %v", len(m), len(keys), err)
	}
	// At least the dead server's keys (Get and GetMulti) came from other
	// zones; more if a healthy server was slow on a loaded machine.
	if s := c.Stats(); s.FallbackHits < uint64(2*owned) {
		t.Errorf("fallback hits %d, want at least %d", s.FallbackHits, 2*owned)
	}
	// Failing at once (connection refused), it is marked down when the
	// failures have gone on for FailureWindow.
	var mine string
	for _, k := range keys {
		if ownerIn(cl.zones[0], k) == dead {
			mine = k
		}
	}
	eventually(t, 5*time.Second, "the dead server to be marked down", func() bool {
		c.Get(ctx, mine)
		return serverStats(c.Stats(), dead).Down
	})
	ds := serverStats(c.Stats(), dead)
	if ds.DownMarks != 1 {
		t.Errorf("dead server stats %+v", ds)
	}
	// Once down, it is skipped, not asked again.
	for _, k := range keys {
		if _, err := c.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if again := serverStats(c.Stats(), dead); again.Requests != ds.Requests || again.Skipped <= ds.Skipped {
		t.Errorf("down server asked again: before %+v, after %+v", ds, again)
	}
}

// A momentary stall that times out every request in flight at once (here:
// many concurrent reads against a server frozen for less than the failure
// window) does not mark the server down.
func TestStallDoesNotMarkDown(t *testing.T) {
	cl := startCluster(t, []string{"a", "b"}, 1)
	keys := writeKeys(t, cl, 20)
	cfg := cl.config("a")
	cfg.ReadTimeout = 30 * time.Millisecond
	cfg.FailureWindow = time.Second
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	victim := cl.server(0, 0)
	cl.freeze(victim)
	done := make(chan error, len(keys))
	for _, k := range keys {
		go func() {
			_, err := c.Get(ctx, k)
			done <- err
		}()
	}
	for range keys {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	cl.thaw(victim)
	ss := serverStats(c.Stats(), victim)
	if ss.Failures < uint64(cfg.FailureThreshold) || ss.Down {
		t.Fatalf("after a stall: %+v (want failures >= %d and not down)", ss, cfg.FailureThreshold)
	}
	// A success ends the streak.
	eventually(t, 5*time.Second, "reads to succeed again", func() bool {
		_, err := c.Get(ctx, keys[0])
		return err == nil && serverStats(c.Stats(), victim).Requests > ss.Requests
	})
}

// With every zone's server marked down, a read still asks them instead of
// answering a miss blind, and succeeds once one answers, even when the
// preferred one is really gone.
func TestAllDownStillTries(t *testing.T) {
	cl := startCluster(t, []string{"a", "b"}, 1)
	keys := writeKeys(t, cl, 1)
	cfg := cl.config("a")
	cfg.ReadTimeout = 30 * time.Millisecond
	cfg.FailureWindow = time.Millisecond
	cfg.ProbeMin, cfg.ProbeMax = time.Hour, time.Hour // no probe will bring them back
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	for zi := range cl.zones {
		cl.freeze(cl.server(zi, 0))
	}
	eventually(t, 10*time.Second, "both servers marked down", func() bool {
		c.Get(ctx, keys[0])
		s := c.Stats()
		return s.Servers[0].Down && s.Servers[1].Down
	})
	cl.thaw(cl.server(1, 0))
	cl.stop(cl.server(0, 0))
	// The thawed server may need longer than the 30 ms read timeout to catch
	// up on a loaded machine; a blind miss would never succeed here.
	eventually(t, 10*time.Second, "read with every server marked down", func() bool {
		it, err := c.Get(ctx, keys[0])
		return err == nil && string(it.Value) == "v"+keys[0]
	})
	if m, err := c.GetMulti(ctx, keys); err != nil || len(m) != 1 {
		t.Fatalf("getmulti with every server marked down: %v %v", m, err)
	}
	if err := c.Set(ctx, &Item{Key: keys[0], Value: []byte("w")}); err != nil {
		t.Fatalf("write with every server marked down: %v", err)
	}
	if err := c.SetMulti(ctx, []*Item{{Key: keys[0], Value: []byte("m")}}); err != nil {
		t.Fatalf("bulk write with every server marked down: %v", err)
	}
}

func serverStats(s Stats, a string) ServerStats {
	for _, ss := range s.Servers {
		if ss.Addr == a {
			return ss
		}
	}
	return ServerStats{}
}

// A hung server (frozen: it accepts and never answers) costs a read at most
// ReadTimeout before the next zone answers, and after FailureThreshold such
// reads the server is skipped without waiting.
func TestHungServerBoundedByTimeout(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 2)
	keys := writeKeys(t, cl, 200)
	cfg := cl.config("a")
	cfg.ReadTimeout = 50 * time.Millisecond
	cfg.FailureWindow = 50 * time.Millisecond
	cfg.ProbeMin = 100 * time.Millisecond
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	hung := cl.server(0, 1)
	cl.freeze(hung)
	var worst time.Duration
	for _, k := range keys {
		if ownerIn(cl.zones[0], k) != hung {
			continue
		}
		start := time.Now()
		it, err := c.Get(ctx, k)
		worst = max(worst, time.Since(start))
		if err != nil || string(it.Value) != "v"+k {
			t.Fatalf("get %s: %v %v", k, it, err)
		}
	}
	// Each request sent to the hung server waited for the read timeout;
	// once marked down it was asked no more.
	sent := serverStats(c.Stats(), hung).Requests
	t.Logf("reads of the hung server's keys: %d waited for the timeout, worst %v", sent, worst)
	if worst > cfg.ReadTimeout+time.Second {
		t.Errorf("worst %v: not bounded by the read timeout %v", worst, cfg.ReadTimeout)
	}
	if sent < DefaultFailureThreshold || sent > DefaultFailureThreshold+3 {
		t.Errorf("%d requests went to the hung server, want about FailureThreshold=%d", sent, DefaultFailureThreshold)
	}
	if ss := serverStats(c.Stats(), hung); !ss.Down {
		t.Errorf("hung server not marked down: %+v", ss)
	}
}

// With the whole local zone gone, reads and quorum writes carry on; a write
// that needs all zones reports ErrUnavailable promptly.
func TestKillZone(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 2)
	keys := writeKeys(t, cl, 200)
	cfg := cl.config("a")
	cfg.ReadTimeout = 500 * time.Millisecond
	cfg.Policy = PolicyQuorum
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	for _, a := range cl.zones[0].Servers {
		cl.stop(a)
	}
	for _, k := range keys {
		if it, err := c.Get(ctx, k); err != nil || string(it.Value) != "v"+k {
			t.Fatalf("get %s without zone a: %v %v", k, it, err)
		}
	}
	if m, err := c.GetMulti(ctx, keys); err != nil || len(m) != len(keys) {
		t.Fatalf("getmulti without zone a: %d, %v", len(m), err)
	}
	if err := c.Set(ctx, &Item{Key: "new", Value: []byte("n")}); err != nil {
		t.Fatalf("quorum write without zone a: %v", err)
	}
	if it, err := c.Get(ctx, "new"); err != nil || string(it.Value) != "n" {
		t.Fatalf("read back: %v %v", it, err)
	}
	acfg := cfg
	acfg.Policy = PolicyAll
	all := newTestClient(t, acfg)
	start := time.Now()
	if err := all.Set(ctx, &Item{Key: "new", Value: []byte("n")}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("all-zones write without zone a: %v", err)
	}
	// Zone a refuses connections: the write fails without waiting for the
	// 5 s write timeout.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("failing write took %v", took)
	}
}

// A killed server is marked down, probed, and back in rotation once it
// answers again: a restarted (empty) memcached is refilled from the other
// zones by FillOnFallback and receives new writes.
func TestRestartRejoins(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 2)
	keys := writeKeys(t, cl, 100)
	cfg := cl.config("a")
	cfg.ReadTimeout = 500 * time.Millisecond
	cfg.FillOnFallback = true
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	victim := cl.server(0, 0)
	var mine []string
	for _, k := range keys {
		if ownerIn(cl.zones[0], k) == victim {
			mine = append(mine, k)
		}
	}
	cl.stop(victim)
	eventually(t, 5*time.Second, "the killed server to be marked down", func() bool {
		if _, err := c.Get(ctx, mine[0]); err != nil {
			t.Fatal(err)
		}
		return serverStats(c.Stats(), victim).Down
	})
	cl.restart(victim)
	eventually(t, 10*time.Second, "the restarted server to be probed back up", func() bool {
		return !serverStats(c.Stats(), victim).Down
	})
	before := serverStats(c.Stats(), victim).Requests
	for _, k := range mine {
		if it, err := c.Get(ctx, k); err != nil || string(it.Value) != "v"+k {
			t.Fatalf("get %s: %v %v", k, it, err)
		}
	}
	if after := serverStats(c.Stats(), victim).Requests; after < before+uint64(len(mine)) {
		t.Errorf("restarted server asked %d times for %d keys", after-before, len(mine))
	}
	// The misses on the empty server were filled from the other zones.
	for _, k := range mine {
		eventually(t, 5*time.Second, "fill of "+k, func() bool { return holds(t, victim, k, "v"+k) })
	}
	m := dialRaw(t, victim).stats(t)
	if m["curr_items"] != uint64(len(mine)) {
		t.Errorf("restarted server holds %d items, want %d", m["curr_items"], len(mine))
	}
	if err := c.Set(ctx, &Item{Key: mine[0], Value: []byte("fresh")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "new write on the restarted server", func() bool { return holds(t, victim, mine[0], "fresh") })
}

// Adding a server to a zone of two moves about a third of that zone's keys,
// measured on the servers: a read confined to that zone misses exactly the
// moved keys, and all of them now belong to the new server.
func TestAddServerMovesAboutOneNth(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 2)
	keys := writeKeys(t, cl, 3000)
	cfg := cl.config("a")
	cfg.ReadFallback = FallbackNever
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	added := cl.addServer(0)
	zones := append([]Zone(nil), cl.zones...)
	zones[0].Servers = append(slices.Clone(zones[0].Servers), added)
	if err := c.SetZones(zones); err != nil {
		t.Fatal(err)
	}
	m, err := c.GetMulti(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			moved++
			if ownerIn(zones[0], k) != added {
				t.Fatalf("key %s missing but not moved to the new server", k)
			}
		}
	}
	frac := float64(moved) / float64(len(keys))
	t.Logf("2 -> 3 servers in zone a: %d of %d keys moved (%.1f%%, ideal 33.3%%)", moved, len(keys), 100*frac)
	if frac < 0.2 || frac > 0.47 {
		t.Errorf("moved fraction %.3f, want about 1/3", frac)
	}
	// The unchanged servers kept their connections and counters.
	if ss := serverStats(c.Stats(), cl.server(0, 0)); ss.Requests == 0 {
		t.Errorf("old server lost its stats: %+v", ss)
	}
}

// Bulk writes go to the batch port when configured (here a separate
// memcached standing in for rend's 11212), single writes to the regular one,
// or everything to the batch port with BatchAll. Placement follows the ring
// of the regular addresses, as on a real host where both ports are one store.
func TestBatchPort(t *testing.T) {
	cl := startCluster(t, []string{"a", "b"}, 2)
	batch := startCluster(t, []string{"a", "b"}, 2)
	zones := append([]Zone(nil), cl.zones...)
	for i := range zones {
		zones[i].BatchServers = batch.zones[i].Servers
	}
	ctx := ctxT(t)
	cfg := cl.config("a")
	cfg.Zones = zones
	cfg.Policy = PolicyAll
	cfg.BatchWrites = BatchBulk
	c := newTestClient(t, cfg)
	var items []*Item
	for i := 0; i < 40; i++ {
		items = append(items, &Item{Key: "bulk" + key(i), Value: []byte("b")})
	}
	if err := c.SetMulti(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, &Item{Key: "single", Value: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	for zi, z := range zones {
		for _, it := range items {
			i := slices.Index(z.Servers, ownerIn(z, it.Key))
			if !holds(t, z.BatchServers[i], it.Key, "b") || holds(t, z.Servers[i], it.Key, "b") {
				t.Fatalf("zone %d: bulk item %s not (only) on the batch port", zi, it.Key)
			}
		}
		i := slices.Index(z.Servers, ownerIn(z, "single"))
		if !holds(t, z.Servers[i], "single", "s") || holds(t, z.BatchServers[i], "single", "s") {
			t.Fatalf("zone %d: single write not (only) on the regular port", zi)
		}
	}
	cfg.BatchWrites = BatchAll
	all := newTestClient(t, cfg)
	if err := all.Set(ctx, &Item{Key: "loader", Value: []byte("l")}); err != nil {
		t.Fatal(err)
	}
	for _, z := range zones {
		i := slices.Index(z.Servers, ownerIn(z, "loader"))
		if !holds(t, z.BatchServers[i], "loader", "l") {
			t.Fatalf("BatchAll: single write not on the batch port")
		}
	}
}

// The prefix and long-key hashing are visible on the servers.
func TestKeys(t *testing.T) {
	cl := startCluster(t, []string{"a"}, 1)
	cfg := cl.config("a")
	cfg.Prefix = "app"
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	srv := cl.server(0, 0)
	if err := c.Set(ctx, &Item{Key: "user:1", Value: []byte("u")}); err != nil {
		t.Fatal(err)
	}
	if !holds(t, srv, "app:user:1", "u") {
		t.Fatal("prefixed key not on the server")
	}
	long := strings.Repeat("x", 300)
	if err := c.Set(ctx, &Item{Key: long, Value: []byte("l")}); !errors.Is(err, ErrMalformedKey) {
		t.Fatalf("long key without hashing: %v", err)
	}
	if !strings.Contains(fmt.Sprint(c.Set(ctx, &Item{Key: long})), "HashLongKeys") {
		t.Error("the error does not say how to allow long keys")
	}
	for _, bad := range []string{"", "has space", "ctl\x01"} {
		if _, err := c.Get(ctx, bad); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("key %q: %v", bad, err)
		}
	}
	cfg.HashLongKeys = true
	h := newTestClient(t, cfg)
	if err := h.Set(ctx, &Item{Key: long, Value: []byte("l")}); err != nil {
		t.Fatal(err)
	}
	// sha256("x"*300), base64url without padding: computed independently.
	const want = "app:" + "DU4sqenLztenpTgOsp4aN4O5ttDbct42oQUQOOHB-8c"
	if !holds(t, srv, want, "l") {
		t.Fatalf("hashed key %s not on the server", want)
	}
	if it, err := h.Get(ctx, long); err != nil || string(it.Value) != "l" || it.Key != long {
		t.Fatalf("get long: %+v %v", it, err)
	}
	// A key that fits exactly with its prefix is sent as is.
	edge := strings.Repeat("e", MaxKeyLen-len("app:"))
	if err := h.Set(ctx, &Item{Key: edge, Value: []byte("e")}); err != nil || !holds(t, srv, "app:"+edge, "e") {
		t.Fatalf("250-byte key: %v", err)
	}
}
