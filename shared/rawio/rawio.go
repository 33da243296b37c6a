// Package rawio reads and writes the non-blocking sockets of the net
// package with raw system calls: the calling goroutine keeps its P for the
// call instead of entering the runtime's syscall state.
//
// Why: a syscall longer than one sysmon tick (20 µs up to 10 ms) lets
// sysmon retake the P and hand it to another thread; with GOMAXPROCS=1 it
// does so even with nothing else to run, to keep the network polled (the
// runtime's retake and handoffp). A 100 KB reply's writev or a 32 KiB
// backend read takes that long, so each could cost a thread wake-up, a P
// hand-off and, when the call returns, the slow exitsyscall path, and
// sysmon, having retaken something, keeps waking every 20 µs. The net
// package's sockets are non-blocking, so a read or write here never
// blocks: it copies what the kernel takes and returns, or returns EAGAIN,
// and then the RawConn waits for readiness in the netpoller as the net
// package does (deadlines included).
package rawio

import (
	"io"
	"syscall"
	"unsafe"
)

// maxIov is the most iovecs one writev takes (Linux's IOV_MAX).
const maxIov = 1024

// Conn does raw reads and writes on one connection's RawConn. Each
// direction may be used by one goroutine at a time (a reader and a writer
// may run concurrently). It allocates nothing per call.
type Conn struct {
	rc syscall.RawConn

	// read side
	rp     []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	// write side
	wp      []byte
	wbufs   [][]byte
	wn      int
	werr    error
	iov     []syscall.Iovec
	iovUsed int // the most entries of iov one Writev filled
	writeFn func(fd uintptr) bool
	vecFn   func(fd uintptr) bool
}

// New returns a Conn over rc.
func New(rc syscall.RawConn) *Conn {
	c := &Conn{rc: rc}
	c.readFn, c.writeFn, c.vecFn = c.read, c.write, c.writev
	return c
}

// Of returns a Conn over c's RawConn, or nil if c has none.
func Of(c any) *Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return New(rc)
}

// Read reads into p, waiting (in the netpoller, under the read deadline)
// until the socket holds something. It returns io.EOF at the end.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	n, serr := c.rn, c.rerr
	c.rp, c.rerr = nil, nil
	switch {
	case err != nil:
		return 0, err
	case serr != nil:
		return 0, serr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) read(fd uintptr) bool {
	n, err := rawRead(fd, c.rp)
	if err == syscall.EAGAIN {
		return false // wait for readiness
	}
	c.rn, c.rerr = n, err
	return true
}

// Write writes all of p, waiting for the socket to take it (in the
// netpoller, under the write deadline).
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n, serr := c.wn, c.werr
	c.wp, c.werr = nil, nil
	if err == nil {
		err = serr
	}
	return n, err
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wp) {
		n, err := RawWrite(fd, c.wp[c.wn:])
		if err == syscall.EAGAIN {
			return false
		}
		if err != nil {
			c.werr = err
			return true
		}
		c.wn += n
	}
	return true
}

// Writev writes every byte of bufs with as few writev calls as the socket
// allows, waiting as Write does. It returns the bytes written; bufs is not
// changed.
func (c *Conn) Writev(bufs [][]byte) (int64, error) {
	c.wbufs, c.wn, c.werr = bufs, 0, nil
	err := c.rc.Write(c.vecFn)
	n, serr := c.wn, c.werr
	c.wbufs, c.werr = nil, nil
	clear(c.iov[:c.iovUsed]) // no pointers kept into the caller's buffers
	c.iov, c.iovUsed = c.iov[:0], 0
	if err == nil {
		err = serr
	}
	return int64(n), err
}

// writev sends c.wbufs from byte offset c.wn on.
func (c *Conn) writev(fd uintptr) bool {
	for {
		// The iovecs of what is left, from offset wn.
		iov := c.iov[:0]
		skip := c.wn
		for _, b := range c.wbufs {
			if skip >= len(b) {
				skip -= len(b)
				continue
			}
			b = b[skip:]
			skip = 0
			if len(iov) == maxIov {
				break
			}
			iov = append(iov, syscall.Iovec{Base: &b[0]})
			iov[len(iov)-1].SetLen(len(b))
		}
		c.iov, c.iovUsed = iov, max(c.iovUsed, len(iov))
		if len(iov) == 0 {
			return true
		}
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
			c.wn += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
}

// rawRead is read(2) without the runtime's syscall bookkeeping.
func rawRead(fd uintptr, p []byte) (int, error) { return rawRW(syscall.SYS_READ, fd, p) }

// RawWrite is write(2) without the runtime's syscall bookkeeping, for a
// non-blocking descriptor (EAGAIN is returned as is).
func RawWrite(fd uintptr, p []byte) (int, error) { return rawRW(syscall.SYS_WRITE, fd, p) }

// rawRW is read(2) or write(2) (trap) of p on fd, retried on EINTR.
func rawRW(trap, fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}

// RawReadFd is read(2) without the runtime's syscall bookkeeping, for a
// non-blocking descriptor (EAGAIN is returned as is).
func RawReadFd(fd uintptr, p []byte) (int, error) { return rawRead(fd, p) }
