//go:build linux

package server

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// The event loop (Config.NetLoop "epoll"). With a goroutine per connection,
// every request of a client that sends one request at a time costs a read
// that fails with EAGAIN, a park in the runtime's netpoller and a wake-up,
// and then a park and a wake-up for the handler's backend round trip of
// its own. The loop instead waits for all its connections with one epoll
// set, reads a connection only when epoll says it is readable, and answers
// the single get (get, gets, mg) each ready connection sent with one
// HandleGets call for all of them: one backend round trip, one park of the
// loop, for every client that was ready at once.
//
// Anything else (a set, a pipeline or a multi-get too long for the 64-byte
// head, a reply the socket will not take at once) is handed to a goroutine
// that serves the connection as Server always did, and gives it back to
// the loop once the connection is idle again. The loop itself never waits
// on a client socket; it reads and writes with non-blocking syscalls, and
// what a write cannot take is copied aside (pend) for the goroutine to
// send. Connections run on a goroutine while an idle timeout is set (the
// loop keeps no clock).
//
// Ownership: a connection in stateLoop belongs to the loop's epoll set;
// whoever moves it out of stateLoop with a CAS (the loop on an event,
// Shutdown's sweep, its goroutine on the way back) owns it. The epoll
// registration is edge-triggered and stays for the connection's life, so
// an edge that arrives while a goroutine owns the connection is consumed
// by the loop, which finds the state active: it sets edge first, and the
// goroutine, after it stored stateLoop, looks at edge and takes the
// connection back if it is set (reclaim). One of the two always sees the
// other, so no request is left unread in the socket.

// maxEvents bounds the connections one epoll_wait reports, and so one batch.
const maxEvents = 128

// looped is a connection's event-loop state (embedded in conn).
type looped struct {
	loop   *netLoop // nil: a goroutine per connection, as always
	fd     int
	loopIO bool // the loop owns the connection: writes must not wait
	// pend is what a non-blocking write could not send; the goroutine the
	// connection is handed to sends it first.
	pend []byte
	// edge: an epoll event came while the connection was not in stateLoop.
	edge atomic.Bool
	// full: the last socket read filled its buffer, so more may be in the
	// socket, which no new edge announces: read on before going back.
	full bool
	// wFn is writeOnce, bound once (raw.Write's callback).
	wFn func(fd uintptr) bool
	// goFn is runLooped, bound once, and from its argument: a go
	// statement with arguments allocates a closure per call.
	goFn func()
	from int
}

// netLoop is one event loop: an epoll set and the goroutine that waits on
// it. The epoll descriptor is itself registered with the runtime's
// netpoller, so the loop parks like any goroutine (no thread blocked in
// epoll_wait) and wakes when any of its connections is readable.
type netLoop struct {
	srv  *Server
	epfd int
	file *os.File // epfd, for the runtime's poller
	rc   syscall.RawConn
	// waitFn is wait bound once; nev and werr its results.
	waitFn func(fd uintptr) bool
	nev    int
	werr   error
	events [maxEvents]syscall.EpollEvent

	mu    sync.Mutex
	conns []*conn // by file descriptor; guarded by mu

	// The batch being served: the connections read and the arguments of
	// the HandleGets call, reused.
	batch []*conn
	done  int   // batch[:done] are answered and no longer the loop's
	cur   *conn // the connection take is reading
	list  []*protocol.Request
	lresp []*protocol.Response
	errs  []error
}

// loopSupported: this platform has the event loop.
const loopSupported = true

func newLoop(s *Server) (*netLoop, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("server: epoll_create1: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("server: epoll fd non-blocking: %w", err)
	}
	l := &netLoop{srv: s, epfd: fd, file: os.NewFile(uintptr(fd), "epoll")}
	if l.rc, err = l.file.SyscallConn(); err != nil {
		l.file.Close()
		return nil, fmt.Errorf("server: epoll fd: %w", err)
	}
	l.waitFn = l.wait
	return l, nil
}

