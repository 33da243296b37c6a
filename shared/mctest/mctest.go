// Package mctest starts real processes for tests, stopped by PID when the
// test ends: Debian memcached on a temporary Unix socket or a free loopback
// port (Start, StartTCP), any program with a readiness poll (StartProc,
// NewProc: SIGKILL or SIGTERM, signals, its log, race reports), a mnemonic
// on its own socket and data directory (StartMnemonic, NewMnemonic), and
// whole moneta hosts, memcached + mnemonic + rend (BuildMoneta, StartHost).
// Eventually is the one polling helper for conditions with a deadline.
package mctest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Memcached is a memcached process owned by a test (a Proc: Stop, Restart,
// Pid, Log).
type Memcached struct {
	// Addr is the moneta address of the server: "unix:/path" or "127.0.0.1:port".
	Addr string
	*Proc
}

// Binary returns the memcached binary to use ($MEMCACHED or memcached on PATH).
func Binary() string {
	if b := os.Getenv("MEMCACHED"); b != "" {
		return b
	}
	if p, err := exec.LookPath("memcached"); err == nil {
		return p
	}
	return "/usr/bin/memcached"
}

// Start runs memcached on a Unix socket in a temporary directory. extra
// arguments are appended (for example "-m", "64", "-I", "2m").
func Start(tb testing.TB, extra ...string) *Memcached {
	tb.Helper()
	sock := filepath.Join(SocketDir(tb), "mc.sock")
	return startMemcached(tb, "unix:"+sock, append([]string{"-s", sock, "-a", "0700"}, extra...))
}

// StartTCP runs memcached on a free loopback TCP port (UDP off).
func StartTCP(tb testing.TB, extra ...string) *Memcached {
	tb.Helper()
	port := strconv.Itoa(FreePort(tb))
	return startMemcached(tb, net.JoinHostPort("127.0.0.1", port), append([]string{"-l", "127.0.0.1", "-p", port, "-U", "0"}, extra...))
}

// startMemcached runs memcached with args, answering on addr. As root it
// must be told which user to run as.
func startMemcached(tb testing.TB, addr string, args []string) *Memcached {
	tb.Helper()
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "root"}, args...)
	}
	return &Memcached{Addr: addr, Proc: StartProc(tb, "memcached", addr, Binary(), args...)}
}

// WaitReady polls addr until a "version" command is answered.
func WaitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends one "version" to addr and checks the reply.
func ping(addr string) error {
	network, address := "tcp", addr
	if strings.HasPrefix(addr, "unix:") {
		network, address = "unix", strings.TrimPrefix(addr, "unix:")
	} else if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	c, err := net.DialTimeout(network, address, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	return FreePorts(tb, 1)[0]
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago. They are held open together while chosen: ports asked for one at a
// time can come back twice (the kernel may hand a just-closed port out
// again), and a process given one port for two listeners fails to start.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// Eventually polls cond until it holds, failing tb with what after d. It is
// for conditions another process or goroutine makes true (a server that
// restarted, a counter that moves); it never stands in for synchronisation
// the test could do directly. The poll interval grows from 1 ms to 20 ms so
// quick conditions are seen at once and slow ones do not spin.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
