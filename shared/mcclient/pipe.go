package mcclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/moneta-cache/moneta/shared/rawio"
)

// A call moves through these states. The caller encodes its own Requests
// (under the pipe's write lock, enqueue), so the pipe reads a Request only in
// stReading (its keys, to match classic gets replies), and writes the
// Responses only in stReading; a caller whose context ends may walk away
// (stAbandoned) only from stSent, in which nobody touches them, and otherwise
// waits for the short remainder. Every transition is a CAS, so the caller
// and the pipe never both act on a call.
const (
	stSent      int32 = iota // encoded and queued for the reader; the Requests are no longer needed
	stReading                // the reader is filling the Responses
	stDone                   // finished; the caller receives on done
	stAbandoned              // the caller left; the pipe recycles the call
)

// call is one Handle or Do in flight. Calls are pooled by the Client; the
// fields below are written by the caller before the call is queued and are
// read-only afterwards, except state, err and the Responses (see states).
type call struct {
	state atomic.Int32
	// done receives one value when the call finishes, unless abandoned.
	done chan struct{}
	// err is the transport failure, written by the pipe before done.
	err error
	// deadline ends the caller's wait (Config.RequestTimeout after the call
	// started). No timer per call: waiting callers check it at each tick of
	// the Client's clock (Client.tick).
	deadline time.Time

	reqs  []*protocol.Request
	resps []*protocol.Response
	ops   []op

	// one and oneResp back reqs/resps for Handle, so it allocates no slice.
	one     [1]*protocol.Request
	oneResp [1]*protocol.Response
}

// pipe is one live connection. It is never reused: when the connection fails,
// the pipe drains and its slot dials a new one.
//
// Writes are combined (see enqueue and flush): a caller appends its commands
// to wbuf under wmu, and the first caller to find nobody flushing takes the
// flush token and writes everything buffered, its own commands and those of
// the callers who arrived meanwhile, with one syscall. The writer goroutine
// holds the token only when the socket is full (the rest of a write then
// waits there, not in a caller who must stay free to time out), or always
// when Config.Writes is WriteHandoff.
type pipe struct {
	c   *Client
	nc  net.Conn
	raw syscall.RawConn // nil if nc has none: every flush is the writer's then

	// sem holds one token per call admitted to this pipe (encoded, awaiting
	// or being read); its capacity is MaxInFlight, so the sends into pending
	// below never block.
	sem     chan struct{}
	pending chan *call // caller -> reader, in wire order (sent under wmu)

	// wmu guards closed, wbuf, inBuf and flushing. The drain sets closed
	// under it, after which no call can enter pending and a drain is sure to
	// see every queued call.
	wmu    sync.Mutex
	closed bool
	// wbuf holds the commands of calls not yet taken by a flush; inBuf is
	// how many calls they are.
	wbuf  []byte
	inBuf uint64
	// flushing is set while someone holds the flush token (a caller in
	// flush, or the writer goroutine): callers who find it set leave their
	// commands in wbuf for the holder, which writes until wbuf is empty.
	flushing bool

	// kick hands the flush token to the writer goroutine (capacity 1: the
	// token has one holder, and the writer takes the kick before it can
	// give the token back).
	kick chan struct{}

	// Owned by the flush token's holder.
	spare []byte // the buffer wbuf is swapped with at each write
	// rest is the unwritten tail of a write the socket did not take at once
	// (restBuf its whole buffer), handed to the writer with the token.
	rest, restBuf []byte
	// rawFn is writeFd bound once (a method value per write allocates);
	// rawBuf, rawN and rawErr are its argument and results.
	rawFn  func(fd uintptr) bool
	rawBuf []byte
	rawN   int
	rawErr error

	// dead is closed on the first failure; err (written once, before dead is
	// closed) says why.
	dead     chan struct{}
	failOnce sync.Once
	err      error

	// sent and answered count calls handed to the reader and finished by it;
	// the watchdog compares them to tell a stuck connection from an idle one.
	sent     atomic.Uint64
	answered atomic.Uint64
	// partial counts runs of 128 replies read within one call, so that the
	// watchdog sees a huge batch (a 20 MiB L1 item is 20,000 sets) making
	// progress before it completes.
	partial atomic.Uint64

	wg sync.WaitGroup // writer and reader goroutines

	// Owned by the reader goroutine.
	rr      replyReader
	discard protocol.Response // absorbs the replies of abandoned calls
}

