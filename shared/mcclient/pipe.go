package mcclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// A call moves through these states. The caller's Request may be read only
// in stEncoding and stReading (its keys, to match classic gets replies) and
// its Responses written only in stReading; a caller whose
// context ends may walk away (stAbandoned) only from the states in which
// nobody touches them, and otherwise waits for the short remainder. Every
// transition is a CAS, so the caller and the pipe never both act on a call.
const (
	stQueued    int32 = iota // in the send queue, not yet looked at
	stEncoding               // the writer is copying the Requests into its buffer
	stSent                   // encoded; the Requests are no longer needed
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
	// timer bounds the caller's wait (Config.RequestTimeout); reused.
	timer *time.Timer

	reqs  []*protocol.Request
	resps []*protocol.Response
	ops   []op

	// one and oneResp back reqs/resps for Handle, so it allocates no slice.
	one     [1]*protocol.Request
	oneResp [1]*protocol.Response
}

// pipe is one live connection. It is never reused: when the connection fails,
// the pipe drains and its slot dials a new one.
type pipe struct {
	c  *Client
	nc net.Conn

	// sem holds one token per call admitted to this pipe (queued, being
	// written, awaiting or being read); its capacity is MaxInFlight, so the
	// sends into reqs and pending below never block.
	sem     chan struct{}
	reqs    chan *call // caller -> writer
	pending chan *call // writer -> reader, in wire order

	// mu guards closed. Callers hold it shared while they check closed and
	// queue; the drain takes it exclusively to set closed, after which no
	// call can enter reqs and a drain is sure to see every queued call.
	mu     sync.RWMutex
	closed bool

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

	// Owned by the writer goroutine.
	wbuf []byte
	// Owned by the reader goroutine.
	rr      replyReader
	discard protocol.Response // absorbs the replies of abandoned calls
}

// Buffer sizes. Reads: values up to readBufSize-2 bytes are copied once,
// from the read buffer into the Response, and readBufSize is also the
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
		reqs:    make(chan *call, n),
		pending: make(chan *call, n),
		dead:    make(chan struct{}),
	}
	p.rr = replyReader{br: bufio.NewReaderSize(nc, readBufSize), maxValue: c.cfg.MaxValueSize}
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

// enqueue admits cl to the pipe. It returns false, with nothing sent, when
// the pipe died first (the caller may try another), and an error when the
// caller's context or timer ended while the pipe was full.
func (p *pipe) enqueue(cl *call, ctx context.Context) (bool, error) {
	select {
	case p.sem <- struct{}{}:
	default:
		select {
		case p.sem <- struct{}{}:
		case <-p.dead:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		case <-cl.timer.C:
			return false, fmt.Errorf("%w (%s): connection queue full", ErrTimeout, p.c.cfg.Addr)
		}
	}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		<-p.sem
		return false, nil
	}
	cl.state.Store(stQueued)
	p.reqs <- cl // never blocks: sem bounds the calls in reqs
	p.mu.RUnlock()
	return true, nil
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

// writeLoop batches queued calls into one buffer and writes it when the
// queue is momentarily empty (or the buffer is full), so that many callers
// share one syscall under load while a lone request is sent at once.
func (p *pipe) writeLoop() {
	defer p.wg.Done()
	for {
		var cl *call
		select {
		case cl = <-p.reqs:
		case <-p.dead:
			return
		}
		buf := p.wbuf[:0]
		yielded, batched := false, uint64(0)
		for cl != nil {
			var sent bool
			if buf, sent = p.encode(buf, cl); sent {
				batched++
			}
			if len(buf) >= flushSize {
				break
			}
			select {
			case cl = <-p.reqs:
				continue
			default:
				cl = nil
			}
			// The queue is empty. If other calls are in flight, their
			// callers are likely about to send again (they are woken by
			// the replies the reader is completing): yield once so that
			// they can join this write instead of each paying a syscall.
			// A lone caller never waits: nothing else is in flight.
			if !yielded && p.sent.Load()-p.answered.Load() > batched {
				yielded = true
				runtime.Gosched()
				select {
				case cl = <-p.reqs:
				default:
				}
			}
		}
		if len(buf) > 0 {
			p.c.flushes.Add(1)
			if _, err := p.nc.Write(buf); err != nil {
				p.fail(err)
				return
			}
		}
		if cap(buf) > maxWriteKeep {
			buf = nil
		}
		p.wbuf = buf
	}
}

// encode appends cl's commands to buf and hands cl to the reader. The
// hand-over happens before the bytes are written, so the reader always finds
// the call of any reply that arrives.
func (p *pipe) encode(buf []byte, cl *call) ([]byte, bool) {
	if !cl.state.CompareAndSwap(stQueued, stEncoding) {
		// Abandoned while queued: nothing was sent, nothing will answer.
		p.recycle(cl)
		return buf, false
	}
	for i := range cl.ops {
		o := &cl.ops[i]
		buf = appendOp(buf, o, cl.reqs[o.req])
	}
	cl.state.Store(stSent)
	p.sent.Add(1)
	p.pending <- cl // never blocks: sem bounds the calls in pending
	return buf, true
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
				// The writer queues a call before writing its bytes, so a
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
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case cl := <-p.reqs:
			p.finish(cl, p.err)
		case cl := <-p.pending:
			p.finish(cl, p.err)
		default:
			return
		}
	}
}
