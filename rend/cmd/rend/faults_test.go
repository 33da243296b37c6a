package main

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/binproto"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Faults between rend's two layers: L2 refusing a write, L2 stalling under
// writes, rend dying between its steps. The invariant under test (README
// "Faults"): L1 never serves a value L2 no longer holds.

// l2Value reads key straight from mnemonic ("" and false on a miss).
func (s *stack) l2Value(t *testing.T, key string) (string, bool) {
	t.Helper()
	r := call(t, s.l2, protocol.CmdGet, key, nil)
	if len(r.Hits) == 0 {
		return "", false
	}
	return string(r.Hits[0].Value), true
}

// inL1 reports whether memcached holds key's header.
func (s *stack) inL1(t *testing.T, key string) bool {
	t.Helper()
	_, _, ok := l1Header(t, s.l1, key)
	return ok
}

// sameAsL2 reads key through rend twice (the second read may come from a
// fill made by the first) and fails unless both answer what mnemonic holds.
func (s *stack) sameAsL2(t *testing.T, c *conn, key string) {
	t.Helper()
	want, wantOK := s.l2Value(t, key)
	for i := 0; i < 2; i++ {
		v, _, _, ok := c.get(key)
		if ok != wantOK || string(v) != want {
			t.Errorf("%s: rend served %q (hit %v), mnemonic holds %q (hit %v)", key, v, ok, want, wantOK)
			return
		}
	}
}