// Buffer sizes. Reads: values up to readBufSize-2 bytes are copied once,
// from the read buffer into the Response (larger ones are read into the
// Response directly, mostly by the kernel), and readBufSize is also the
// longest reply line accepted. Writes: a batch is flushed when it reaches
// flushSize even if more calls are queued, bounding latency and the buffer;
// a buffer grown past maxWriteKeep by a large value is dropped.
const (
	readBufSize  = 32 << 10
	flushSize    = 64 << 10
	maxWriteKeep = 1 << 20
)

// Errors a call can fail with; test them with errors.Is.
var (
	// ErrUnavailable: no connection to the server is up.
	ErrUnavailable = errors.New("mcclient: backend unavailable")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("mcclient: client closed")
	// ErrTimeout: no reply within Config.RequestTimeout.
	ErrTimeout = errors.New("mcclient: request timed out")
	// ErrConnLost: the connection failed while the call was pending.
	ErrConnLost = errors.New("mcclient: connection lost")
	// errUnsolicited: the server sent bytes nobody asked for.
	errUnsolicited = errors.New("mcclient: unsolicited data from server")
)

func newPipe(c *Client, nc net.Conn) *pipe {
	n := c.cfg.MaxInFlight
	p := &pipe{
		c:       c,
		nc:      nc,
		sem:     make(chan struct{}, n),
		pending: make(chan *call, n),
		kick:    make(chan struct{}, 1),
		dead:    make(chan struct{}),
	}
	if sc, ok := nc.(syscall.Conn); ok && c.cfg.Writes == WriteCombine {
		p.raw, _ = sc.SyscallConn()
	}
	p.rawFn = p.writeFd
	// Reads without the runtime's syscall state when the socket allows it
	// (package rawio): a 32 KiB read of a multi-get's reply can outlast a
	// sysmon tick, and then the reader's P would be handed off.
	var rd io.Reader = nc
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn: // not a wrapper whose Read matters
		if rc := rawio.Of(nc); rc != nil && !c.cfg.RuntimeSyscalls {
			rd = rc
		}
	}
	p.rr = replyReader{br: bufio.NewReaderSize(rd, readBufSize), maxValue: c.cfg.MaxValueSize}
	return p
}

// fail marks the pipe dead with cause and closes the socket, which unblocks
// the writer and reader. Only the first cause is kept.
func (p *pipe) fail(cause error) {
	p.failOnce.Do(func() {
		if errors.Is(cause, ErrTimeout) || errors.Is(cause, ErrClosed) {
			p.err = fmt.Errorf("%w (%s)", cause, p.c.cfg.Addr)
		} else {
			p.err = fmt.Errorf("%w (%s): %w", ErrConnLost, p.c.cfg.Addr, cause)
		}
		close(p.dead)
		p.nc.Close()
	})
}

func (p *pipe) isDead() bool {
	select {
	case <-p.dead:
		return true
	default:
		return false
	}
}

// load is the number of calls admitted and not finished, for picking the
// least loaded connection.
func (p *pipe) load() int { return len(p.sem) }

// enqueue admits cl to the pipe: it encodes cl's commands into the write
// buffer, queues cl for the reader and makes sure the bytes get written
// (flush). It returns false, with nothing sent, when the pipe died first (the
// caller may try another), and an error when the caller's context or
// deadline ended while the pipe was full.
func (p *pipe) enqueue(cl *call, ctx context.Context) (bool, error) {
	select {
	case p.sem <- struct{}{}:
	default:
		if ok, err := p.admit(cl, ctx); !ok {
			return false, err
		}
	}
	p.wmu.Lock()
	if p.closed {
		p.wmu.Unlock()
		<-p.sem
		return false, nil
	}
	for i := range cl.ops {
		o := &cl.ops[i]
		p.wbuf = appendOp(p.wbuf, o, cl.reqs[o.req])
	}
	// Queued for the reader before its bytes can be written, so the reader
	// always finds the call of any reply that arrives.
	cl.state.Store(stSent)
	p.sent.Add(1)
	p.inBuf++
	p.pending <- cl // never blocks: sem bounds the calls in pending
	if p.flushing {
		// The holder of the flush token writes until wbuf is empty, so it
		// will write these bytes too.
		p.wmu.Unlock()
		return true, nil
	}
	p.flushing = true
	if p.raw == nil {
		p.wmu.Unlock()
		p.kick <- struct{}{}
		return true, nil
	}
	p.flush()
	return true, nil
}

