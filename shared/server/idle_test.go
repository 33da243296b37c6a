package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// TestIdleConnectionMemory opens many connections that each answer one
// request and then idle, and reports the server's heap + stack cost per
// idle connection. The clients are raw socket descriptors (no Go objects)
// so that only the server side is measured.
func TestIdleConnectionMemory(t *testing.T) {
	for _, nl := range []string{NetLoopGoroutine, NetLoopEpoll} {
		t.Run(nl, func(t *testing.T) {
			if nl == NetLoopEpoll && !loopSupported {
				t.Skip("no event loop here")
			}
			idleMemory(t, nl)
		})
	}
}

func idleMemory(t *testing.T, netLoop string) {
	const conns = 2000
	for _, proto := range []struct {
		name  string
		req   []byte
		reply int // reply length
	}{
		{"text", []byte("version\r\n"), len("VERSION 1.0\r\n")},
		// binary noop: magic 0x80, opcode 0x0a, all lengths zero
		{"binary", append([]byte{0x80, 0x0a}, make([]byte, 22)...), 24},
	} {
		t.Run(proto.name, func(t *testing.T) {
			h := protocol.HandlerFunc(func(_ context.Context, req *protocol.Request, resp *protocol.Response) error {
				resp.Message = "1.0"
				return nil
			})
			s, err := New(Config{NetLoop: netLoop, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, h)
			if err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(t.TempDir(), "s")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(ln)
			defer s.Close()

			before := memInUse()
			fds := make([]int, 0, conns)
			defer func() {
				for _, fd := range fds {
					syscall.Close(fd)
				}
			}()
			buf := make([]byte, 64)
			for range conns {
				fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				fds = append(fds, fd)
				if err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
					t.Fatal(err)
				}
				if _, err := syscall.Write(fd, proto.req); err != nil {
					t.Fatal(err)
				}
				for got := 0; got < proto.reply; {
					n, err := syscall.Read(fd, buf)
					if err != nil || n == 0 {
						t.Fatalf("read reply: %d %v", n, err)
					}
					got += n
				}
			}
			waitFor(t, "all connections idle", func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				if len(s.conns) != conns {
					return false
				}
				for c := range s.conns {
					if st := c.state.Load(); st != stateIdle && st != stateLoop || c.b != nil {
						return false
					}
				}
				return true
			})
			after := memInUse()
			per := float64(after.total()-before.total()) / conns
			t.Logf("%s: %d idle connections: %.0f bytes each (heap %.0f + stack %.0f)", proto.name, conns, per,
				float64(after.heap-before.heap)/conns, float64(after.stack-before.stack)/conns)
			// Generous bound, to catch a regression such as buffers held
			// while idle (that alone would be 32 KiB per connection).
			if per > 16<<10 {
				t.Errorf("%.0f bytes per idle connection", per)
			}
		})
	}
}

type memFigures struct{ heap, stack int64 }

func (m memFigures) total() int64 { return m.heap + m.stack }

// memInUse collects garbage (twice: sync.Pool keeps a victim generation;
// stacks shrink at GC) and reports heap and stack in use.
func memInUse() memFigures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse)}
}
