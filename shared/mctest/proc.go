package mctest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a child process a test owns (a bin/rend, a mnemonic, a
// nutcracker): started with fixed arguments, logged to a file in the test's
// temp dir, stopped by its PID when the test ends, restartable.
//
// Under GOFLAGS=-race the programs a test builds are race-enabled too: a
// race report in the process's log fails the test that ran it.
type Proc struct {
	Name string
	Path string
	Args []string
	// Env is added to the test's environment for the process (later
	// entries win), for a test binary that runs as the program itself.
	Env []string
	// Ready, when not empty, is the address polled with "version" after a
	// start; Start fails the test if it does not answer in time, or if the
	// process exits first.
	Ready string

	tb  testing.TB
	cmd *exec.Cmd
	log *os.File
	// done closes when the process has exited; err is then Wait's result.
	done chan struct{}
	err  error
}

// NewProc returns a Proc that is not started yet (set Env, then Start). It
// is stopped when the test ends.
func NewProc(tb testing.TB, name, ready, path string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{Name: name, Path: path, Args: args, Ready: ready, tb: tb}
	tb.Cleanup(func() {
		p.Stop()
		if p.log == nil {
			return
		}
		if log := p.Log(); strings.Contains(log, "DATA RACE") {
			tb.Errorf("%s reported a data race:\n%s", p.Name, log)
		}
		p.log.Close()
	})
	return p
}

// StartProc starts path with args and waits until ready (if not empty)
// answers "version". The process is killed when the test ends.
func StartProc(tb testing.TB, name, ready, path string, args ...string) *Proc {
	tb.Helper()
	p := NewProc(tb, name, ready, path, args...)
	p.Start()
	return p
}

// Start starts the process (again). It fails the test if the process cannot
// start, exits, or does not become ready within 20 s, showing its log.
func (p *Proc) Start() {
	p.tb.Helper()
	if p.cmd != nil {
		p.tb.Fatalf("%s: already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	if p.log == nil {
		f, err := os.Create(filepath.Join(p.tb.TempDir(), p.Name+".log"))
		if err != nil {
			p.tb.Fatal(err)
		}
		p.log = f
	}
	cmd := exec.Command(p.Path, p.Args...)
	if len(p.Env) > 0 {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.tb.Fatalf("start %s: %v", p.Name, err)
	}
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	go func(done chan struct{}) { p.err = cmd.Wait(); close(done) }(p.done)
	if p.Ready == "" {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ping(p.Ready)
		if err == nil {
			return
		}
		select {
		case <-p.done:
			p.cmd = nil
			p.tb.Fatalf("%s exited at start: %v\n%s", p.Name, p.err, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			p.tb.Fatalf("%s not ready on %s: %v\n%s", p.Name, p.Ready, err, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the process (SIGKILL: the crash case) and waits for it. Safe
// to call when it is not running.
func (p *Proc) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// Terminate asks the process to exit (SIGTERM: a graceful shutdown) and
// waits up to timeout. It returns the exit error (nil for a clean exit
// with status 0); a process still running after timeout is killed and
// reported as an error.
func (p *Proc) Terminate(timeout time.Duration) error {
	if p.cmd == nil {
		return fmt.Errorf("%s: not running", p.Name)
	}
	defer func() { p.cmd = nil }()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New(p.Name + " ignored SIGTERM for " + timeout.String())
	}
}

// Signal sends sig to the running process (SIGHUP: reload).
func (p *Proc) Signal(sig os.Signal) error {
	if p.cmd == nil {
		return fmt.Errorf("%s: not running", p.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// Restart stops the process and starts it with the same arguments.
func (p *Proc) Restart() {
	p.tb.Helper()
	p.Stop()
	p.Start()
}

// Pid is the process id, or 0 when stopped.
func (p *Proc) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Log returns what the process wrote to stdout and stderr so far (across
// restarts).
func (p *Proc) Log() string {
	if p.log == nil {
		return ""
	}
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// Build compiles the Go main package pkg (an import path of this workspace)
// into dir and returns the binary's path. For TestMain, which has no
// testing.TB, it returns an error instead of failing a test.
func Build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// SocketDir returns a new, short directory for Unix sockets, removed when
// the test ends. A socket path must fit in 108 bytes, which a TempDir under
// a long test name can exceed.
func SocketDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "mct")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
