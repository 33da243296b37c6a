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
	"unsafe"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// The event loop (Config.NetLoop "epoll"). With a goroutine per connection,
// every request of a client that sends one request at a time costs a read
// that fails with EAGAIN, a park in the runtime's netpoller and a wake-up,
// and then a park and a wake-up for the handler's backend round trip of
// its own. The loop instead waits for all its connections with one epoll
// set, reads a connection only when epoll says it is readable, and answers
// the single get (get, gets, mg) each ready connection sent with one
// HandleGets call for all of them, on one goroutine per batch: one backend
// round trip, one park and one wake-up, for every client that was ready at
// once. The connection side (hand-offs, non-blocking writes) is in
// epoll_conn_linux.go.
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

	cur  *conn        // the connection take is reading
	free []*loopBatch // guarded by mu
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
		// Let the batch just started, and the goroutines it wakes, run
		// before the next epoll_wait: its backend request goes out at
		// once, and the clients answered meanwhile have sent their next
		// requests, so the next batch is larger and the loop parks less.
		runtime.Gosched()
	}
}

// wait is run's raw.Read callback: collect the ready events without
// waiting; report false (park until the epoll set is readable) if none.
func (l *netLoop) wait(fd uintptr) bool {
	for {
		n, err := l.poll(int(fd))
		if err == syscall.EINTR {
			continue
		}
		l.nev, l.werr = n, err
		return n > 0 || err != nil
	}
}

// poll collects the ready events without waiting (timeout 0). As a raw
// syscall (the default, Config.RuntimeSyscalls off) the loop keeps its P
// for the call, as the sockets' reads and writes do (package rawio): on
// the runtime's syscall path, this was the one call left that put the P
// in the syscall state, thousands of times a second, and a loop thread
// the kernel preempts inside it lets sysmon retake the P and hand it to
// another thread (a futex wake-up, the slow exitsyscall) and then keep
// waking every 20 µs.
func (l *netLoop) poll(fd int) (int, error) {
	if l.srv.cfg.RuntimeSyscalls {
		return syscall.EpollWait(fd, l.events[:], 0)
	}
	// epoll_pwait with no signal mask is epoll_wait (arm64 has only the
	// former).
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(fd), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// serveEvents reads one epoll_wait's ready connections and hands the
// single gets among them, as one batch, to a goroutine (loopBatch.serve).
// The loop does not wait for the batch's backend round trip: it goes on
// reading the connections that become ready meanwhile, so the backend
// works on one batch while rend reads the next, as it does with a
// goroutine per connection.
func (l *netLoop) serveEvents() {
	b := l.getBatch()
	conns := b.conns[:0]
	l.mu.Lock()
	for _, ev := range l.events[:l.nev] {
		if fd := int(ev.Fd); fd < len(l.conns) && l.conns[fd] != nil {
			conns = append(conns, l.conns[fd])
		}
	}
	l.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			// A codec panic: close the connection being read, and
			// those read before it.
			for _, c := range append(b.conns, l.cur) {
				if c != nil {
					c.panicked(r)
					c.close()
				}
			}
			l.cur = nil
			l.putBatch(b)
		}
	}()
	// Claim and read each. A connection that did not send exactly one
	// whole get is dropped from the batch (take disposed of it).
	n := 0
	for _, c := range conns {
		c.edge.Store(true)
		if !c.state.CompareAndSwap(stateLoop, stateActive) {
			continue // busy on its goroutine, or closed: see looped
		}
		c.edge.Store(false)
		b.conns = conns[:n]
		l.cur = c
		if l.take(c) {
			conns[n] = c
			n++
		}
		l.cur = nil
	}
	clear(conns[n:])
	b.conns = conns[:n]
	if n == 0 {
		l.putBatch(b)
		return
	}
	l.srv.hands.spawn(b.run)
}

// loopBatch is one HandleGets call of a loop's connections, served on a
// goroutine of its own; pooled by the loop with its slices.
type loopBatch struct {
	l     *netLoop
	conns []*conn
	list  []*protocol.Request
	lresp []*protocol.Response
	errs  []error
	done  int    // conns[:done] are finished, no longer the batch's
	run   func() // serve, bound once
}

func (l *netLoop) getBatch() *loopBatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	b := &loopBatch{l: l}
	b.run = b.serve
	return b
}

func (l *netLoop) putBatch(b *loopBatch) {
	clear(b.conns)
	b.conns, b.done = b.conns[:0], 0
	l.mu.Lock()
	l.free = append(l.free, b)
	l.mu.Unlock()
}

// serve runs the batch's gets through one HandleGets call, writes each
// reply and hands each connection on (finish).
func (b *loopBatch) serve() {
	s := b.l.srv
	defer func() {
		if r := recover(); r != nil {
			for _, c := range b.conns[b.done:] {
				c.panicked(r)
				c.close()
			}
		}
		b.l.putBatch(b)
	}()
	list, lresp := b.list[:0], b.lresp[:0]
	for _, c := range b.conns {
		list, lresp = append(list, &c.b.req), append(lresp, &c.b.resp)
		c.b.resp.Reset()
	}
	if cap(b.errs) < len(list) {
		b.errs = make([]error, maxEvents)
	}
	errs := b.errs[:len(list)]
	clear(errs)
	s.gets.HandleGets(s.ctx, list, lresp, errs)
	// Every reply is encoded before any burst goes back to the pool: a
	// response's hits may point into the first response's arena.
	for i, c := range b.conns {
		if errs[i] != nil {
			c.handlerFailed(list[i], lresp[i], errs[i])
		}
		c.adaptGroup(len(list[i].Keys), hitBytes(lresp[i]))
		if !c.writeResponse(list[i], lresp[i]) && c.werr == nil {
			c.werr = errEncode
		}
	}
	for _, c := range b.conns {
		b.done++
		if c.werr != nil {
			c.close()
			continue
		}
		c.finishTurn()
	}
	clear(list)
	clear(lresp)
	clear(errs)
	b.list, b.lresp = list[:0], lresp[:0]
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
		// More may be in the socket. A get line longer than the head (a
		// multi-get) is what the client will likely send again: serve it
		// as a pipelining client is (servePipelined).
		if longGet(c) {
			c.handOff(loopSticky)
		} else {
			c.handOff(loopBurst)
		}
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
			c.finishTurn()
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