// admit waits for room in a full pipe. It reports false when the pipe died
// first (nil error) or the caller's context or deadline ended.
func (p *pipe) admit(cl *call, ctx context.Context) (bool, error) {
	for {
		tick := p.c.tick.Load()
		select {
		case p.sem <- struct{}{}:
			return true, nil
		case <-p.dead:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.c:
			if !time.Now().Before(cl.deadline) {
				return false, fmt.Errorf("%w (%s): connection queue full", ErrTimeout, p.c.cfg.Addr)
			}
		}
	}
}

// Flush bounds. A caller holding the flush token writes at most
// maxCallerWrites times before it hands the token to the writer goroutine,
// so that callers who keep arriving cannot hold it in the writing role for
// long. A batch is written without yielding once it reaches flushSize.
const maxCallerWrites = 4

// flush writes wbuf, and whatever callers add to it meanwhile, until it is
// empty, then gives up the flush token. The caller holds wmu and the token;
// flush returns with wmu released. It never waits for the socket: what the
// socket does not take at once goes, with the token, to the writer goroutine,
// which may block on it (a caller must stay free to time out).
func (p *pipe) flush() {
	yielded := false
	for writes := 0; ; writes++ {
		if len(p.wbuf) == 0 {
			p.flushing = false
			p.wmu.Unlock()
			return
		}
		if writes == maxCallerWrites {
			p.wmu.Unlock()
			p.kick <- struct{}{}
			return
		}
		// Other calls in flight whose callers are likely about to send again
		// (the reader is waking them with their replies): yield once, so
		// they can join this write instead of each paying a syscall. A lone
		// caller never waits: nothing else is in flight.
		if !yielded && len(p.wbuf) < flushSize && p.sent.Load()-p.answered.Load() > p.inBuf {
			yielded = true
			p.wmu.Unlock()
			runtime.Gosched()
			p.wmu.Lock()
			writes--
			continue
		}
		yielded = false
		buf := p.take()
		p.wmu.Unlock()
		n, err := p.writeNow(buf)
		if err != nil {
			// The token dies with the pipe: later callers' bytes stay in
			// wbuf and their calls are failed by the drain.
			p.fail(err)
			return
		}
		if n < len(buf) {
			p.rest, p.restBuf = buf[n:], buf
			p.kick <- struct{}{}
			return
		}
		p.wmu.Lock()
		p.keep(buf)
	}
}

// take swaps wbuf for the spare buffer and returns the bytes to write. The
// caller holds wmu and the flush token.
func (p *pipe) take() []byte {
	buf := p.wbuf
	p.wbuf, p.spare = p.spare[:0], nil
	p.inBuf = 0
	p.c.flushes.Add(1)
	return buf
}

// keep makes buf, written, the spare buffer, unless a large value grew it.
// The caller holds the flush token.
func (p *pipe) keep(buf []byte) {
	if cap(buf) > maxWriteKeep {
		buf = nil
	}
	p.spare = buf[:0]
}

// writeNow writes what the socket takes of buf without waiting: n < len(buf)
// with a nil error means the socket is full.
func (p *pipe) writeNow(buf []byte) (int, error) {
	p.rawBuf, p.rawN, p.rawErr = buf, 0, nil
	rerr := p.raw.Write(p.rawFn)
	n, err := p.rawN, p.rawErr
	p.rawBuf, p.rawErr = nil, nil
	if rerr != nil {
		return n, rerr
	}
	return n, err
}

// writeFd is writeNow's raw.Write callback: write rawBuf until it is all
// written or the socket is full. It never asks raw.Write to wait.
func (p *pipe) writeFd(fd uintptr) bool {
	for p.rawN < len(p.rawBuf) {
		var n int
		var err error
		if p.c.cfg.RuntimeSyscalls {
			n, err = syscall.Write(int(fd), p.rawBuf[p.rawN:])
		} else {
			n, err = rawio.RawWrite(fd, p.rawBuf[p.rawN:])
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if err != syscall.EAGAIN {
				p.rawErr = err
			}
			break
		}
		if n <= 0 {
			break // took nothing: leave the rest to the writer's blocking write
		}
		p.rawN += n
	}
	return true
}

// finish completes cl with err (nil for success), or recycles it if its
// caller has left.
func (p *pipe) finish(cl *call, err error) {
	cl.err = err
	for {
		s := cl.state.Load()
		if s == stAbandoned {
			p.recycle(cl)
			return
		}
		if cl.state.CompareAndSwap(s, stDone) {
			<-p.sem
			cl.done <- struct{}{}
			return
		}
	}
}

