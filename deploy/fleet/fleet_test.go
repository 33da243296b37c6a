package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/moneta-cache/moneta/client"
	"github.com/moneta-cache/moneta/client/ketama"
	"github.com/moneta-cache/moneta/shared/mctest"
)

// timeout bounds one request of the tests' memcached clients: generous,
// because the machine running the tests may be busy.
const timeout = 5 * time.Second

// fleetValue is the value of key at write sequence seq: it names both, so a
// value read for the wrong key or from a lost write cannot pass as right.
// Every 20th key is large enough to be stored in rend's L1 as chunks.
func fleetValue(key string, idx int, seq int64) []byte {
	v := []byte(key + "|" + strconv.FormatInt(seq, 10) + "|")
	size := 100
	if idx%20 == 0 {
		size = 4000
	}
	for len(v) < size {
		v = append(v, byte('a'+len(v)%26))
	}
	return v
}

// keyState is the test's model of one key. A write that failed may or may
// not have been applied (rend can die after mnemonic stored it), so until
// the next acknowledged write both sequences are acceptable.
type keyState struct {
	seq, maybe int64 // maybe is -1 when there is no doubt
}

func (s keyState) accepts(v []byte, key string, idx int) bool {
	return bytes.Equal(v, fleetValue(key, idx, s.seq)) ||
		(s.maybe >= 0 && bytes.Equal(v, fleetValue(key, idx, s.maybe)))
}

// phaseCounts are one load phase's outcomes, split by whether the key lives
// on the host that was killed ("victim") or on the others ("live").
type phaseCounts struct {
	ops, liveErrs, victimErrs, liveMisses, victimMisses, mismatches atomic.Int64
	firstMismatch                                                   atomic.Value // string
}

