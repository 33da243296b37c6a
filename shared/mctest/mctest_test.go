package mctest

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestStart(t *testing.T) {
	m := Start(t)
	t.Log(m.Addr)
	m.Restart()
	n := StartTCP(t)
	t.Log(n.Addr)
}

func TestProc(t *testing.T) {
	sock := t.TempDir() + "/p.sock"
	args := []string{"-s", sock}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	p := StartProc(t, "memcached", "unix:"+sock, Binary(), args...)
	pid := p.Pid()
	p.Restart()
	if p.Pid() == 0 || p.Pid() == pid {
		t.Fatalf("restart: pid %d then %d", pid, p.Pid())
	}
	p.Stop()
	Eventually(t, 5*time.Second, "socket refused", func() bool { return WaitReady("unix:"+sock, 50*time.Millisecond) != nil })
}

func TestProcEnvLogTerminate(t *testing.T) {
	p := NewProc(t, "sh", "", "/bin/sh", "-c", `echo "x=$MCTEST_X"; exec sleep 30`)
	p.Env = []string{"MCTEST_X=from-env"}
	p.Start()
	Eventually(t, 5*time.Second, "the echo in the log", func() bool { return strings.Contains(p.Log(), "x=from-env") })
	// sleep dies of the SIGTERM: an exit error, not the timeout's.
	if err := p.Terminate(10 * time.Second); err == nil || strings.Contains(err.Error(), "ignored") {
		t.Fatalf("Terminate: %v", err)
	}
	if p.Pid() != 0 {
		t.Fatalf("pid %d after Terminate", p.Pid())
	}
	if err := p.Signal(os.Interrupt); err == nil {
		t.Fatal("Signal to a stopped process succeeded")
	}
}
