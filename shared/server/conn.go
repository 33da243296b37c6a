package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/rawio"
)

// Connection states, for Shutdown to tell idle connections from busy ones.
const (
	stateActive int32 = iota // reading, handling or answering requests
	stateIdle                // waiting for the first byte of the next request
	stateClosed              // closed by Shutdown while idle
	stateLoop                // idle, waited for by an event loop (epoll_linux.go)
)

// headSize is the buffer an idle connection waits in. A request that
// fits (a get, a delete, a touch: anything but a value-carrying write or a
// long multi-get) is read whole by the one read that ends the wait, and is
// answered without any further read; a one-byte buffer cost every request
// a second read syscall, and a read deadline set and cleared. 64 bytes keep
// an idle connection nearly free (practice 5).
//
// A longer burst (a pipeline) overflows head, and the request that straddles
// its end needs another read while replies to the requests before it are
// buffered. Those replies must go out before the server blocks, but not
// before it has to: rawRead first reads without waiting, so a burst that is
// already in the socket is still answered with one write. A connection that
// offers no raw access (a net.Pipe in tests) waits in one byte instead, as
// that split can then never leave replies buffered.
const headSize = 64

// maxPooledBytes bounds what a burst may hold and still go back to the
// pool. A burst that carried a 20 MiB value or a 10,000-key get keeps its
// grown buffers; pooling it would pin that memory for every later user, so
// it is left to the garbage collector instead. The bound is well above a
// 100-key multi-get of 1 KiB values (a 128 KiB reply arena): at 64 KiB
// every such burst was dropped and its buffers, arenas and keys allocated
// afresh, and allocation and GC took 42% of rend's CPU in that workload.
// Only bursts in use, not idle connections, hold this memory.
const maxPooledBytes = 1 << 20

// burst is what a connection borrows from the pool while it is busy.
type burst struct {
	br   *bufio.Reader
	bw   *bufio.Writer
	req  protocol.Request
	resp protocol.Response
	gets *getBatch // get batching state; nil until the burst first batches

	// refs are the values the codec handed over by reference since the
	// last write (conn.refValue), in stream order; vec and send are the
	// scratch list of the writev that sends them (send is what
	// net.Buffers.WriteTo consumes; a field, so it does not escape per
	// call). All three are empty between replies: see sendRefs.
	refs []valueRef
	vec  net.Buffers
	send net.Buffers
}

// oversized reports whether the burst's buffers grew past maxPooledBytes.
// It is asked once, when the burst goes back, not after every request:
// Request and Response keep their largest buffers across Reset, so what
// they retain then is the most any request of the burst grew them to.
func (b *burst) oversized() bool {
	n := b.req.Retained() + b.resp.Retained() + int(unsafe.Sizeof(valueRef{}))*cap(b.refs) + int(unsafe.Sizeof([]byte(nil)))*cap(b.vec)
	if b.gets != nil {
		n += b.gets.size()
	}
	return n > maxPooledBytes
}