// Three moneta hosts (memcached + mnemonic + rend each) behind a real
// nutcracker configured from deploy/nutcracker.yml:
//   - placement: keys written through nutcracker are on the host the Go
//     client picks (checked on each host directly and through the client), and
//     keys written by the client are read back through nutcracker;
//   - verified load through nutcracker while one host's rend is killed:
//     nutcracker ejects it, keys on the other hosts keep being served with no
//     error and no wrong value, the victim's keys become misses;
//   - the rend is restarted: nutcracker takes the host back and its keys
//     come back with their values, which are also in its mnemonic.
func TestFleetBehindNutcracker(t *testing.T) {
	hosts := make([]*mctest.Host, 3)
	var servers, batch []server
	var names, addrs []string
	for i := range hosts {
		hosts[i] = mctest.StartHost(t, bin.Binaries, 32)
		// Slot names, as in deploy/nutcracker.yml: the ring hashes these.
		name := fmt.Sprintf("moneta-%d", i+1)
		servers = append(servers, server{addr: hosts[i].Regular, name: name})
		batch = append(batch, server{addr: hosts[i].Batch, name: name})
		names = append(names, name)
		addrs = append(addrs, hosts[i].Regular)
	}
	// server_retry_timeout is shortened from the shipped 10 s so that the
	// restarted host rejoins within the test's time budget; timeout is
	// raised from 500 ms so that a stall of the busy test machine is not
	// taken for a failing host (only the kill should eject one).
	nc := startNutcracker(t, map[string][]server{"moneta": servers, "moneta_batch": batch},
		map[string]any{"server_retry_timeout": 1000, "timeout": 5000})
	proxy := nc.pools["moneta"]
	ring := ketama.NewTwemproxy(names)

	const nkeys = 3000
	keys := make([]string, nkeys)
	owner := make([]int, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("fleet:%05d", i)
		owner[i] = ring.Locate([]byte(keys[i]))
	}
	index := map[string]int{}
	for i, k := range keys {
		index[k] = i
	}
	setAll(t, proxy, keys, func(k string) []byte { return fleetValue(k, index[k], 0) })

	// Placement, checked on the hosts themselves: each key is on its owner.
	agree := 0
	for h, host := range hosts {
		var mine []string
		for i, k := range keys {
			if owner[i] == h {
				mine = append(mine, k)
			}
		}
		agree += len(holding(t, host.Regular, mine))
		if others := holding(t, host.Regular, keys); len(others) != len(mine) {
			t.Fatalf("host %d holds %d keys, %d of them its own", h, len(others), len(mine))
		}
	}
	// ... and through the Go client, which reads only the server it places
	// a key on: a miss would be a disagreement.
	c, err := client.New(client.Config{
		Zones:       []client.Zone{{Name: "a", Servers: addrs, RingNames: names, Continuum: "twemproxy"}},
		LocalZone:   "a",
		ReadTimeout: timeout, BulkReadTimeout: timeout, WriteTimeout: timeout,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	viaClient := 0
	for start := 0; start < nkeys; start += 100 {
		m, err := c.GetMulti(ctx, keys[start:min(start+100, nkeys)])
		if err != nil {
			t.Fatal(err)
		}
		viaClient += len(m)
	}
	var clientKeys []string
	for i := 0; i < 1000; i++ {
		k := fmt.Sprintf("fromclient:%d", i)
		if err := c.Set(ctx, &client.Item{Key: k, Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
		clientKeys = append(clientKeys, k)
	}
	viaProxy := len(holding(t, proxy, clientKeys))
	t.Logf("placement, 3 hosts: %d/%d nutcracker-written keys on the host ketama.NewTwemproxy picks, "+
		"%d/%d found by the Go client; %d/%d client-written keys found through nutcracker",
		agree, nkeys, viaClient, nkeys, viaProxy, len(clientKeys))
	if agree != nkeys || viaClient != nkeys || viaProxy != len(clientKeys) {
		t.Fatal("nutcracker and the Go client place keys differently")
	}

	// The batch pool reaches the same hosts: a key loaded through it is read
	// through the regular pool.
	setAll(t, nc.pools["moneta_batch"], []string{"fleet:batch"}, func(k string) []byte { return []byte("bulk") })
	if got := holding(t, proxy, []string{"fleet:batch"}); !got["fleet:batch"] {
		t.Fatal("a key loaded through the batch pool is not read through the regular pool")
	}

	// Verified load through nutcracker.
	const victim = 1
	states := make([]keyState, nkeys)
	for i := range states {
		states[i] = keyState{seq: 0, maybe: -1}
	}
	var (
		phases     [5]phaseCounts
		transition phaseCounts  // ops that started in one phase and ended in another
		phase      atomic.Int32 // index into phases
		down       atomic.Bool  // the victim is (being) killed: no new writes to its keys
		stop       atomic.Bool
		wg         sync.WaitGroup
		workers    = 8
	)
	phaseNames := [...]string{"before kill", "kill to eject", "ejected", "restart to rejoin", "after rejoin"}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mc := memcache.New(proxy)
			mc.Timeout = timeout
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for !stop.Load() {
				// Worker w owns keys w, w+workers, ...: it alone writes
				// them, so its model of them is exact.
				i := w + workers*rng.IntN(nkeys/workers)
				k, onVictim := keys[i], owner[i] == victim
				// An op counts in a phase only if it started and ended
				// in it: one that spans a change (the kill, the rejoin)
				// could see either side and goes to "transition".
				started := phase.Load()
				at := func() *phaseCounts {
					if now := phase.Load(); now == started {
						return &phases[now]
					}
					return &transition
				}
				if rng.IntN(5) == 0 && !(onVictim && down.Load()) {
					seq := states[i].seq + 1
					err := mc.Set(&memcache.Item{Key: k, Value: fleetValue(k, i, seq)})
					pc := at()
					pc.ops.Add(1)
					if err != nil {
						states[i].maybe = seq
						pc.failed(onVictim)
						continue
					}
					states[i] = keyState{seq: seq, maybe: -1}
					continue
				}
				it, err := mc.Get(k)
				pc := at()
				pc.ops.Add(1)
				switch {
				case errors.Is(err, memcache.ErrCacheMiss):
					if onVictim {
						pc.victimMisses.Add(1)
					} else {
						pc.liveMisses.Add(1)
					}
				case err != nil:
					pc.failed(onVictim)
				case !states[i].accepts(it.Value, k, i):
					if pc.mismatches.Add(1) == 1 {
						pc.firstMismatch.Store(fmt.Sprintf("%s: got %.40q, model %+v", k, it.Value, states[i]))
					}
				}
			}
		}()
	}
	run := func(p int32, d time.Duration) time.Duration {
		phase.Store(p)
		start := time.Now()
		time.Sleep(d) // a load phase of fixed length, not synchronisation
		return time.Since(start)
	}
	var took [5]time.Duration
	took[0] = run(0, 1500*time.Millisecond)

	phase.Store(1)
	start := time.Now()
	down.Store(true)
	ejectsBefore := counter(nc.poolStats(t, "moneta"), "server_ejects")
	hosts[victim].Rend.Stop()
	mctest.Eventually(t, 20*time.Second, "nutcracker to eject the killed host", func() bool {
		return counter(nc.poolStats(t, "moneta"), "server_ejects") > ejectsBefore
	})
	took[1] = time.Since(start)
	took[2] = run(2, 1500*time.Millisecond)

	phase.Store(3)
	start = time.Now()
	hosts[victim].Rend.Start()
	probe := memcache.New(proxy)
	probe.Timeout = timeout
	var probeKey string
	for i := range keys {
		if owner[i] == victim && i%workers == 0 {
			probeKey = keys[i]
			break
		}
	}
	mctest.Eventually(t, 20*time.Second, "the restarted host to rejoin", func() bool {
		it, err := probe.Get(probeKey)
		return err == nil && len(it.Value) > 0
	})
	took[3] = time.Since(start)
	down.Store(false)
	took[4] = run(4, 1000*time.Millisecond)
	stop.Store(true)
	wg.Wait()

	for p := range phases {
		pc := &phases[p]
		ops := pc.ops.Load()
		t.Logf("%-18s %6.2fs %7d ops %8.0f ops/s  live: %d errors %d misses  victim: %d errors %d misses  wrong values %d",
			phaseNames[p], took[p].Seconds(), ops, float64(ops)/took[p].Seconds(),
			pc.liveErrs.Load(), pc.liveMisses.Load(), pc.victimErrs.Load(), pc.victimMisses.Load(), pc.mismatches.Load())
		if m := pc.mismatches.Load(); m > 0 {
			t.Errorf("%s: %d wrong values, first: %v", phaseNames[p], m, pc.firstMismatch.Load())
		}
		if e, m := pc.liveErrs.Load(), pc.liveMisses.Load(); e > 0 || m > 0 {
			t.Errorf("%s: keys on the live hosts: %d errors, %d misses", phaseNames[p], e, m)
		}
	}
	t.Logf("%-18s %7s %7d ops                live: %d errors %d misses  victim: %d errors %d misses  wrong values %d",
		"across changes", "", transition.ops.Load(), transition.liveErrs.Load(), transition.liveMisses.Load(),
		transition.victimErrs.Load(), transition.victimMisses.Load(), transition.mismatches.Load())
	if m := transition.mismatches.Load(); m > 0 {
		t.Errorf("across phase changes: %d wrong values, first: %v", m, transition.firstMismatch.Load())
	}
	if e := transition.liveErrs.Load(); e > 0 {
		t.Errorf("across phase changes: %d errors on keys of the live hosts", e)
	}
	if p := &phases[0]; p.victimErrs.Load()+p.victimMisses.Load() > 0 || p.ops.Load() == 0 {
		t.Errorf("before the kill: %d ops, %d errors, %d misses", p.ops.Load(), p.victimErrs.Load(), p.victimMisses.Load())
	}
	if p := &phases[2]; p.victimMisses.Load() == 0 {
		t.Errorf("while ejected: the victim's keys were never answered as misses by the other hosts")
	}
	if p := &phases[4]; p.victimErrs.Load()+p.victimMisses.Load() > 0 {
		t.Errorf("after rejoin: the victim's keys: %d errors, %d misses", p.victimErrs.Load(), p.victimMisses.Load())
	}

	// Every key has its latest value through nutcracker, and the victim's
	// keys are in its mnemonic (L2, which outlived the rend process).
	final := memcache.New(proxy)
	final.Timeout = timeout
	var victimKeys []string
	for start := 0; start < nkeys; start += 100 {
		batchKeys := keys[start:min(start+100, nkeys)]
		m, err := final.GetMulti(batchKeys)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range batchKeys {
			i := index[k]
			it, ok := m[k]
			if !ok || !states[i].accepts(it.Value, k, i) {
				t.Fatalf("final read of %s (host %d): found %v, model %+v", k, owner[i], ok, states[i])
			}
			if owner[i] == victim {
				victimKeys = append(victimKeys, k)
			}
		}
	}
	inL2 := holding(t, mnemonicAddr(hosts[victim]), victimKeys)
	t.Logf("after rejoin: all %d keys verified through nutcracker; %d/%d of the victim's keys in its mnemonic",
		nkeys, len(inL2), len(victimKeys))
	if len(inL2) != len(victimKeys) {
		t.Fatalf("the victim's mnemonic holds %d of its %d keys", len(inL2), len(victimKeys))
	}
}

func (pc *phaseCounts) failed(onVictim bool) {
	if onVictim {
		pc.victimErrs.Add(1)
	} else {
		pc.liveErrs.Add(1)
	}
}

// mnemonicAddr is the host's mnemonic socket in the form gomemcache dials.
func mnemonicAddr(h *mctest.Host) string {
	return strings.TrimPrefix(h.Mnemonic.Ready, "unix:")
}
