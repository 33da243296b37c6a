//go:build linux

package server

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/rawio"
)

// errEncode marks a connection whose reply could not be encoded.
var errEncode = errors.New("server: reply not encoded")

// finishTurn ends the loop's turn with c, whose requests so far are answered
// (into its write buffer): flush and back to the loop, or on to a
// goroutine if more is buffered or owed.
func (c *conn) finishTurn() {
	s := c.srv
	switch {
	case s.shutting.Load():
		c.flush()
		c.close()
	case !c.drained() || len(c.pend) > 0:
		c.handOff(loopBurst)
	case !c.flush():
		c.close()
	case len(c.pend) > 0:
		c.handOff(loopBurst)
	default:
		c.loopIO = false
		c.release()
		// The loop went on meanwhile and may have seen (and dropped) an
		// event of this connection: backToLoop takes it back then.
		if c.backToLoop() {
			c.handOff(loopReclaimed)
		}
	}
}

// toLoop hands the idle connection to its loop (or closes it when the
// server is shutting down). The caller owns c and holds no burst.
func (c *conn) toLoop() {
	c.state.Store(stateLoop)
	if c.srv.shutting.Load() && c.state.CompareAndSwap(stateLoop, stateActive) {
		c.close()
	}
}

// backToLoop hands the idle connection to its loop, and takes it back at
// once if an event came while its goroutine owned it (see looped): then
// the client sent something, which the caller now serves.
func (c *conn) backToLoop() (reclaimed bool) {
	c.toLoop()
	if !c.edge.Load() || !c.state.CompareAndSwap(stateLoop, stateActive) {
		return false
	}
	c.edge.Store(false)
	return true
}

// Where serveLooped starts: a burst borrowed with requests (or replies)
// in it; that and a parsed request to answer first; or a connection just
// taken back from the loop (backToLoop), with nothing read yet.
const (
	loopBurst = iota
	loopAnswer
	loopReclaimed
	loopSticky // loopBurst, then serve it as servePipelined does
)

// handOff runs c on a goroutine from where the loop left it.
func (c *conn) handOff(from int) {
	c.from = from
	c.srv.hands.spawn(c.goFn)
}

func (c *conn) runLooped() { c.serveLooped(c.from) }