// conn is one client connection. All fields but state are owned by the
// connection's goroutine.
type conn struct {
	srv *Server
	nc  net.Conn
	// state is stateActive, stateIdle or stateClosed; Shutdown reads it
	// and moves idle connections to stateClosed.
	state atomic.Int32

	codec Codec  // chosen by the first byte of the connection
	b     *burst // borrowed buffers, nil while idle
	// raw reads the socket without waiting (see headSize); nil if nc has
	// no syscall.RawConn. headCap is how much of head the idle read uses.
	raw syscall.RawConn
	// rio reads and writes the socket with raw syscalls (package rawio);
	// nil when raw is.
	rio     *rawio.Conn
	headCap int
	// rawFn is the callback of raw.Read, bound once (a closure per call
	// allocated), and rawP, rawN, rawErr its argument and results.
	rawFn  func(fd uintptr) bool
	rawP   []byte
	rawN   int
	rawErr error
	// batchGets: the handler is a GetBatcher, so buffered gets may be
	// served together (serveRun); binary: the connection speaks the binary
	// protocol (its first byte), which tells nextIs what to look for.
	batchGets, binary bool
	// runs: the handler is a RunBatcher (mg joins get runs; sets run too).
	runs bool
	// gs is the codec if it streams long gets in groups; groupKeys is the
	// size of the next group (see grouping.go).
	gs        groupStreamer
	groupKeys int

	// head holds what the read that ended the idle wait returned: the
	// start of a request, often all of it. head[headOff:headLen] is what
	// the bufio reader has not been given yet.
	head             [headSize]byte
	headOff, headLen uint8

	// reqSeq numbers requests; deadlineSeq is the request the current read
	// deadline was set for. The deadline is set on the first socket read
	// of each request, so it bounds the whole request, not each read, and
	// requests already buffered cost no deadline update.
	reqSeq, deadlineSeq uint64
	readDeadline        bool // a read deadline is set on nc
	// writeDeadline is the write deadline set on nc (zero: none yet).
	writeDeadline time.Time

	// Local counts, added to Stats at each flush (one atomic per batch,
	// not per syscall).
	nread, nwritten, nreqs uint64

	// werr is the first write error. bufio.Writer is sticky too; werr
	// additionally tells a read failure caused by a failed flush apart.
	werr error

	looped // the event loop's part (epoll_linux.go); zero without one
}

// serve runs the connection until the client leaves, a fatal error, or
// shutdown.
func (c *conn) serve() {
	defer func() {
		if r := recover(); r != nil {
			c.panicked(r)
		}
		c.close()
	}()
	for c.waitRequest() {
		c.acquire()
		if !c.serveBurst() {
			return
		}
		c.release()
	}
}

// waitRequest waits, holding no buffers, for the first bytes of the next
// request. It reports false if the connection should close.
//
// This frame and serve's are on the goroutine's stack while it idles. They
// are kept small (deadline setup and logging live in other functions) so
// that the garbage collector can shrink an idle goroutine's stack back to
// its minimum after a burst grew it.
func (c *conn) waitRequest() bool {
	c.state.Store(stateIdle)
	if c.srv.shutting.Load() {
		return false
	}
	c.setIdleDeadline()
	// The client has only just been sent its replies, so a read now
	// would nearly always fail with EAGAIN and park this goroutine in the
	// netpoller, to be woken when the next request arrives: a syscall, a
	// park and a wake-up per request. Let the goroutines that are runnable
	// (other connections, the backends' readers) go first; by the time
	// this one reads, its client's next request has often arrived, and the
	// read returns it at once. With nothing else runnable, Gosched returns
	// at once.
	runtime.Gosched()
	var n int
	var err error
	for n == 0 && err == nil {
		n, err = c.sockRead(c.head[:c.headCap])
	}
	if n == 0 {
		c.idleFailed(err)
		return false
	}
	// With the bytes came an error maybe; the next read reports it again.
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false // Shutdown closed the connection meanwhile
	}
	c.nread += uint64(n)
	c.headOff, c.headLen = 0, uint8(n)
	return true
}

//go:noinline
func (c *conn) setIdleDeadline() {
	if d := time.Duration(c.srv.idleTimeout.Load()); d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
		c.readDeadline = true
	} else if c.readDeadline {
		c.nc.SetReadDeadline(time.Time{})
		c.readDeadline = false
	}
}

//go:noinline
func (c *conn) idleFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s := c.srv
		s.stats.IdleTimeouts.Add(1)
		s.log.Debug("server: idle timeout", "server", s.cfg.Name, "remote", remote(c.nc))
	}
}

// panicked logs a recovered panic. The connection is closed: its stream
// and its burst may be half-written, so the burst goes to the GC.
func (c *conn) panicked(r any) {
	c.srv.stats.Panics.Add(1)
	c.srv.log.Error("server: panic serving connection; closing it",
		"server", c.srv.cfg.Name, "remote", remote(c.nc), "panic", r,
		"stack", string(debug.Stack()))
	c.b = nil
}