// startLoops starts one loop per P: the loop serves its connections'
// gets inline, so more Ps than loops would leave cores to the goroutines
// of sets alone.
func (s *Server) startLoops() {
	n := runtime.GOMAXPROCS(0)
	for range n {
		l, err := newLoop(s)
		if err != nil {
			s.log.Error("server: no event loop; serving with a goroutine per connection", "server", s.cfg.Name, "err", err)
			break
		}
		s.loops = append(s.loops, l)
		go l.run()
	}
}

// stopLoops ends the loops (their connections are closed by then).
func (s *Server) stopLoops() {
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	for _, l := range s.loops {
		l.file.Close()
	}
	s.loops = nil
	s.loopsStarted = true // none after this
}

// pickLoop returns the loop for a new connection, starting the loops on
// first use; nil if the connection is to run on its own goroutine.
func (s *Server) pickLoop(c *conn) *netLoop {
	if !s.epoll || c.raw == nil || s.idleTimeout.Load() > 0 {
		return nil
	}
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	if !s.loopsStarted {
		s.loopsStarted = true
		s.startLoops()
	}
	if len(s.loops) == 0 {
		return nil
	}
	s.loopNext++
	return s.loops[s.loopNext%len(s.loops)]
}

// startLooped registers a new connection with a loop (false: it runs on
// its own goroutine instead).
func (s *Server) startLooped(c *conn) bool {
	l := s.pickLoop(c)
	if l == nil {
		return false
	}
	var cerr error
	err := c.raw.Control(func(fd uintptr) {
		c.fd = int(fd)
		l.mu.Lock()
		for len(l.conns) <= c.fd {
			l.conns = append(l.conns, nil)
		}
		l.conns[c.fd] = c
		l.mu.Unlock()
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(fd)}
		cerr = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		l.forget(c)
		return false
	}
	c.loop = l
	c.wFn = c.writeOnce
	c.goFn = c.runLooped
	// The client may have written already: the edge found the state
	// active and set edge. backToLoop takes it back then.
	if c.backToLoop() {
		c.handOff(loopReclaimed)
	}
	return true
}

// epollET is EPOLLET as the uint32 EpollEvent.Events holds it.
const epollET = 1 << 31

// forget drops c from the loop's table (c is closing).
func (l *netLoop) forget(c *conn) {
	l.mu.Lock()
	if c.fd < len(l.conns) && l.conns[c.fd] == c {
		l.conns[c.fd] = nil
	}
	l.mu.Unlock()
}

func (l *netLoop) run() {
	for {
		if err := l.rc.Read(l.waitFn); err != nil {
			return // stopLoops closed the epoll descriptor
		}
		if l.werr != nil {
			l.srv.log.Error("server: epoll_wait failed; loop ends", "server", l.srv.cfg.Name, "err", l.werr)
			return
		}
		l.serveEvents()
	}
}

// wait is run's raw.Read callback: collect the ready events without
// waiting; report false (park until the epoll set is readable) if none.
func (l *netLoop) wait(fd uintptr) bool {
	for {
		n, err := syscall.EpollWait(int(fd), l.events[:], 0)
		if err == syscall.EINTR {
			continue
		}
		l.nev, l.werr = n, err
		return n > 0 || err != nil
	}
}

// serveEvents serves one epoll_wait's ready connections as one batch.
func (l *netLoop) serveEvents() {
	batch := l.batch[:0]
	l.mu.Lock()
	for _, ev := range l.events[:l.nev] {
		if fd := int(ev.Fd); fd < len(l.conns) && l.conns[fd] != nil {
			batch = append(batch, l.conns[fd])
		}
	}
	l.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			// A handler or codec panic: close what the loop owns.
			if l.cur != nil {
				l.cur.panicked(r)
				l.cur.close()
			}
			for _, c := range l.batch[l.done:] {
				c.panicked(r)
				c.close()
			}
		}
		l.cur = nil
		clear(batch)
		l.batch, l.done = batch[:0], 0
	}()
	// Claim and read each. A connection that did not send exactly one
	// whole get is dropped from the batch (take disposed of it).
	n := 0
	for _, c := range batch {
		c.edge.Store(true)
		if !c.state.CompareAndSwap(stateLoop, stateActive) {
			continue // busy on its goroutine, or closed: see looped
		}
		c.edge.Store(false)
		l.cur = c
		if l.take(c) {
			batch[n] = c
			n++
		}
		l.cur = nil
	}
	l.batch = batch[:n]
	l.answer()
}

