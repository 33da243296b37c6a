package mctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Proc is a child process a test owns (a bin/rend, a bin/mnemonic, a
// nutcracker): started with fixed arguments, logged to a file in the test's
// temp dir, stopped by its PID when the test ends, restartable.
type Proc struct {
	Name string
	Path string
	Args []string
	// Ready, when not empty, is the address polled with "version" after a
	// start; Start fails the test if it does not answer in time.
	Ready string

	tb  testing.TB
	cmd *exec.Cmd
	log *os.File
}

// StartProc starts path with args and waits until ready (if not empty)
// answers "version". The process is killed when the test ends.
func StartProc(tb testing.TB, name, ready, path string, args ...string) *Proc {
	tb.Helper()
	p := &Proc{Name: name, Path: path, Args: args, Ready: ready, tb: tb}
	tb.Cleanup(func() {
		p.Stop()
		if p.log != nil {
			p.log.Close()
		}
	})
	p.Start()
	return p
}

// Start starts the process (again). It fails the test if the process cannot
// start or does not become ready within 20 s, showing its log.
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
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.tb.Fatalf("start %s: %v", p.Name, err)
	}
	p.cmd = cmd
	if p.Ready == "" {
		return
	}
	if err := WaitReady(p.Ready, 20*time.Second); err != nil {
		p.Stop()
		p.tb.Fatalf("%s not ready: %v\n%s", p.Name, err, p.Log())
	}
}

// Stop kills the process (SIGKILL: the crash case) and waits for it. Safe
// to call when it is not running.
func (p *Proc) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
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

// Log returns what the process wrote to stdout and stderr so far.
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