// acquire borrows a burst and lends its buffers to the codec.
func (c *conn) acquire() {
	b := c.srv.bursts.Get().(*burst)
	b.br.Reset(c)
	b.bw.Reset(c)
	c.b = b
	if c.codec == nil {
		c.codec = c.srv.newCodec(c.head[0])
		c.batchGets = c.srv.gets != nil
		c.runs = c.srv.runs != nil
		c.binary = c.head[0] == binaryMagic
		c.gs, _ = c.codec.(groupStreamer)
		c.groupKeys = int(c.srv.groupKeys.Load())
		if vr, ok := c.codec.(valueReferrer); ok && gathers(c.nc) {
			vr.SetValueRef(c.refValue) // bound once per connection
		}
	}
	c.codec.Reset(b.br, b.bw)
}

// release takes the buffers back from the codec and returns the burst to
// the pool (unless it grew too big to keep).
func (c *conn) release() {
	b := c.b
	c.b = nil
	c.codec.Reset(nil, nil)
	// Drop the references to this connection so a pooled burst does not
	// keep a closed connection alive.
	b.br.Reset(nil)
	b.bw.Reset(nil)
	clear(b.refs) // empty unless a panic cut a reply short
	b.refs = b.refs[:0]
	if b.oversized() {
		return
	}
	// Keep the value buffer (bounded by oversized): Request.Reset drops
	// it, and then the first set of every burst allocated one. The codecs
	// read each value into it afresh, and nothing of the finished burst
	// refers to it any more.
	v := b.req.Value[:0]
	b.req.Reset()
	b.req.Value = v
	b.resp.Reset()
	if b.gets != nil {
		b.gets.reset()
	}
	c.srv.bursts.Put(b)
}

// serveBurst answers requests until the read buffer is empty (true: go
// idle) or the connection must close (false).
func (c *conn) serveBurst() bool {
	s, b := c.srv, c.b
	for {
		c.reqSeq++
		c.limitKeys(c.groupKeys)
		if err := c.codec.ReadRequest(&b.req); err != nil {
			if !c.requestError(err) {
				// Replies to the requests before this one may still be
				// buffered; they are owed even though the connection ends.
				c.flush()
				return false
			}
			if c.drained() {
				return c.flush()
			}
			continue
		}
		c.nreqs++
		var ok bool
		switch {
		case c.batchGets && isGet(&b.req) && c.nextIs(runGets):
			ok = c.serveRun(runGets)
		case c.runs && b.req.Command == protocol.CmdSet && c.nextIs(runSets):
			ok = c.serveRun(runSets)
		default:
			ok = c.answer(&b.req, &b.resp)
			if b.req.Command.IsRead() {
				c.adaptGroup(len(b.req.Keys), hitBytes(&b.resp))
			}
		}
		if !ok {
			c.flush()
			return false
		}
		if s.shutting.Load() {
			// Graceful shutdown: the request in flight is answered, later
			// ones are not read; the client sees a close and retries.
			c.flush()
			return false
		}
		if c.drained() {
			return c.flush()
		}
	}
}

// drained reports whether every byte read from the socket so far has been
// parsed: nothing left in the bufio reader, nor in head (the bufio reader
// takes head whole on its first fill, but a short Read could leave some).
func (c *conn) drained() bool {
	return c.b.br.Buffered() == 0 && c.headOff == c.headLen && !c.pending()
}

// requestError accounts for an error from ReadRequest. It reports whether
// the stream is still in sync (the codec answered a malformed request);
// otherwise the connection must close.
func (c *conn) requestError(err error) bool {
	s := c.srv
	switch {
	case errors.Is(err, protocol.ErrReplied):
		s.stats.ProtocolErrors.Add(1)
		return true
	case errors.Is(err, protocol.ErrClose):
		s.stats.ProtocolErrors.Add(1)
	default:
		c.readFailed(err)
	}
	return false
}