// TestL2RefusalLeavesNoL1Copy (issue 10 item 2): a set that mnemonic
// refuses as too large makes mnemonic drop the key (as memcached does), so
// rend must not keep serving the old value from L1 — for text set, ms and
// binary SET, on both ports. Refusals that leave L2's item as it was
// (NOT_STORED, EXISTS) keep the key readable with L2's value.
func TestL2RefusalLeavesNoL1Copy(t *testing.T) {
	s := newL1L2Stack(t, "64", []string{"-max-item-size", "4096"})
	big := pattern(5000, 3) // above mnemonic's limit, far below rend's

	for _, port := range []struct{ name, addr string }{{"regular", s.rend.regular}, {"batch", s.rend.batch}} {
		c := dial(t, port.addr)
		prime := func(key string) {
			t.Helper()
			// Written and read on the regular port so that L1 has a copy.
			r := dial(t, s.rend.regular)
			r.set(key, []byte("old"), 0, 0)
			r.get(key)
			if !s.inL1(t, key) {
				t.Fatalf("%s: test setup: no L1 copy", key)
			}
		}
		gone := func(key string) {
			t.Helper()
			if _, ok := s.l2Value(t, key); ok {
				t.Fatalf("%s: mnemonic kept the key after a too-large set", key)
			}
			if s.inL1(t, key) {
				t.Errorf("%s: L1 still holds a copy", key)
			}
			s.sameAsL2(t, c, key)
		}

		k := port.name + "-text"
		prime(k)
		c.send(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", k, len(big), big))
		if l := c.line(); l != "SERVER_ERROR object too large for cache" {
			t.Fatalf("%s: too-large set answered %q", k, l)
		}
		gone(k)

		k = port.name + "-meta"
		prime(k)
		c.send(fmt.Sprintf("ms %s %d T0\r\n%s\r\n", k, len(big), big))
		if l := c.line(); !strings.HasPrefix(l, "SERVER_ERROR ") {
			t.Fatalf("%s: too-large ms answered %q", k, l)
		}
		gone(k)

		k = port.name + "-binary"
		prime(k)
		b := dialBinary(t, port.addr)
		if r := b.roundTrip(binproto.AppendStore(nil, binproto.OpSet, []byte(k), big, 0, 0, 0, 5)); r.Status == binproto.StatusOK {
			t.Fatalf("%s: too-large binary set stored", k)
		}
		gone(k)

		// Refusals that leave L2's item alone leave the key readable.
		k = port.name + "-kept"
		prime(k)
		c.expect(fmt.Sprintf("add %s 0 0 1\r\nx\r\n", k), "NOT_STORED")
		c.expect(fmt.Sprintf("cas %s 0 0 1 1\r\nx\r\n", k), "EXISTS")
		if v, _, _, ok := c.get(k); !ok || string(v) != "old" {
			t.Fatalf("%s: after refused add/cas: %q %v", k, v, ok)
		}
		s.sameAsL2(t, c, k)
	}
}

// TestL2StallLeavesNoStaleL1 (issue 11 item 3): with mnemonic stopped
// (SIGSTOP), every kind of write times out in rend; mnemonic applies them
// when it resumes. Afterwards rend must serve what mnemonic holds, never
// the L1 copy from before the write.
func TestL2StallLeavesNoStaleL1(t *testing.T) {
	s := newStack(t, true, "-backend-timeout", "300ms")
	c := dial(t, s.rend.regular)
	type write struct {
		key, req string
	}
	var writes []write
	add := func(key, req string) { writes = append(writes, write{key, strings.ReplaceAll(req, "K", key)}) }
	add("st-set", "set K 0 0 2\r\nv2\r\n")
	add("st-replace", "replace K 0 0 2\r\nv2\r\n")
	add("st-append", "append K 0 0 2\r\nv2\r\n")
	add("st-prepend", "prepend K 0 0 2\r\nv2\r\n")
	add("st-incr", "incr K 5\r\n")
	add("st-decr", "decr K 5\r\n")
	add("st-delete", "delete K\r\n")
	add("st-touch", "touch K -1\r\n")
	add("st-ms", "ms K 2 T0\r\nv2\r\n")
	add("st-ma", "ma K\r\n")
	add("st-md", "md K\r\n")
	add("st-cas", "") // filled in below with the key's CAS
	for _, w := range writes {
		c.set(w.key, []byte("10"), 0, 0)
		c.get(w.key) // an L1 copy to go stale
		if !s.inL1(t, w.key) {
			t.Fatalf("%s: test setup: no L1 copy", w.key)
		}
	}
	_, _, cas, _ := c.get("st-cas")
	writes[len(writes)-1].req = fmt.Sprintf("cas st-cas 0 0 2 %d\r\nv2\r\n", cas)

	pid := s.mn.Pid()
	resume := sigstop(t, pid)
	stoppedAt := time.Now()
	var wg sync.WaitGroup
	for _, w := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc := dial(t, s.rend.regular)
			wc.send(w.req)
			if l := wc.line(); !strings.HasPrefix(l, "SERVER_ERROR ") {
				t.Errorf("%q with L2 stopped answered %q after %v (state %c)", w.req, l, time.Since(stoppedAt), mctest.ProcState(pid))
			}
		}()
	}
	wg.Wait()
	// Reads while L2 is stopped must not serve the old L1 copies either.
	c.send("get st-set\r\n")
	if l := c.line(); l != "SERVER_ERROR L2 unavailable" {
		t.Fatalf("read of a key whose write timed out, L2 stopped: %q", l)
	}
	resume()

	// rend's L2 connections may be in reconnect backoff for a moment.
	eventually(t, 10*time.Second, "rend to read from mnemonic again", func() bool {
		c.send("get st-other\r\n")
		return c.line() == "END"
	})
	// mnemonic applies the writes that reached its socket before rend gave
	// up on them; which ones did depends on timing (once rend's breaker
	// opens, later writes fail without being sent), so wait until mnemonic's
	// values stop changing, then insist that some write was applied (if
	// none was, the test would prove nothing: fail loudly).
	snapshot := func() (vals string, applied int) {
		var b strings.Builder
		for _, w := range writes {
			v, ok := s.l2Value(t, w.key)
			fmt.Fprintf(&b, "%s=%q/%v ", w.key, v, ok)
			if v != "10" || !ok {
				applied++
			}
		}
		return b.String(), applied
	}
	prev, _ := snapshot()
	eventually(t, 10*time.Second, "mnemonic to apply the queued writes", func() bool {
		time.Sleep(200 * time.Millisecond)
		cur, applied := snapshot()
		settled := cur == prev && applied > 0
		prev = cur
		return settled
	})
	t.Logf("in mnemonic after the stall: %s", prev)
	for _, w := range writes {
		s.sameAsL2(t, c, w.key)
	}
	if t.Failed() {
		t.Logf("rend log:\n%s", s.rend.Log())
	}
}

// sigstop stops pid and waits until the kernel reports it stopped (every
// thread of a process has to reach the stop).
// sigstop stops pid and returns the function that resumes it (once); the
// test's cleanup resumes it too if the test fails before it does, ahead
// of the harness's own cleanup, which runs later (registered earlier).
func sigstop(t *testing.T, pid int) (resume func()) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume = func() {
		if resumed {
			return
		}
		resumed = true
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Errorf("resuming %d: %v", pid, err)
		}
	}
	t.Cleanup(resume)
	eventually(t, 10*time.Second, "process to stop", func() bool { return mctest.ProcState(pid) == 'T' })
	return resume
}