// recycle returns an abandoned call to the pool; the pipe owns it now.
func (p *pipe) recycle(cl *call) {
	<-p.sem
	p.c.putCall(cl)
}

// writeLoop holds the flush token whenever a caller hands it over (kick):
// it finishes a write the socket did not take at once, blocking as long as
// the socket stays full, then writes whatever callers buffered meanwhile.
// With WriteHandoff (or a connection without raw access) it does every
// write.
func (p *pipe) writeLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.kick:
		case <-p.dead:
			return
		}
		if p.rest != nil {
			_, err := p.nc.Write(p.rest)
			buf := p.restBuf
			p.rest, p.restBuf = nil, nil
			if err != nil {
				p.fail(err)
				return
			}
			p.wmu.Lock()
			p.keep(buf)
		} else {
			p.wmu.Lock()
		}
		if !p.writeAll() {
			return
		}
	}
}

// writeAll is the writer goroutine's flush: it writes wbuf, waiting for the
// socket as needed, until wbuf is empty, then gives up the token. Called with
// wmu held; it returns with wmu released, and false if the pipe failed.
func (p *pipe) writeAll() bool {
	yielded := false
	for len(p.wbuf) > 0 {
		// The same yield as in flush, for WriteHandoff's batches.
		if !yielded && len(p.wbuf) < flushSize && p.sent.Load()-p.answered.Load() > p.inBuf {
			yielded = true
			p.wmu.Unlock()
			runtime.Gosched()
			p.wmu.Lock()
			continue
		}
		yielded = false
		buf := p.take()
		p.wmu.Unlock()
		if _, err := p.nc.Write(buf); err != nil {
			p.fail(err)
			return false
		}
		p.wmu.Lock()
		p.keep(buf)
	}
	p.flushing = false
	p.wmu.Unlock()
	return true
}

// readLoop parses replies in order and completes calls.
func (p *pipe) readLoop() {
	defer p.wg.Done()
	for {
		var cl *call
		select {
		case cl = <-p.pending:
		default:
			// Nothing outstanding: wait on the socket rather than the queue,
			// so that a server closing an idle connection is noticed now,
			// not by the next request.
			if _, err := p.rr.br.Peek(1); err != nil {
				p.fail(err)
				return
			}
			select {
			case cl = <-p.pending:
			default:
				// A call is queued before its bytes are written, so a
				// reply with no call is not ours.
				p.fail(errUnsolicited)
				return
			}
		}
		if err := p.readCall(cl); err != nil {
			p.fail(err)
			p.finish(cl, p.err)
			return
		}
	}
}

// readCall reads every reply of cl. It returns only connection-fatal errors;
// a value too large fails just this call.
func (p *pipe) readCall(cl *call) error {
	// Claim the Responses only once the reply starts to arrive: until then
	// the caller may still walk away on its context without waiting.
	if _, err := p.rr.br.Peek(1); err != nil {
		return err
	}
	claimed := cl.state.CompareAndSwap(stSent, stReading)
	now := time.Now()
	var callErr error
	for i := range cl.ops {
		o := &cl.ops[i]
		resp := &p.discard
		var keys [][]byte
		if claimed {
			// The caller now waits for done whatever happens (see wait),
			// so its Request is intact and may be read to match keys.
			resp, keys = cl.resps[o.req], cl.reqs[o.req].Keys
		} else {
			resp.Reset()
		}
		if i&127 == 127 {
			p.partial.Add(1)
		}
		if err := p.rr.read(o, resp, keys, now); err != nil {
			if !errors.Is(err, errValueTooLarge) {
				return err
			}
			if callErr == nil {
				callErr = fmt.Errorf("%w (%s)", err, p.c.cfg.Addr)
			}
		}
	}
	if !claimed {
		// Do not let the values of calls nobody waits for pin memory.
		p.discard = protocol.Response{}
	}
	p.answered.Add(1)
	p.finish(cl, callErr)
	return nil
}

// drain fails every call still queued after the writer and reader exited.
func (p *pipe) drain() {
	p.wmu.Lock()
	p.closed = true
	p.wmu.Unlock()
	for {
		select {
		case cl := <-p.pending:
			p.finish(cl, p.err)
		default:
			return
		}
	}
}
