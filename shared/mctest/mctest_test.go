package mctest

import (
	"os"
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