// answer runs one request through the handler and encodes the reply. It
// reports false if the connection must close.
func (c *conn) answer(req *protocol.Request, resp *protocol.Response) bool {
	s := c.srv
	resp.Reset()
	switch req.Command {
	case protocol.CmdNoop:
		// The codec writes the noop reply; no handler involved.
	case protocol.CmdQuit:
		c.codec.WriteResponse(req, resp)
		return false
	default:
		if err := s.h.Handle(s.ctx, req, resp); err != nil {
			c.handlerFailed(req, resp, err)
		} else if req.Command == protocol.CmdStats && len(req.Args) == 0 && resp.Status == protocol.StatusOK {
			resp.Stats = s.stats.insertStats(resp.Stats)
		}
	}
	return c.writeResponse(req, resp)
}

// writeResponse encodes the reply to req. It reports false if the
// connection must close.
func (c *conn) writeResponse(req *protocol.Request, resp *protocol.Response) bool {
	err := c.codec.WriteResponse(req, resp)
	if len(c.b.refs) > 0 {
		// The reply's values were referenced, not copied: they belong to
		// resp, which the next request (or the batch's reset) reuses, so
		// they go out now. The codec references only a reply that does
		// not fit in the write buffer, which is written during it anyway.
		if ferr := c.sendRefs(); err == nil && ferr != nil {
			return false // werr is set: a socket error, logged at close
		}
	}
	if err != nil {
		if c.werr == nil {
			// Not a socket error: the codec could not encode the reply,
			// and the stream may now hold half of it.
			s := c.srv
			s.log.Error("server: encoding reply failed; closing connection",
				"server", s.cfg.Name, "cmd", req.Command.String(), "err", err)
		}
		return false
	}
	return true
}

// handlerFailed turns a handler's error into a SERVER_ERROR reply. The
// error text is logged, never sent.
func (c *conn) handlerFailed(req *protocol.Request, resp *protocol.Response, err error) {
	s := c.srv
	s.stats.HandlerErrors.Add(1)
	if ok, suppressed := s.handlerLog.allow(time.Now()); ok {
		s.log.Warn("server: handler failed",
			"server", s.cfg.Name, "cmd", req.Command.String(), "err", err, "suppressed", suppressed)
	}
	msg := resp.Message
	if msg == "" {
		msg = HandlerErrorMessage
	}
	// Hits or stats a failing handler left behind must not be encoded.
	resp.Reset()
	resp.ServerError(msg)
}

// readFailed records why reading a request failed.
func (c *conn) readFailed(err error) {
	s := c.srv
	switch {
	case c.werr != nil:
		s.log.Debug("server: write failed", "server", s.cfg.Name, "remote", remote(c.nc), "err", c.werr)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		// The client left (or Shutdown closed us): nothing to report.
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.stats.ReadTimeouts.Add(1)
		s.log.Debug("server: read timeout inside a request", "server", s.cfg.Name, "remote", remote(c.nc))
	default:
		s.log.Debug("server: read failed", "server", s.cfg.Name, "remote", remote(c.nc), "err", err)
	}
}

// flush writes the buffered replies and reports whether the connection is
// still writable.
func (c *conn) flush() bool {
	err := c.b.bw.Flush()
	c.addStats()
	return err == nil
}

// addStats moves the local counts into the shared Stats.
func (c *conn) addStats() {
	st := c.srv.stats
	if c.nread != 0 {
		st.BytesRead.Add(c.nread)
		c.nread = 0
	}
	if c.nwritten != 0 {
		st.BytesWritten.Add(c.nwritten)
		c.nwritten = 0
	}
	if c.nreqs != 0 {
		st.Requests.Add(c.nreqs)
		c.nreqs = 0
	}
}

