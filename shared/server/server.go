// Package server runs moneta's client-facing memcached listeners. Both rend
// and mnemonic use it.
//
// A Server accepts connections, picks the protocol from a connection's first
// byte (0x80: binary, anything else: text and meta), and serves each
// connection on one goroutine: read a request with the Codec, call the
// protocol.Handler inline, encode the reply, read the next. There is no
// goroutine or channel per request.
//
// Replies are flushed once per batch: after a reply, only when the read
// buffer holds no further request, and always before the server would block
// waiting for the client. A pipeline of N requests that arrives in one read
// is answered with one write.
//
// A reply too large for the write buffer's free space (a 100-key multi-get
// of 1 KiB values, one big item) is not copied into it: the codec hands its
// values over by reference and the server sends the buffered bytes and those
// values with one writev right after encoding it, before the Response they
// belong to is reused (see Codec and conn.refValue). A value is then copied
// once in user space, from the backend's read buffer into the Response.
//
// A Handler that also implements GetBatcher receives the text get requests
// of a pipeline that are already buffered back to back in one call, so it
// can fetch all their keys with one backend round trip; each still gets its
// own reply, in order. A RunBatcher also receives buffered meta gets with
// the gets, and runs of buffered sets in one HandleSets call.
//
// A long multi-get is streamed: the text codec returns its line in groups
// of keys sized so that one group's hits stay near Config.GetGroupBytes,
// and each group is answered and written before the next is fetched, so
// "get big big big ..." costs one copy of big, not one per name (see
// grouping.go). Request values are read into buffers that grow as bytes
// arrive, charged to a process-wide budget (Config.MaxValueBytes); a value
// past it is refused with memcached's out-of-memory answer while other
// clients go on being served.
//
// Idle connections are nearly free. A connection owns a goroutine, a socket,
// a codec and a 64-byte buffer; it waits for the first bytes of its next
// request in that buffer (which often receives the whole request). The bufio
// reader and writer, the Request and the Response come from a pool when those
// bytes arrive and go back when the burst of requests is answered and nothing
// more is buffered.
//
// One Server serves one Handler, on as many listeners as Serve is called
// with. Listeners that need different handlers (rend's regular and batch
// ports) get a Server each; pass the same Config.Stats to both so that
// connections are counted and limited for the process as a whole.
//
// A handler's answer to a general "stats" gets the connection lines
// (curr_connections, total_connections, ...) from the server, which inserts
// them after the handler's pointer_size line; Server.Stats returns the
// counters for the metrics endpoint.
//
// Every Handle call gets the server's context, which is cancelled when
// Shutdown's deadline passes or Close is called: a handler waiting on a
// backend should give up then. A handler error is logged (rate limited)
// and answered SERVER_ERROR with Response.Message, or HandlerErrorMessage;
// a handler panic is logged and closes only its connection.
package server

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/binproto"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/rawio"
	"github.com/moneta-cache/moneta/shared/textproto"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close.
var ErrServerClosed = errors.New("server: closed")

// HandlerErrorMessage is the SERVER_ERROR text sent when a Handler returns
// an error without setting Response.Message. A Go error's text never goes
// on the wire: it may leak internals and it is not a stable protocol word.
const HandlerErrorMessage = "internal error"

// rejectMessage is written to a connection refused for exceeding MaxConns.
const rejectMessage = "SERVER_ERROR too many open connections\r\n"

// binaryMagic is the first byte of every binary protocol request.
const binaryMagic = 0x80

// Compile-time checks that the codecs fit. They live here, not in the codec
// packages, so those never need to import this one.
var (
	_ Codec = (*textproto.ServerCodec)(nil)
	_ Codec = (*binproto.ServerCodec)(nil)
)

