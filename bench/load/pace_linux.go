//go:build linux

package load

import (
	"context"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// pacer waits for a connection's next send time. The runtime's timers wake
// a process that sleeps in its netpoller with a millisecond timeout (a
// sub-millisecond delay is rounded up to 1 ms), so a paced load generator
// built on time.Timer sends each request 0-1 ms late and, since latency is
// measured from the scheduled time, reports that lateness as the server's:
// plain memcached read at 2,000 req/s showed p50 0.7 ms, and 20 goroutines
// waiting on time.Timer alone were late by p50 0.6 ms, p99 1.8-3 ms
// (bench/results/l2path.md, sixth round). A timerfd armed for the absolute
// send time and read through the netpoller wakes at the kernel's hrtimer
// precision (tens of µs late), and the waiting goroutine holds no thread.
type pacer struct {
	f  *os.File
	rc syscall.RawConn
	fd int
}

const (
	tfdNonblock     = syscall.O_NONBLOCK
	tfdCloexec      = syscall.O_CLOEXEC
	tfdTimerAbstime = 1
)

type itimerspec struct {
	interval syscall.Timespec
	value    syscall.Timespec
}

// newPacer returns a pacer, or nil if the kernel has no timerfd (wait then
// falls back to time.Timer).
func newPacer() *pacer {
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, uintptr(clockMonotonic), tfdNonblock|tfdCloexec, 0)
	if errno != 0 {
		return nil
	}
	f := os.NewFile(fd, "timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	return &pacer{f: f, rc: rc, fd: int(fd)}
}

const clockMonotonic = 1

// monoBase pairs a time.Time with CLOCK_MONOTONIC's reading at the same
// instant, to turn send times into absolute timerfd expirations.
var monoBase = func() struct {
	t  time.Time
	ns int64
} {
	var ts syscall.Timespec
	t := time.Now()
	clockGettime(&ts)
	return struct {
		t  time.Time
		ns int64
	}{t, ts.Nano()}
}()

func clockGettime(ts *syscall.Timespec) {
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(ts)), 0)
}

// wait returns at t (or when ctx ends: false).
func (p *pacer) wait(ctx context.Context, t time.Time) bool {
	if p == nil {
		return waitTimer(ctx, t)
	}
	for {
		d := time.Until(t)
		if d <= 0 {
			return ctx.Err() == nil
		}
		if d > 50*time.Millisecond {
			// Long waits in steps, so a cancelled run ends promptly.
			if !waitTimer(ctx, time.Now().Add(d-20*time.Millisecond)) {
				return false
			}
			continue
		}
		abs := monoBase.ns + int64(t.Sub(monoBase.t))
		spec := itimerspec{value: syscall.NsecToTimespec(abs)}
		if _, _, errno := syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(p.fd), tfdTimerAbstime, uintptr(unsafe.Pointer(&spec)), 0, 0, 0); errno != 0 {
			return waitTimer(ctx, t)
		}
		var buf [8]byte
		err := p.rc.Read(func(fd uintptr) bool {
			_, err := syscall.Read(int(fd), buf[:])
			return err != syscall.EAGAIN
		})
		if err != nil {
			return waitTimer(ctx, t)
		}
		return ctx.Err() == nil
	}
}

func (p *pacer) close() {
	if p != nil {
		p.f.Close()
	}
}
