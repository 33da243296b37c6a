package fleet

import (
	"fmt"
	"sync"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/moneta-cache/moneta/client/ketama"
	"github.com/moneta-cache/moneta/shared/mctest"
)

// setAll stores value(k) for every key through the memcached address a,
// with a few connections in parallel.
func setAll(t *testing.T, a string, keys []string, value func(string) []byte) {
	t.Helper()
	mc := memcache.New(a)
	mc.Timeout = timeout
	mc.MaxIdleConns = 8
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(keys); i += 8 {
				if err := mc.Set(&memcache.Item{Key: keys[i], Value: value(keys[i])}); err != nil {
					errs <- fmt.Errorf("set %s through %s: %w", keys[i], a, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// holding returns which of keys the memcached-protocol server at a holds.
func holding(t *testing.T, a string, keys []string) map[string]bool {
	t.Helper()
	mc := memcache.New(a)
	mc.Timeout = timeout
	found := map[string]bool{}
	for start := 0; start < len(keys); start += 100 {
		m, err := mc.GetMulti(keys[start:min(start+100, len(keys))])
		if err != nil {
			t.Fatalf("get from %s: %v", a, err)
		}
		for k := range m {
			found[k] = true
		}
	}
	return found
}

// Placement through a real nutcracker with 25 servers, a pool size where
// twemproxy gives each server 156 points instead of 160: every key lands on
// the server ketama.NewTwemproxy picks, and libketama's ring (ketama.New)
// would misplace some. The servers are named "10.0.0.i:11211" in the pool
// while they listen on loopback ports, as in deploy/nutcracker.yml where the
// name, not the dialled address, is what is hashed.
func TestPlacement25Servers(t *testing.T) {
	const n, nkeys = 25, 5000
	var servers []server
	var names, addrs []string
	for i := 0; i < n; i++ {
		m := mctest.StartTCP(t, "-m", "8", "-t", "1")
		name := fmt.Sprintf("10.0.0.%d:11211", i+1)
		servers = append(servers, server{addr: m.Addr, name: name})
		names, addrs = append(names, name), append(addrs, m.Addr)
	}
	// No ejection and a long timeout: a stall of the busy test machine must
	// not move keys to other servers while placement is measured.
	nc := startNutcracker(t, map[string][]server{"moneta": servers},
		map[string]any{"auto_eject_hosts": false, "timeout": 5000})
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("placement:%d", i)
	}
	setAll(t, nc.pools["moneta"], keys, func(k string) []byte { return []byte(k) })

	tw, lk := ketama.NewTwemproxy(names), ketama.New(names)
	where := map[string]int{}
	for i, a := range addrs {
		for k := range holding(t, a, keys) {
			if j, dup := where[k]; dup {
				t.Fatalf("%s on servers %d and %d", k, j, i)
			}
			where[k] = i
		}
	}
	agreeTw, agreeLk := 0, 0
	for _, k := range keys {
		got, ok := where[k]
		if !ok {
			t.Fatalf("%s stored through nutcracker but on no server", k)
		}
		if tw.Locate([]byte(k)) == got {
			agreeTw++
		}
		if lk.Locate([]byte(k)) == got {
			agreeLk++
		}
	}
	t.Logf("%d servers, %d keys: nutcracker and ketama.NewTwemproxy agree on %d, ketama.New on %d",
		n, nkeys, agreeTw, agreeLk)
	if agreeTw != nkeys {
		t.Fatalf("nutcracker and ketama.NewTwemproxy agree on %d of %d keys", agreeTw, nkeys)
	}
	if agreeLk == nkeys {
		t.Fatalf("libketama's ring agrees on every key at 25 servers: the 156-point case did not show")
	}
}