// TestKillRendMidWrite (issue 11 item 4): rend killed with SIGKILL while
// writes are in flight, then restarted: every key reads through rend
// exactly as mnemonic holds it, although L1 (memcached) kept running.
func TestKillRendMidWrite(t *testing.T) {
	s := newStack(t, true)
	const writers, keysPer, rounds = 4, 3, 6
	key := func(w, i int) string { return fmt.Sprintf("kw-%d-%d", w, i) }
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		done := 0
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dial(t, s.rend.regular)
				for n := 0; ; n++ {
					k := key(w, n%keysPer)
					var req string
					switch n % 5 {
					case 0, 1:
						v := fmt.Sprintf("r%d-n%d", round, n)
						req = fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", k, len(v), v)
					case 2:
						req = fmt.Sprintf("append %s 0 0 2\r\n+%d\r\n", k, n%10)
					case 3:
						req = fmt.Sprintf("delete %s\r\n", k)
					case 4:
						req = fmt.Sprintf("touch %s 0\r\n", k)
					}
					c.NC.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.NC.Write([]byte(req)); err != nil {
						return // rend was killed
					}
					if _, err := c.R.ReadString('\n'); err != nil {
						return
					}
					if n == 30 {
						mu.Lock()
						done++
						mu.Unlock()
					}
				}
			}()
		}
		eventually(t, 20*time.Second, "writers under way", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return done == writers
		})
		s.rend.Stop() // SIGKILL, mid-write for several writers
		wg.Wait()
		s.rend.Start()
		c := dial(t, s.rend.regular)
		for w := 0; w < writers; w++ {
			for i := 0; i < keysPer; i++ {
				s.sameAsL2(t, c, key(w, i))
			}
		}
		if t.Failed() {
			t.Fatalf("stale L1 copies after kill -9 in round %d", round)
		}
	}
}

// healthz returns /healthz's status code and body.
func healthz(t *testing.T, admin string) (int, string) {
	t.Helper()
	return mctest.Get(t, "http://"+admin+"/healthz")
}

// TestFrozenL1FallsBackToL2 (issue 11 item 5): memcached SIGSTOPped under
// rend. The backend timeout is 30 s, so without L1's circuit breaker every
// request would wait 30 s (past this test's 20 s client deadline); with it,
// after one stall of l1_stall_timeout reads and writes go to L2 alone.
// /healthz, stats and metrics show the open breaker. After SIGCONT the
// breaker closes by itself, L1 is used again, and the keys written during
// the freeze (whose old copies L1 still holds) are never served stale.
func TestFrozenL1FallsBackToL2(t *testing.T) {
	s := newStack(t, true, "-backend-timeout", "30s", "-l1-stall-timeout", "300ms", "-breaker-open", "200ms")
	c := dial(t, s.rend.regular)
	keys := []string{"fz-a", "fz-b", "fz-c"}
	for _, k := range keys {
		c.set(k, []byte("before"), 0, 0)
		c.get(k) // hot in L1
	}
	pid := s.mc.Pid()
	resume := sigstop(t, pid)
	start := time.Now()
	for _, k := range keys {
		c.set(k, []byte("during"), 0, 0)
		if v, _, _, ok := c.get(k); !ok || string(v) != "during" {
			t.Fatalf("%s with L1 frozen: %q %v", k, v, ok)
		}
	}
	t.Logf("6 requests with L1 frozen took %v (l1_stall_timeout 300ms)", time.Since(start))
	if code, body := healthz(t, s.rend.admin); code != 503 || !strings.Contains(body, `"breaker":"open"`) && !strings.Contains(body, `"breaker":"half_open"`) {
		t.Fatalf("healthz with L1 frozen: %d %s", code, body)
	}
	if st := c.stats(""); st["l1_breaker"] == "closed" || st["l1_breaker_opens"] != "1" || st["l2_breaker"] != "closed" {
		t.Fatalf("stats: l1_breaker %q opens %q, l2_breaker %q", st["l1_breaker"], st["l1_breaker_opens"], st["l2_breaker"])
	}
	if m := scrape(t, s.rend.admin); m[`rend_backend_breaker_state{layer="l1"}`] == 0 || m[`rend_backend_breaker_opens_total{layer="l1"}`] != 1 {
		t.Fatalf("metrics: state %v opens %v", m[`rend_backend_breaker_state{layer="l1"}`], m[`rend_backend_breaker_opens_total{layer="l1"}`])
	}

	resume()
	eventually(t, 10*time.Second, "L1's breaker to close", func() bool {
		code, body := healthz(t, s.rend.admin)
		return code == 200 && strings.Contains(body, `"breaker":"closed"`)
	})
	eventually(t, 10*time.Second, "pending L1 deletes to land", func() bool {
		return c.stats("")["l1_pending_invalidations"] == "0"
	})
	for _, k := range keys {
		s.sameAsL2(t, c, k)
	}
	// L1 serves again: a read fills it, the next one hits it.
	hits := func() string { return c.stats("")["l1_hits"] }
	before := hits()
	c.get("fz-a")
	c.get("fz-a")
	if hits() == before {
		t.Fatal("no L1 hit after recovery")
	}
}
