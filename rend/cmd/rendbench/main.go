// Command rendbench measures two things about rend, for rend/README.md:
//
//  1. Memory per idle client connection: it opens -idle connections to a rend
//     (L1-only, in front of a fresh memcached), has each send one request so
//     it has been through a request burst, and reports the growth of rend's
//     resident set divided by the connection count.
//  2. A first throughput ratio, rend L1-only vs memcached direct: the same
//     closed-loop text-protocol client (-conns connections, each one request
//     at a time, -gets of them get and the rest set, -value byte values over
//     -keys keys) runs against memcached directly and against rend in front
//     of the same memcached, alternating -rounds times in one run.
//
// It starts memcached and rend itself:
//
//	go build -o /tmp/rend ./rend/cmd/rend && go run ./rend/cmd/rendbench -rend /tmp/rend
//
// This is a smoke measurement, not the load generator (bench/ has that).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	rendBin := flag.String("rend", "bin/rend", "rend binary")
	mcBin := flag.String("memcached", "memcached", "memcached binary")
	idle := flag.Int("idle", 10000, "idle connections for the memory measurement (0: skip)")
	conns := flag.Int("conns", 32, "client connections for the throughput runs")
	dur := flag.Duration("duration", 3*time.Second, "length of each throughput run")
	rounds := flag.Int("rounds", 2, "alternating rounds per target")
	gets := flag.Float64("gets", 0.9, "fraction of requests that are gets")
	valueSize := flag.Int("value", 100, "value size in bytes")
	keys := flag.Int("keys", 10000, "key space")
	flag.Parse()
	if err := run(*rendBin, *mcBin, *idle, *conns, *dur, *rounds, *gets, *valueSize, *keys); err != nil {
		fmt.Fprintln(os.Stderr, "rendbench:", err)
		os.Exit(1)
	}
}

