package load

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
)

func TestValueChecksum(t *testing.T) {
	key := []byte("k:0001")
	for _, n := range []int{0, 5, 16, 17, 1024} {
		v := make([]byte, n)
		FillValue(v, key, 42)
		if !CheckValue(v, key) {
			t.Fatalf("n=%d: fresh value fails its check", n)
		}
		if n >= MinVerifiable {
			if CheckValue(v, []byte("k:0002")) {
				t.Fatalf("n=%d: value passes for another key", n)
			}
			for _, i := range []int{0, 9, n - 1} {
				v[i] ^= 1
				if CheckValue(v, key) {
					t.Fatalf("n=%d: flipped byte %d undetected", n, i)
				}
				v[i] ^= 1
			}
			if CheckValue(v[:n-1], key) {
				t.Fatalf("n=%d: truncated value passes", n)
			}
		}
	}
}

func TestAppendKey(t *testing.T) {
	if got := string(AppendKey(nil, "k:", 42, 8)); got != "k:000042" {
		t.Fatalf("got %q", got)
	}
	if got := string(AppendKey(nil, "k:", 1234567, 4)); got != "k:1234567" {
		t.Fatalf("short size: %q", got)
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("get=0.9,set=0.1")
	if err != nil || m.Get != 0.9 || m.Set != 0.1 {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"get", "get=x", "put=1", "get=0", "get=-1"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	var n [numOps]int
	for i := 0; i < 10000; i++ {
		n[m.pick(r)]++
	}
	if n[OpGet] < 8800 || n[OpGet] > 9200 || n[OpGat] != 0 {
		t.Fatalf("pick counts %v", n)
	}
}

// TestRunAgainstMemcached drives a real memcached with each protocol and
// checks the generator's own accounting: preloaded keys are all hits, every
// value verifies, no errors.
func TestRunAgainstMemcached(t *testing.T) {
	m := mctest.StartTCP(t)
	for _, proto := range []string{"text", "meta", "binary"} {
		t.Run(proto, func(t *testing.T) {
			cfg := Config{Addr: m.Addr, Proto: proto, Conns: 4, Depth: 8, MultiGet: 5,
				Keys: 500, Prefix: proto[:1] + ":", ValueMin: 100, ValueMax: 300,
				Mix: Mix{Get: 0.8, Set: 0.2}, Duration: 700 * time.Millisecond, Verify: true}
			if err := Preload(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			res, err := Run(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops == 0 || res.Errors != 0 || res.IOErrors != 0 || res.VerifyFailed != 0 {
				t.Fatalf("ops=%d errors=%d io=%d verify=%d", res.Ops, res.Errors, res.IOErrors, res.VerifyFailed)
			}
			if res.Misses != 0 || res.Hits == 0 {
				t.Fatalf("hits=%d misses=%d after preload", res.Hits, res.Misses)
			}
			if res.PerOp["get"].Count == 0 || res.PerOp["set"].Count == 0 {
				t.Fatalf("per-op %+v", res.PerOp)
			}
		})
	}
}

// TestOpenLoopRate checks pacing by count, not by timing: an open-loop run
// at R requests/s for D seconds issues about R*D requests.
func TestOpenLoopRate(t *testing.T) {
	m := mctest.StartTCP(t)
	cfg := Config{Addr: m.Addr, Conns: 5, Keys: 100, ValueMin: 32, Mix: Mix{Get: 1},
		Rate: 2000, Duration: 2 * time.Second}
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops < 3600 || res.Ops > 4200 {
		t.Fatalf("open loop at 2000/s for 2s sent %d requests", res.Ops)
	}
	if res.Misses == 0 {
		t.Fatalf("cold keys should miss")
	}
}

// TestVerifyCatchesCorruption writes a wrong value behind the generator's
// back and expects the verifier to count it.
func TestVerifyCatchesCorruption(t *testing.T) {
	m := mctest.StartTCP(t)
	cfg := Config{Addr: m.Addr, Conns: 1, Keys: 1, KeySize: 8, Prefix: "v:", ValueMin: 64,
		Mix: Mix{Get: 1}, Duration: 300 * time.Millisecond, Verify: true}
	if err := Preload(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	c, err := newRawConn(m.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad := make([]byte, 64)
	FillValue(bad, []byte("v:000000"), 7)
	bad[40] ^= 0xff
	if _, err := c.Write(append(append([]byte("set v:000000 0 0 64\r\n"), bad...), "\r\n"...)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, _ := c.Read(buf); string(buf[:n]) != "STORED\r\n" {
		t.Fatalf("set: %q", buf[:n])
	}
	res, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.VerifyFailed == 0 || res.VerifyFailed != res.Hits {
		t.Fatalf("verify failed %d of %d hits", res.VerifyFailed, res.Hits)
	}
}