// Server serves one protocol.Handler on any number of listeners.
type Server struct {
	cfg Config
	// maxConns and idleTimeout start as cfg's and change with SetLimits
	// (SIGHUP), so the accept loop and connections read them atomically.
	maxConns    atomic.Int64
	idleTimeout atomic.Int64 // time.Duration
	h           protocol.Handler
	gets        GetBatcher // h, if it batches gets; else nil
	runs        RunBatcher // h, if it also batches mg and sets; else nil
	// groupKeys is the multi-get group size the last connection to adapt
	// it settled on; a new connection starts from it (see grouping.go).
	groupKeys atomic.Int64
	stats     *Stats
	log       *slog.Logger

	// newCodec builds a connection's codec from its first byte. Tests of
	// the connection loop substitute a codec of their own.
	newCodec func(first byte) Codec

	// bursts pools the buffers connections borrow while busy (*burst).
	bursts sync.Pool

	// ctx is given to every Handle call. It is cancelled when Shutdown's
	// deadline passes or Close is called, so handlers blocked on a backend
	// give up.
	ctx    context.Context
	cancel context.CancelFunc

	// shutting is set once, by Shutdown or Close, before they look at the
	// connections. A connection checks it after marking itself idle: so
	// either Shutdown's sweep sees the connection idle and closes it, or
	// the connection sees the flag and closes itself (see conn.waitRequest).
	shutting atomic.Bool
	// closing is closed with shutting set; it interrupts accept back-off.
	closing chan struct{}

	mu        sync.Mutex                // guards listeners, conns, and wg.Add against Shutdown
	listeners map[net.Listener]struct{} // guarded by mu
	conns     map[*conn]struct{}        // guarded by mu
	wg        sync.WaitGroup            // one per connection goroutine

	acceptLog  logLimiter
	handlerLog logLimiter

	// epoll: Config.NetLoop is "epoll". The loops start with the first
	// connection (loopsStarted) and end with Shutdown or Close.
	epoll        bool
	loopMu       sync.Mutex
	loops        []*netLoop // guarded by loopMu
	loopsStarted bool       // guarded by loopMu
	loopNext     int        // guarded by loopMu
	// hands runs the loops' hand-offs on parked goroutines (workers.go).
	hands *workers
}

// handWorkers bounds the goroutines parked for hand-offs (each keeps its
// grown stack, a few KiB).
const handWorkers = 128

// New returns a Server for h. It applies cfg.EnsureDefaults and fails if
// cfg.Validate does.
func New(cfg Config, h protocol.Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("server: nil handler")
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := cfg.Stats
	if st == nil {
		st = new(Stats)
	}
	st.MaxConns.Store(int64(cfg.MaxConns))
	st.budget.CompareAndSwap(nil, protocol.NewBudget(cfg.MaxValueBytes))
	budget := st.budget.Load()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:        cfg,
		h:          h,
		stats:      st,
		log:        cfg.Logger,
		ctx:        ctx,
		cancel:     cancel,
		closing:    make(chan struct{}),
		listeners:  make(map[net.Listener]struct{}),
		conns:      make(map[*conn]struct{}),
		acceptLog:  logLimiter{interval: time.Second},
		handlerLog: logLimiter{interval: time.Second},
	}
	s.epoll = cfg.NetLoop == NetLoopEpoll
	s.hands = newWorkers(handWorkers, s.closing)
	s.maxConns.Store(int64(cfg.MaxConns))
	s.idleTimeout.Store(int64(cfg.IdleTimeout))
	s.gets, _ = h.(GetBatcher)
	s.runs, _ = h.(RunBatcher)
	lim := cfg.Limits
	s.newCodec = func(first byte) Codec {
		if first == binaryMagic {
			c := binproto.NewServerCodec(lim)
			c.SetBudget(budget)
			return c
		}
		c := textproto.NewServerCodec(lim)
		c.SetBudget(budget)
		return c
	}
	s.groupKeys.Store(initialGroupKeys)
	rsize, wsize := cfg.ReadBufferSize, cfg.WriteBufferSize
	s.bursts.New = func() any {
		return &burst{
			br: bufio.NewReaderSize(nil, rsize),
			bw: bufio.NewWriterSize(nil, wsize),
		}
	}
	return s, nil
}

// Stats returns the server's counters (Config.Stats if one was given).
func (s *Server) Stats() *Stats { return s.stats }

