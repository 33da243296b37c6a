package server_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/server"
)

// emfileChildEnv makes the test binary act as the server of
// TestAcceptSurvivesFDExhaustion.
const emfileChildEnv = "MONETA_SERVER_EMFILE_CHILD"

// TestAcceptSurvivesFDExhaustion runs a server in a child process with a
// descriptor limit a few above what it has open, connects more clients
// than it can accept, and checks that the server keeps running, and serves
// the waiting client once others leave and descriptors free up.
func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	if sock := os.Getenv(emfileChildEnv); sock != "" {
		emfileChild(sock)
		return
	}
	sock := filepath.Join(t.TempDir(), "s")
	if len(sock) > 100 {
		t.Skip("temp path too long for a socket")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptSurvivesFDExhaustion$")
	cmd.Env = append(os.Environ(), emfileChildEnv+"="+sock)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()

	var first net.Conn
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			first = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never listened: %v\n%s", err, stderr)
		}
		time.Sleep(5 * time.Millisecond) // polling for the child's listener
	}

	// The child can accept only a handful; the rest wait in the backlog
	// while its Accept fails with EMFILE.
	conns := []net.Conn{first}
	for range 20 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
	}
	last := conns[len(conns)-1]
	last.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(last, "version\r\n")

	// Wait until the child has hit the limit (it says so on stderr), then
	// free its descriptors by hanging up the early clients.
	waitStderr(t, stderr, exited, "accept failed")
	for _, c := range conns[:len(conns)-1] {
		c.Close()
	}
	line, err := bufio.NewReader(last).ReadString('\n')
	if err != nil || line != "VERSION "+memstore.DefaultVersion+"\r\n" {
		t.Fatalf("waiting client got %q, %v\nchild stderr:\n%s", line, err, stderr)
	}
	select {
	case err := <-exited:
		t.Fatalf("server process exited: %v\n%s", err, stderr)
	default:
	}
	t.Logf("child server log:\n%s", stderr)
}

func waitStderr(t *testing.T, stderr *lockedBuffer, exited chan error, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), what) {
		select {
		case err := <-exited:
			t.Fatalf("server process exited: %v\n%s", err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never reported %q:\n%s", what, stderr)
		}
		time.Sleep(5 * time.Millisecond) // polling the child's log
	}
}

// lockedBuffer collects the child's stderr, which exec copies in from
// another goroutine while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// emfileChild serves on sock with almost no descriptors to spare.
func emfileChild(sock string) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	entries, _ := os.ReadDir("/proc/self/fd")
	lim := uint64(len(entries) + 4)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := server.New(server.Config{Logger: logger}, memstore.New(memstore.Options{}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Serve until the parent kills us; Serve must never return here.
	err = srv.Serve(ln)
	fmt.Fprintln(os.Stderr, "Serve returned:", err)
	os.Exit(3)
}