// close releases everything the connection holds.
func (c *conn) close() {
	s := c.srv
	c.state.Store(stateClosed)
	c.nc.Close()
	if c.b != nil {
		c.release()
	}
	c.addStats()
	if c.loop != nil {
		c.loop.forget(c)
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.stats.CurrConns.Add(-1)
	s.wg.Done()
}

// Read is the io.Reader under the borrowed bufio.Reader: it yields the bytes
// read while idle, then reads the socket.
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.headOff < c.headLen {
		n := copy(p, c.head[c.headOff:c.headLen])
		c.headOff += uint8(n)
		return n, nil
	}
	c.setReadDeadline()
	// About to wait for the client: first send the replies it may be
	// waiting for. A request split across packets must not hold back the
	// answers to the requests before it. But if the rest of a burst is
	// already in the socket, read it first: its replies join this write.
	if c.b != nil && c.b.bw.Buffered() > 0 {
		if c.raw != nil {
			if n, err, wait := c.rawRead(p); !wait {
				return n, err
			}
		}
		if err := c.b.bw.Flush(); err != nil {
			return 0, err
		}
	}
	n, err := c.sockRead(p)
	c.nread += uint64(n)
	c.full = n == len(p)
	return n, err
}

// sockRead reads the socket, waiting for bytes (raw when it can: rawio).
func (c *conn) sockRead(p []byte) (int, error) {
	if c.rio != nil {
		return c.rio.Read(p)
	}
	return c.nc.Read(p)
}

// setReadDeadline arms ReadTimeout at the first socket read of a request.
func (c *conn) setReadDeadline() {
	if c.deadlineSeq != c.reqSeq {
		c.deadlineSeq = c.reqSeq
		if d := c.srv.cfg.ReadTimeout; d > 0 {
			c.nc.SetReadDeadline(time.Now().Add(d))
			c.readDeadline = true
		} else if c.readDeadline {
			c.nc.SetReadDeadline(time.Time{})
			c.readDeadline = false
		}
	}
}

// rawRead reads what the socket holds into p without waiting. wait reports
// that it holds nothing (the caller then flushes and reads normally).
func (c *conn) rawRead(p []byte) (n int, err error, wait bool) {
	if c.rawFn == nil {
		c.rawFn = c.readNow
	}
	c.rawP = p
	rerr := c.raw.Read(c.rawFn)
	n, serr := c.rawN, c.rawErr
	c.rawP, c.rawErr = nil, nil
	switch {
	case rerr != nil: // closed, or the read deadline passed
		return 0, rerr, false
	case serr == syscall.EAGAIN:
		return 0, nil, true
	case serr != nil:
		return 0, serr, false
	case n == 0:
		return 0, io.EOF, false
	}
	c.nread += uint64(n)
	c.full = n == len(p)
	return n, nil, false
}

// readNow is rawRead's raw.Read callback: one read of the socket into rawP.
func (c *conn) readNow(fd uintptr) bool {
	for {
		if c.rio != nil {
			c.rawN, c.rawErr = rawio.RawReadFd(fd, c.rawP)
		} else {
			c.rawN, c.rawErr = syscall.Read(int(fd), c.rawP)
		}
		if c.rawErr != syscall.EINTR {
			return true // never wait here
		}
	}
}

// Write is the io.Writer under the borrowed bufio.Writer. Each socket
// write gets at least 3/4 of WriteTimeout, so a client that stops reading
// cannot pin the connection (and its borrowed buffers) forever.
//
// The deadline is moved only once a quarter of WriteTimeout has passed
// since it was set, not on every write: setting it re-arms a runtime timer
// (locks and a heap update), which at one write per request was a visible
// part of a small request's cost.
func (c *conn) Write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	if c.loopIO {
		return c.writeNow(p)
	}
	if d := c.srv.cfg.WriteTimeout; d > 0 {
		if now := time.Now(); c.writeDeadline.Sub(now) < d-d/4 {
			c.writeDeadline = now.Add(d)
			c.nc.SetWriteDeadline(c.writeDeadline)
		}
	}
	if c.b != nil && len(c.b.refs) > 0 {
		return c.writeRefs(p)
	}
	var n int
	var err error
	if c.rio != nil {
		n, err = c.rio.Write(p)
	} else {
		n, err = c.nc.Write(p)
	}
	c.nwritten += uint64(n)
	if err != nil {
		c.werr = err
		c.srv.stats.WriteErrors.Add(1)
	}
	return n, err
}

func remote(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}
