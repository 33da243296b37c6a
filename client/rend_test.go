package client

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
)

// host is one real moneta host: rend in front of memcached (L1) and
// mnemonic (L2), with its regular and batch ports.
type host struct {
	regular, batch, l1 string
	rend               *exec.Cmd
}

// buildMoneta builds the rend and mnemonic binaries of this workspace.
func buildMoneta(t *testing.T) (rend, mnemonic string) {
	t.Helper()
	dir := t.TempDir()
	rend, mnemonic = filepath.Join(dir, "rend"), filepath.Join(dir, "mnemonic")
	for out, pkg := range map[string]string{
		rend:     "github.com/moneta-cache/moneta/rend/cmd/rend",
		mnemonic: "github.com/moneta-cache/moneta/mnemonic/cmd/mnemonic",
	} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return rend, mnemonic
}

// startProc runs a child process for the test's lifetime, logging to a
// file in the test's temp dir, and waits until ready answers version.
func startProc(t *testing.T, ready, path string, args ...string) *exec.Cmd {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(path)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	if err := mctest.WaitReady(ready, 10*time.Second); err != nil {
		b, _ := os.ReadFile(log.Name())
		t.Fatalf("%s not ready: %v\n%s", path, err, b)
	}
	return cmd
}

func startHost(t *testing.T, rendBin, mnemonicBin string) *host {
	t.Helper()
	dir := t.TempDir()
	l1 := mctest.Start(t, "-m", "64")
	l2 := "unix:" + filepath.Join(dir, "mn.sock")
	startProc(t, l2, mnemonicBin, "-listen", l2, "-data", filepath.Join(dir, "data"), "-shards", "2",
		"-admin", "", "-block-cache-bytes", strconv.Itoa(16<<20), "-write-buffer-bytes", strconv.Itoa(8<<20))
	h := &host{
		regular: "127.0.0.1:" + strconv.Itoa(mctest.FreePort(t)),
		batch:   "127.0.0.1:" + strconv.Itoa(mctest.FreePort(t)),
		l1:      l1.Addr,
	}
	h.rend = startProc(t, h.regular, rendBin, "-listen", h.regular, "-batch-listen", h.batch,
		"-l1", l1.Addr, "-l2", l2, "-admin", "")
	return h
}

// The client through real moneta hosts (rend + memcached + mnemonic) in two
// zones: replicated writes, chunked values, bulk loads through the batch
// port (which land in L2 without touching L1), and fallback when a host's
// rend dies.
func TestThroughRend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs rend and mnemonic")
	}
	rendBin, mnemonicBin := buildMoneta(t)
	hosts := []*host{startHost(t, rendBin, mnemonicBin), startHost(t, rendBin, mnemonicBin)}
	cfg := Config{
		Zones: []Zone{
			{Name: "a", Servers: []string{hosts[0].regular}, BatchServers: []string{hosts[0].batch}},
			{Name: "b", Servers: []string{hosts[1].regular}, BatchServers: []string{hosts[1].batch}},
		},
		LocalZone:    "a",
		Policy:       PolicyAll,
		BatchWrites:  BatchBulk,
		ReadTimeout:  time.Second,
		WriteTimeout: 3 * time.Second,
		ProbeMin:     20 * time.Millisecond,
		Logger:       testLogger(),
		getenv:       func(string) string { return "" },
	}
	c := newTestClient(t, cfg)
	ctx := ctxT(t)

	big := bytes.Repeat([]byte("0123456789"), 1000) // several rend chunks
	if err := c.Set(ctx, &Item{Key: "big", Value: big, Flags: 9}); err != nil {
		t.Fatal(err)
	}
	if it, err := c.Get(ctx, "big"); err != nil || !bytes.Equal(it.Value, big) || it.Flags != 9 {
		t.Fatalf("chunked round trip: %v", err)
	}
	if n, err := c.Incr(ctx, "nope", 1); err == nil {
		t.Fatalf("incr of a missing key: %d", n)
	}

	var items []*Item
	for i := 0; i < 50; i++ {
		items = append(items, &Item{Key: "bulk" + key(i), Value: []byte("loaded")})
	}
	if err := c.SetMulti(ctx, items); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		for _, it := range items {
			// The batch port wrote L2 only: L1 (the hot set) is untouched.
			if v, ok := dialRaw(t, h.l1).get(t, it.Key); ok {
				t.Fatalf("bulk write reached L1 of %s: %q", h.regular, v)
			}
		}
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	if m, err := c.GetMulti(ctx, keys); err != nil || len(m) != len(keys) {
		t.Fatalf("bulk-loaded keys through the regular port: %d of %d, %v", len(m), len(keys), err)
	}

	// rend of zone a dies: reads fall back to zone b without an error.
	hosts[0].rend.Process.Kill()
	hosts[0].rend.Wait()
	for _, k := range append(keys, "big") {
		if _, err := c.Get(ctx, k); err != nil {
			t.Fatalf("get %s with zone a's rend gone: %v", k, err)
		}
	}
	if s := c.Stats(); s.FallbackHits == 0 {
		t.Fatalf("no fallback hits: %+v", s)
	}
}
