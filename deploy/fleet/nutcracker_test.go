package fleet

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/moneta-cache/moneta/shared/mctest"
)

// bin holds what TestMain prepares once per test binary (package state
// because TestMain has no other way to hand it to the tests).
var bin struct {
	mctest.Binaries
	nutcracker string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	nc, err := exec.LookPath("nutcracker")
	if err != nil {
		nc = "/usr/sbin/nutcracker" // Debian's path, not on a non-root PATH
	}
	if _, err := os.Stat(nc); err != nil {
		// Fail, not skip: CI must not pass without the fleet test having run.
		fmt.Fprintln(os.Stderr, "FAIL: nutcracker (twemproxy) is not installed; run scripts/deps.sh "+
			"as root or apt-get install nutcracker")
		return 1
	}
	bin.nutcracker = nc
	dir, err := os.MkdirTemp("", "fleet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin.Binaries, err = mctest.BuildMoneta(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// server is one backend line of a nutcracker pool: the address nutcracker
// dials and the name it hashes onto the ring.
type server struct {
	addr, name string
}

// nutcracker is a running nutcracker owned by a test.
type nutcracker struct {
	proc  *mctest.Proc
	stats string            // stats address: a JSON dump per connection
	pools map[string]string // pool name -> listen address
}

// startNutcracker runs nutcracker with deploy/nutcracker.yml as shipped,
// except for each pool's listen address (a free loopback port), its server
// list (pools[name]), and the overrides (setting -> value, for every pool;
// the tests shorten server_retry_timeout). Pools not in servers are dropped.
func startNutcracker(t *testing.T, servers map[string][]server, overrides map[string]any) *nutcracker {
	t.Helper()
	b, err := os.ReadFile("../nutcracker.yml")
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]map[string]any
	if err := yaml.Unmarshal(b, &conf); err != nil {
		t.Fatalf("deploy/nutcracker.yml: %v", err)
	}
	n := &nutcracker{pools: map[string]string{}}
	for name, pool := range conf {
		list, ok := servers[name]
		if !ok {
			delete(conf, name)
			continue
		}
		n.pools[name] = fmt.Sprintf("127.0.0.1:%d", mctest.FreePort(t))
		pool["listen"] = n.pools[name]
		var lines []string
		for _, s := range list {
			lines = append(lines, s.addr+":1 "+s.name)
		}
		pool["servers"] = lines
		for k, v := range overrides {
			pool[k] = v
		}
	}
	if len(n.pools) != len(servers) {
		t.Fatalf("deploy/nutcracker.yml has pools %v, the test wants %v", n.pools, servers)
	}
	out, err := yaml.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "nutcracker.yml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin.nutcracker, "-t", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("nutcracker -t: %v\n%s\n%s", err, b, out)
	}
	statsPort := mctest.FreePort(t)
	n.stats = fmt.Sprintf("127.0.0.1:%d", statsPort)
	// Ready when a pool answers version, which nutcracker forwards to one of
	// its servers: the proxy listens and reaches a backend.
	var ready string
	for _, a := range n.pools {
		ready = a
		break
	}
	n.proc = mctest.StartProc(t, "nutcracker", ready, bin.nutcracker, "-c", file,
		"-s", strconv.Itoa(statsPort), "-a", "127.0.0.1", "-i", "100",
		"-p", filepath.Join(dir, "nutcracker.pid"), "-o", filepath.Join(dir, "nutcracker.log"))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "nutcracker.log"))
			t.Logf("nutcracker log:\n%s", b)
		}
	})
	return n
}

// poolStats reads nutcracker's stats dump and returns one pool's object:
// pool counters (server_ejects, ...) and one object per server name.
func (n *nutcracker) poolStats(t *testing.T, pool string) map[string]any {
	t.Helper()
	c, err := net.DialTimeout("tcp", n.stats, 5*time.Second)
	if err != nil {
		t.Fatalf("nutcracker stats: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("nutcracker stats: %v", err)
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatalf("nutcracker stats: %v\n%s", err, b)
	}
	p, ok := all[pool].(map[string]any)
	if !ok {
		t.Fatalf("nutcracker stats: no pool %q in %s", pool, b)
	}
	return p
}

// counter reads a numeric field of a stats object (0 when absent).
func counter(obj map[string]any, name string) int64 {
	f, _ := obj[name].(float64)
	return int64(f)
}