func run(rendBin, mcBin string, idle, conns int, dur time.Duration, rounds int, gets float64, valueSize, keys int) error {
	dir, err := os.MkdirTemp("", "rendbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mcSock := filepath.Join(dir, "mc.sock")
	mcPort, rendPort := freePort(), freePort()
	args := []string{"-s", mcSock, "-a", "0700", "-m", "1024", "-t", "2"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	// memcached serves rend on a Unix socket and the direct client on TCP:
	// memcached cannot listen on both at once, so two processes with the
	// same settings.
	mcUnix, err := start(mcBin, args...)
	if err != nil {
		return err
	}
	defer stop(mcUnix)
	tcpArgs := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(mcPort), "-U", "0", "-m", "1024", "-t", "2"}
	if os.Geteuid() == 0 {
		tcpArgs = append(tcpArgs, "-u", "root")
	}
	mcTCP, err := start(mcBin, tcpArgs...)
	if err != nil {
		return err
	}
	defer stop(mcTCP)
	rendAddr := "127.0.0.1:" + strconv.Itoa(rendPort)
	rend, err := start(rendBin, "-listen", rendAddr, "-l1", "unix:"+mcSock, "-admin", "", "-log-level", "warn")
	if err != nil {
		return err
	}
	defer stop(rend)
	mcAddr := "127.0.0.1:" + strconv.Itoa(mcPort)
	for _, a := range []string{mcAddr, rendAddr} {
		if err := waitReady(a); err != nil {
			return err
		}
	}
	fmt.Printf("host: %d CPUs; memcached %s (-t 2); rend %s\n", numCPU(), mcVersion(mcAddr), mcVersion(rendAddr))

	if idle > 0 {
		per, base, after, err := idleMemory(rend.Process.Pid, rendAddr, idle)
		if err != nil {
			return err
		}
		fmt.Printf("idle connections: %d; rend RSS %.1f MiB -> %.1f MiB; %.1f KiB per idle connection\n",
			idle, float64(base)/(1<<20), float64(after)/(1<<20), per/1024)
	}

	fmt.Printf("throughput: %d conns, closed loop, %.0f%% gets, %d B values, %d keys, %v x %d rounds each\n",
		conns, gets*100, valueSize, keys, dur, rounds)
	var direct, via float64
	for r := 0; r < rounds; r++ {
		d, err := throughput(mcAddr, conns, dur, gets, valueSize, keys)
		if err != nil {
			return err
		}
		v, err := throughput(rendAddr, conns, dur, gets, valueSize, keys)
		if err != nil {
			return err
		}
		fmt.Printf("  round %d: memcached direct %.0f ops/s, rend l1only %.0f ops/s\n", r+1, d, v)
		direct += d
		via += v
	}
	fmt.Printf("ratio rend/memcached: %.2f\n", via/direct)
	return nil
}

func start(bin string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return cmd, nil
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return bytes.Count(b, []byte("processor\t:"))
}

func waitReady(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if v := mcVersion(addr); v != "" {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", addr)
}

func mcVersion(addr string) string {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "version\r\n")
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.TrimPrefix(l, "VERSION "))
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// idleMemory opens n connections to addr, sends one request on each, and
// reports rend's RSS growth per connection once they are all idle.
func idleMemory(pid int, addr string, n int) (per float64, before, after int64, err error) {
	// Warm up: one request so the process has its steady-state heap.
	mcVersion(addr)
	time.Sleep(200 * time.Millisecond)
	if before, err = rss(pid); err != nil {
		return
	}
	cs := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	buf := make([]byte, 64)
	for i := 0; i < n; i++ {
		c, e := net.Dial("tcp", addr)
		if e != nil {
			return 0, 0, 0, fmt.Errorf("connection %d: %w", i, e)
		}
		cs = append(cs, c)
		c.Write([]byte("version\r\n"))
		if _, e := c.Read(buf); e != nil {
			return 0, 0, 0, e
		}
	}
	// Let rend's goroutines settle into their idle wait; RSS is read twice
	// and the larger kept, so a sample taken mid-settle cannot flatter it.
	time.Sleep(time.Second)
	a1, _ := rss(pid)
	time.Sleep(500 * time.Millisecond)
	a2, _ := rss(pid)
	after = max(a1, a2)
	return float64(after-before) / float64(n), before, after, nil
}

// throughput runs the closed-loop mix against addr and returns ops/s.
func throughput(addr string, conns int, dur time.Duration, gets float64, valueSize, keys int) (float64, error) {
	value := bytes.Repeat([]byte("v"), valueSize)
	var ops atomic.Uint64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			br := bufio.NewReader(c)
			bw := bufio.NewWriter(c)
			var n uint64
			for time.Now().Before(deadline) {
				key := "bench:" + strconv.Itoa(rng.IntN(keys))
				if rng.Float64() < gets {
					bw.WriteString("get " + key + "\r\n")
					bw.Flush()
					for {
						l, err := br.ReadSlice('\n')
						if err != nil {
							firstErr.CompareAndSwap(nil, err)
							return
						}
						if bytes.Equal(l, []byte("END\r\n")) {
							break
						}
						if bytes.HasPrefix(l, []byte("VALUE ")) {
							f := bytes.Fields(l)
							sz, _ := strconv.Atoi(string(f[3]))
							br.Discard(sz + 2)
						}
					}
				} else {
					fmt.Fprintf(bw, "set %s 0 0 %d\r\n", key, len(value))
					bw.Write(value)
					bw.WriteString("\r\n")
					bw.Flush()
					l, err := br.ReadSlice('\n')
					if err != nil || !bytes.Equal(l, []byte("STORED\r\n")) {
						firstErr.CompareAndSwap(nil, fmt.Errorf("set: %q %v", l, err))
						return
					}
				}
				n++
			}
			ops.Add(n)
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, e.(error)
	}
	return float64(ops.Load()) / dur.Seconds(), nil
}
