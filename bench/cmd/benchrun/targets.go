package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// proc is a server process the harness started.
type proc struct {
	name string
	cmd  *exec.Cmd
}

// target is one system under test: the processes behind it and the
// addresses the load generator uses.
type target struct {
	name  string
	addr  string // regular port
	batch string // batch port (rend L1+L2), "" if none
	front *proc  // the process clients talk to (for RSS)
	procs []*proc
}

func (t *target) stop() {
	for i := len(t.procs) - 1; i >= 0; i-- {
		p := t.procs[i]
		p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
}

// env is where targets are started.
type env struct {
	bin     string // directory with rend, mnemonic
	dir     string // scratch directory for sockets and data
	l1MB    int    // memcached / L1 memory
	extMB   int    // extstore's memcached memory when set (beyondram), else l1MB
	threads int    // memcached worker threads
	logs    *os.File
	next    int
	// rendEnv and rendArgs are added to every rend started.
	rendEnv, rendArgs []string
}

func (e *env) port() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (e *env) start(name string, args ...string) (*proc, error) {
	return e.startEnv(name, nil, args...)
}

// startEnv starts a process with extra environment variables.
func (e *env) startEnv(name string, extraEnv []string, args ...string) (*proc, error) {
	cmd := exec.Command(args[0], args[1:]...)
	if len(extraEnv) > 0 {
		cmd.Env = append(os.Environ(), extraEnv...)
	}
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &proc{name: name, cmd: cmd}, nil
}

func (e *env) scratch(name string) string {
	e.next++
	d := filepath.Join(e.dir, fmt.Sprintf("%s-%d", name, e.next))
	os.MkdirAll(d, 0o755)
	return d
}

func memcachedArgs(extra ...string) []string {
	args := []string{"memcached"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	return append(args, extra...)
}

// extstoreOpts tune extstore to keep every item of the beyondram and
// overwrite data sets (measured by hand, 600k x 1 KiB, paced preload at
// 20k/s; see bench/results/l2path.md): larger write buffers and four IO
// threads so flushing keeps up with the load, and 30% of memory kept free
// for the small slab class that holds the headers of items on flash. With
// the defaults, slab page moves and evictions lost 40-60% of the items.
const extstoreOpts = "ext_wbuf_size=16,ext_threads=4,slab_automove_freeratio=0.3"

// startTarget starts one of: memcached, extstore, rend-l1only, rend-l1l2, mnemonic.
func (e *env) startTarget(kind string) (*target, error) {
	t := &target{name: kind}
	fail := func(err error) (*target, error) { t.stop(); return nil, err }
	add := func(p *proc, err error) error {
		if err == nil {
			t.procs = append(t.procs, p)
			t.front = p
		}
		return err
	}
	mem := strconv.Itoa(e.l1MB)
	thr := strconv.Itoa(e.threads)
	switch kind {
	case "memcached":
		port := e.port()
		t.addr = fmt.Sprintf("127.0.0.1:%d", port)
		if err := add(e.start(kind, memcachedArgs("-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", mem, "-t", thr, "-c", "19500")...)); err != nil {
			return fail(err)
		}
	case "extstore":
		if e.extMB > 0 {
			mem = strconv.Itoa(e.extMB)
		}
		d := e.scratch(kind)
		port := e.port()
		t.addr = fmt.Sprintf("127.0.0.1:%d", port)
		if err := add(e.start(kind, memcachedArgs("-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", mem, "-t", thr, "-c", "19500",
			"-o", "ext_path="+filepath.Join(d, "extstore")+":8g,"+extstoreOpts)...)); err != nil {
			return fail(err)
		}
	case "mnemonic", "rend-l1only", "rend-l1l2":
		d := e.scratch(kind)
		var l1, l2 string
		if kind != "mnemonic" {
			l1 = filepath.Join(d, "memcached.sock")
			if err := add(e.start("memcached-l1", memcachedArgs("-s", l1, "-a", "0700", "-m", mem, "-t", thr, "-c", "4096")...)); err != nil {
				return fail(err)
			}
			if err := waitReady("unix:" + l1); err != nil {
				return fail(err)
			}
		}
		if kind != "rend-l1only" {
			l2 = filepath.Join(d, "mnemonic.sock")
			if err := add(e.start("mnemonic", filepath.Join(e.bin, "mnemonic"), "-listen", "unix:"+l2,
				"-data", filepath.Join(d, "data"), "-admin", "")); err != nil {
				return fail(err)
			}
			if err := waitReady("unix:" + l2); err != nil {
				return fail(err)
			}
			t.addr = "unix:" + l2
		}
		if kind != "mnemonic" {
			port := e.port()
			t.addr = fmt.Sprintf("127.0.0.1:%d", port)
			args := []string{filepath.Join(e.bin, "rend"), "-listen", t.addr, "-l1", "unix:" + l1, "-admin", ""}
			if l2 != "" {
				t.batch = fmt.Sprintf("127.0.0.1:%d", e.port())
				args = append(args, "-l2", "unix:"+l2, "-batch-listen", t.batch)
			}
			args = append(args, e.rendArgs...)
			if err := add(e.startEnv("rend", e.rendEnv, args...)); err != nil {
				return fail(err)
			}
		}
	default:
		return nil, fmt.Errorf("unknown target %q", kind)
	}
	if err := waitReady(t.addr); err != nil {
		return fail(fmt.Errorf("%s: %w (see the log)", kind, err))
	}
	return t, nil
}

func waitReady(a string) error {
	network, address := "tcp", a
	if strings.HasPrefix(a, "unix:") {
		network, address = "unix", strings.TrimPrefix(a, "unix:")
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout(network, address, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			fmt.Fprintf(c, "version\r\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil && strings.HasPrefix(line, "VERSION") {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not answering", a)
}

// rssKiB reads a process's resident set size.
func rssKiB(p *proc) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpuTicks reads a process's user+system CPU time in clock ticks.
func cpuTicks(p *proc) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// textStats returns a memcached-protocol server's general stats.
func textStats(a string) (map[string]string, error) {
	network, address := "tcp", a
	if strings.HasPrefix(a, "unix:") {
		network, address = "unix", strings.TrimPrefix(a, "unix:")
	}
	c, err := net.DialTimeout(network, address, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "stats\r\n")
	out := map[string]string{}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		f := strings.Fields(line)
		if len(f) == 1 && f[0] == "END" {
			return out, nil
		}
		if len(f) == 3 && f[0] == "STAT" {
			out[f[1]] = f[2]
		}
	}
}

// settleExtstore waits until extstore has written what the preload left in
// RAM to flash (its write count steady for two seconds, at most a minute),
// and returns its item count.
func settleExtstore(a string) (string, error) {
	last, same := "", 0
	for i := 0; i < 120 && same < 4; i++ {
		st, err := textStats(a)
		if err != nil {
			return "", err
		}
		if w := st["extstore_objects_written"]; w == last {
			same++
		} else {
			last, same = w, 0
		}
		time.Sleep(500 * time.Millisecond)
	}
	st, err := textStats(a)
	if err != nil {
		return "", err
	}
	return st["curr_items"], nil
}