// take reads what c's client sent. It reports true if that is one whole
// get, parsed into c's burst for the batch; otherwise c is back in the
// loop, closed, or on a goroutine.
func (l *netLoop) take(c *conn) bool {
	n, err, wait := c.rawRead(c.head[:headSize])
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// A deadline its goroutine set (ReadTimeout) passed while the
		// connection idled in the loop, which needs none.
		c.nc.SetReadDeadline(time.Time{})
		c.readDeadline = false
		n, err, wait = c.rawRead(c.head[:headSize])
	}
	switch {
	case wait: // the event was for data already read
		c.toLoop()
		return false
	case err != nil:
		c.readFailed(err)
		c.close()
		return false
	}
	c.headOff, c.headLen = 0, uint8(n)
	c.acquire()
	c.loopIO = true
	b := c.b
	if n == headSize || !c.batchGets {
		c.handOff(loopBurst) // more may be in the socket
		return false
	}
	b.br.Peek(1) // moves head into the bufio reader; no socket read
	if !c.nextIs(runGets) {
		c.handOff(loopBurst)
		return false
	}
	c.reqSeq++
	c.limitKeys(c.groupKeys)
	if err := c.codec.ReadRequest(&b.req); err != nil {
		// The codec answered a malformed line itself, or the stream is
		// lost. Nothing else of this connection is in the batch.
		if c.requestError(err) {
			l.finish(c)
		} else {
			c.flush()
			c.close()
		}
		return false
	}
	c.nreqs++
	if !isGet(&b.req) {
		c.handOff(loopAnswer) // a gat: answered on its goroutine
		return false
	}
	return true
}

// answer runs the batch's gets through one HandleGets call and writes
// each reply.
func (l *netLoop) answer() {
	if len(l.batch) == 0 {
		return
	}
	s := l.srv
	list, lresp := l.list[:0], l.lresp[:0]
	for _, c := range l.batch {
		list, lresp = append(list, &c.b.req), append(lresp, &c.b.resp)
		c.b.resp.Reset()
	}
	if cap(l.errs) < len(list) {
		l.errs = make([]error, maxEvents)
	}
	errs := l.errs[:len(list)]
	clear(errs)
	s.gets.HandleGets(s.ctx, list, lresp, errs)
	// Every reply is encoded before any burst goes back to the pool: a
	// response's hits may point into the first response's arena.
	for i, c := range l.batch {
		if errs[i] != nil {
			c.handlerFailed(list[i], lresp[i], errs[i])
		}
		c.adaptGroup(len(list[i].Keys), hitBytes(lresp[i]))
		if !c.writeResponse(list[i], lresp[i]) && c.werr == nil {
			c.werr = errEncode
		}
	}
	for _, c := range l.batch {
		l.done++
		if c.werr != nil {
			c.close()
			continue
		}
		l.finish(c)
	}
	clear(list)
	clear(lresp)
	clear(errs)
	l.list, l.lresp, l.errs = list[:0], lresp[:0], errs[:0]
}

// errEncode marks a connection whose reply could not be encoded.
var errEncode = errors.New("server: reply not encoded")

// finish ends the loop's turn with c, whose requests so far are answered
// (into its write buffer): flush and back to the loop, or on to a
// goroutine if more is buffered or owed.
func (l *netLoop) finish(c *conn) {
	s := l.srv
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
		c.toLoop()
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
)

// handOff runs c on a goroutine from where the loop left it.
func (c *conn) handOff(from int) {
	c.from = from
	go c.goFn()
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
			if c.reqSeq-seq > 1 {
				// A pipelining client: its next requests are likely on
				// their way. Let the runnable goroutines go first (as
				// waitRequest does), then look once more before the loop
				// gets the connection back: a hand-off each way per burst
				// cost more than this read.
				runtime.Gosched()
				c.full = true
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
		c.rawN, c.rawErr = syscall.Write(int(fd), c.rawP)
		if c.rawErr != syscall.EINTR {
			return true
		}
	}
}