// serveLooped serves a connection of a loop on a goroutine, from where
// the loop left it (from), until it is idle again, then gives it back to
// the loop.
func (c *conn) serveLooped(from int) {
	closeIt := true
	defer func() {
		if r := recover(); r != nil {
			c.panicked(r)
		}
		if closeIt {
			c.close()
		}
	}()
	c.loopIO = false
	if len(c.pend) > 0 {
		_, err := c.Write(c.pend)
		c.pend = c.pend[:0]
		if cap(c.pend) > 64<<10 {
			c.pend = nil
		}
		if err != nil {
			return
		}
	}
	if from == loopAnswer && !c.answer(&c.b.req, &c.b.resp) {
		c.flush()
		return
	}
	reclaimed := from == loopReclaimed
	for {
		if c.b != nil {
			seq := c.reqSeq
			if c.drained() {
				if !c.flush() {
					return
				}
			} else if !c.serveBurst() {
				return
			}
			c.release()
			if c.reqSeq-seq > 1 || from == loopSticky {
				from = loopBurst
				// A pipelining client keeps sending while its replies go
				// out: serve it as a goroutine per connection does, out
				// of the loop's epoll set, until its bursts are single
				// requests again. Giving it back to the loop after every
				// burst (a hand-off each way, two epoll notifications per
				// arrival) cost 6-13% more CPU at 16 in flight.
				if !c.setPolled(false) || !c.servePipelined() || !c.setPolled(true) {
					return
				}
				c.full = true // edges were not watched meanwhile
			}
		}
		if c.srv.idleTimeout.Load() > 0 {
			// The loop keeps no clock: wait on this goroutine.
			c.loop.forget(c)
			c.raw.Control(func(fd uintptr) {
				syscall.EpollCtl(c.loop.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
			})
			c.loop = nil
			for c.waitRequest() {
				c.acquire()
				if !c.serveBurst() {
					return
				}
				c.release()
			}
			return
		}
		if !reclaimed && !c.full && !c.backToLoop() {
			closeIt = false // the loop's now (or closed by toLoop)
			return
		}
		reclaimed = false
		n, err, wait := c.rawRead(c.head[:headSize])
		switch {
		case err != nil:
			c.readFailed(err)
			return
		case wait:
			c.full = false // drained: an edge announces what comes next
		default:
			c.headOff, c.headLen = 0, uint8(n)
			c.acquire()
		}
	}
}

// pipelineQuiet is how many bursts in a row of one short request bring a
// pipelining (or multi-getting) connection back to the loop.
const pipelineQuiet = 8

// servePipelined serves c on this goroutine the way serve does, until
// pipelineQuiet bursts in a row were one short request each (true: c is owned,
// idle, and holds no burst) or the connection must close (false).
func (c *conn) servePipelined() bool {
	quiet := 0
	for c.waitRequest() {
		c.acquire()
		seq := c.reqSeq
		if !c.serveBurst() {
			return false
		}
		c.release()
		if quiet = quiet + 1; c.reqSeq-seq > 1 || longGet(c) {
			quiet = 0
		}
		if quiet == pipelineQuiet {
			return true
		}
	}
	return false
}

// longGet reports whether the last idle read filled the head with the
// start of a text get line: a multi-get too long for the loop to take.
// Its client likely sends more of them; handing each to a goroutine and
// back cost ~3% CPU per key against a goroutine per connection.
func longGet(c *conn) bool {
	h := c.head[:c.headLen]
	return len(h) == headSize && !c.binary &&
		(bytes.HasPrefix(h, []byte("get ")) || bytes.HasPrefix(h, []byte("gets ")) || bytes.HasPrefix(h, []byte("mg ")))
}

// setPolled adds c's socket to its loop's epoll set or removes it. It
// reports false if the connection is closed.
func (c *conn) setPolled(on bool) bool {
	var cerr error
	err := c.raw.Control(func(fd uintptr) {
		if on {
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(fd)}
			cerr = syscall.EpollCtl(c.loop.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		} else {
			cerr = syscall.EpollCtl(c.loop.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		}
	})
	return err == nil && cerr == nil
}

// writeNow is Write while the loop owns the connection: one non-blocking
// write; what the socket does not take is kept in pend, for the goroutine
// the connection is then handed to (finish).
func (c *conn) writeNow(p []byte) (int, error) {
	if len(c.pend) > 0 {
		c.pend = append(c.pend, p...)
		return len(p), nil
	}
	c.rawP = p
	err := c.raw.Write(c.wFn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// WriteTimeout's deadline, set on a goroutine, passed while the
		// connection idled in the loop (see take).
		c.writeDeadline = time.Time{}
		c.nc.SetWriteDeadline(c.writeDeadline)
		err = c.raw.Write(c.wFn)
	}
	n, serr := c.rawN, c.rawErr
	c.rawP, c.rawErr = nil, nil
	if err == nil && serr != nil && serr != syscall.EAGAIN {
		err = serr
	}
	if err != nil {
		c.werr = err
		c.srv.stats.WriteErrors.Add(1)
		return 0, err
	}
	n = max(n, 0)
	c.nwritten += uint64(n)
	if n < len(p) {
		c.pend = append(c.pend, p[n:]...)
	}
	return len(p), nil
}

// writeOnce is writeNow's raw.Write callback: one write of rawP.
func (c *conn) writeOnce(fd uintptr) bool {
	for {
		if c.rio != nil {
			c.rawN, c.rawErr = rawio.RawWrite(fd, c.rawP)
		} else {
			c.rawN, c.rawErr = syscall.Write(int(fd), c.rawP)
		}
		if c.rawErr != syscall.EINTR {
			return true
		}
	}
}