// ListenAndServe listens on a moneta address ("host:port", "unix:/path")
// and serves it until Shutdown or Close. A Unix socket gets
// Config.SocketMode; a stale socket file left by a dead process is replaced.
func (s *Server) ListenAndServe(address string) error {
	ln, err := addr.Listen(address, s.cfg.SocketMode)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close, which close ln
// and make Serve return ErrServerClosed. It may run for several listeners
// at once. Accept errors never end it: it backs off (5ms doubling to 1s)
// and retries, so running out of file descriptors degrades service instead
// of killing the process. It returns other errors only if ln is closed by
// someone else.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			s.stats.AcceptErrors.Add(1)
			delay = nextAcceptBackoff(delay)
			if ok, suppressed := s.acceptLog.allow(time.Now()); ok {
				s.log.Warn("server: accept failed, backing off",
					"server", s.cfg.Name, "addr", ln.Addr().String(), "err", err,
					"retry_in", delay, "suppressed", suppressed)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.closing:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		s.startConn(nc)
	}
}

// startConn admits nc, or refuses it when MaxConns are open.
func (s *Server) startConn(nc net.Conn) {
	s.stats.TotalConns.Add(1)
	// Add first, then compare: concurrent accept loops (several listeners,
	// several servers sharing Stats) cannot both slip under the limit.
	if n := s.stats.CurrConns.Add(1); n > s.maxConns.Load() {
		s.stats.CurrConns.Add(-1)
		s.stats.RejectedConns.Add(1)
		// A fresh socket's send buffer is empty, so this write does not
		// block the accept loop; the deadline is a guard all the same.
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write([]byte(rejectMessage))
		nc.Close()
		return
	}
	c := &conn{srv: s, nc: nc, headCap: 1}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw, c.headCap = raw, headSize
			if gathers(nc) && !s.cfg.RuntimeSyscalls {
				// Not a wrapper: its own Write or Read would be skipped.
				c.rio = rawio.New(raw)
			}
		}
	}
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		s.stats.CurrConns.Add(-1)
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	if !s.startLooped(c) {
		go c.serve()
	}
}

// Shutdown stops the server gracefully: it closes the listeners, closes
// idle connections at once, lets connections in the middle of a request
// finish that request (each then closes), and returns nil when all are
// gone. If ctx ends or Config.ShutdownTimeout passes first, it cancels the
// context handlers run with, closes every connection and returns the
// context's error.
func (s *Server) Shutdown(ctx context.Context) error {
	if d := s.cfg.ShutdownTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	s.beginShutdown()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		s.stopLoops()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.closeConns(false)
		s.stopLoops()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, without waiting
// for requests in flight.
func (s *Server) Close() error {
	s.beginShutdown()
	s.cancel()
	s.closeConns(false)
	s.stopLoops()
	return nil
}

// beginShutdown sets the shutting flag, closes the listeners and the idle
// connections. It is idempotent.
func (s *Server) beginShutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Swap(true) {
		return
	}
	close(s.closing)
	for ln := range s.listeners {
		ln.Close()
	}
	s.closeConnsLocked(true)
}

func (s *Server) closeConns(idleOnly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeConnsLocked(idleOnly)
}

// closeConnsLocked closes the idle connections, or all of them. A
// connection is idle only while its state is stateIdle; the CAS makes the
// connection's own idle-to-active transition and this close exclusive.
func (s *Server) closeConnsLocked(idleOnly bool) {
	for c := range s.conns {
		if c.state.CompareAndSwap(stateLoop, stateClosed) {
			// Idle in an event loop: no goroutine of its own to notice.
			go c.close()
			continue
		}
		if c.state.CompareAndSwap(stateIdle, stateClosed) || !idleOnly {
			c.nc.Close()
		}
	}
}

// SetLimits changes the connection limit and the idle timeout of a running
// server, for a configuration reload. Connections already open above a
// lowered limit stay open; the new idle timeout applies from each
// connection's next wait. Values below 1 (maxConns) or 0 (idle) are ignored.
func (s *Server) SetLimits(maxConns int, idle time.Duration) {
	if maxConns >= 1 {
		s.maxConns.Store(int64(maxConns))
		s.stats.MaxConns.Store(int64(maxConns))
	}
	if idle >= 0 {
		s.idleTimeout.Store(int64(idle))
	}
}
