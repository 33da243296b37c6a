package mcclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Client is a pool of pipelined connections to one server. It is safe for
// concurrent use and implements protocol.Handler.
type Client struct {
	cfg   Config
	log   *slog.Logger
	slots []*slot

	// ctx is cancelled by Close; it stops dials, backoff waits and pipes.
	ctx       context.Context
	cancel    context.CancelFunc
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup // slot goroutines

	rr    atomic.Uint32 // round-robin start for pick
	calls sync.Pool     // *call

	// tick is the clock waiting callers check their deadlines by: the clock
	// goroutine closes the current channel every tickEvery and installs a
	// new one. One timer for the Client instead of a timer set and stopped
	// per call (each a lock and a heap update in the runtime); a call times
	// out up to tickEvery after its RequestTimeout.
	tick      atomic.Pointer[tick]
	tickEvery time.Duration

	// br is the circuit breaker (breaker.go).
	br breaker

	// Prebuilt so that failing fast allocates nothing.
	errUnavailable error
	errClosed      error
	errOpen        error

	// Counters for Stats.
	requests   atomic.Uint64
	errs       atomic.Uint64
	timeouts   atomic.Uint64
	canceled   atomic.Uint64
	stalls     atomic.Uint64
	reconnects atomic.Uint64
	dialErrs   atomic.Uint64
	flushes    atomic.Uint64
}

// tick is one period of the Client's clock; c is closed when it ends.
type tick struct{ c chan struct{} }

// tickPeriod is the clock's period for a request timeout: a tenth of it,
// between 1 ms and 100 ms.
func tickPeriod(timeout time.Duration) time.Duration {
	return min(max(timeout/10, time.Millisecond), 100*time.Millisecond)
}

// runClock ends a tick every tickEvery until Close.
func (c *Client) runClock() {
	defer c.wg.Done()
	t := time.NewTicker(c.tickEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			old := c.tick.Swap(&tick{c: make(chan struct{})})
			close(old.c)
		case <-c.ctx.Done():
			return
		}
	}
}

// slot is one of the Config.Conns connections: a goroutine that keeps a
// pipe up, redialling when it fails.
type slot struct {
	id   int
	pipe atomic.Pointer[pipe] // nil while down
}

var _ protocol.Handler = (*Client)(nil)

// New validates cfg and starts connecting. It waits for the first dial of
// every connection (each bounded by DialTimeout, all in parallel) so that a
// request made right after New finds a connection if the server is up, but
// it never fails because the server is down: the connections keep retrying
// in the background.
func New(cfg Config) (*Client, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:            cfg,
		log:            cfg.Logger.With("backend", cfg.Addr),
		slots:          make([]*slot, cfg.Conns),
		ctx:            ctx,
		cancel:         cancel,
		errUnavailable: fmt.Errorf("%w (%s)", ErrUnavailable, cfg.Addr),
		errClosed:      fmt.Errorf("%w (%s)", ErrClosed, cfg.Addr),
		errOpen:        fmt.Errorf("%w (%s): circuit open", ErrUnavailable, cfg.Addr),
		tickEvery:      tickPeriod(cfg.RequestTimeout),
	}
	c.tick.Store(&tick{c: make(chan struct{})})
	c.wg.Add(1)
	go c.runClock()
	var first sync.WaitGroup
	first.Add(cfg.Conns)
	for i := range c.slots {
		s := &slot{id: i}
		c.slots[i] = s
		c.wg.Add(1)
		go c.runSlot(s, &first)
	}
	first.Wait()
	return c, nil
}

// Handle sends req and fills resp. See Do.
func (c *Client) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	cl := c.getCall()
	cl.one[0], cl.oneResp[0] = req, resp
	return c.do(ctx, cl, cl.one[:], cl.oneResp[:])
}

// Do sends reqs as one pipelined batch, written together on one connection,
// and fills resps[i] with the answer to reqs[i]. Requests that cannot be sent
// (invalid keys, oversized values, commands a server does not take) are
// answered locally with a status. A non-nil error means a transport failure,
// timeout, cancellation or a closed client: then no Response can be trusted.
func (c *Client) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	if len(resps) < len(reqs) {
		return fmt.Errorf("mcclient: %d requests but %d responses", len(reqs), len(resps))
	}
	cl := c.getCall()
	return c.do(ctx, cl, reqs, resps[:len(reqs)])
}

func (c *Client) do(ctx context.Context, cl *call, reqs []*protocol.Request, resps []*protocol.Response) error {
	if c.circuitOpen() {
		c.putCall(cl)
		return c.errOpen
	}
	return c.call(ctx, cl, reqs, resps)
}

// call is do past the breaker (its probes use it directly).
func (c *Client) call(ctx context.Context, cl *call, reqs []*protocol.Request, resps []*protocol.Response) error {
	if c.closed.Load() {
		c.putCall(cl)
		return c.errClosed
	}
	cl.reqs, cl.resps = reqs, resps
	now := time.Now()
	cl.ops = prepare(cl.ops[:0], reqs, resps, c.cfg.MaxValueSize, c.cfg.MaxBase64KeyLen, now, c.cfg.ClassicGets)
	c.requests.Add(uint64(len(reqs)))
	if len(cl.ops) == 0 {
		c.putCall(cl)
		return nil
	}
	cl.deadline = now.Add(c.cfg.RequestTimeout)
	if err := c.send(ctx, cl); err != nil {
		c.putCall(cl)
		c.countErr(err)
		return err
	}
	err := c.wait(ctx, cl)
	c.countErr(err)
	return err
}

// send queues cl on the least loaded live connection (of the first
// Config.WriteConns for a call that is not a read). A connection that dies before the
// call is queued sent nothing, so trying another is safe.
func (c *Client) send(ctx context.Context, cl *call) error {
	n := len(c.slots)
	if s := c.cfg.WriteConns; s > 0 && s < n && !cl.reqs[cl.ops[0].req].Command.IsRead() {
		n = s
	}
	for range len(c.slots) + 1 {
		p := c.pick(n)
		if p == nil && n < len(c.slots) {
			n = len(c.slots) // the write connections are down: any will do
			p = c.pick(n)
		}
		if p == nil {
			break
		}
		ok, err := p.enqueue(cl, ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	if c.closed.Load() {
		return c.errClosed
	}
	return c.errUnavailable
}

// wait waits for cl to finish, or for the caller's context or the request
// timeout to end the wait first.
func (c *Client) wait(ctx context.Context, cl *call) error {
	var cause error
	for cause == nil {
		tick := c.tick.Load()
		select {
		case <-cl.done:
			err := cl.err
			if err != nil && !errors.Is(err, ErrTimeout) && !time.Now().Before(cl.deadline) {
				// The deadline passed before the failure reached us: the
				// watchdog dropped the connection for the same silence
				// (its ticks and the clock's race) or it failed later
				// still. Either way the call got no reply in time.
				err = c.timeoutErr()
			}
			c.putCall(cl)
			return err
		case <-ctx.Done():
			cause = ctx.Err()
		case <-tick.c:
			if !time.Now().Before(cl.deadline) {
				cause = c.timeoutErr()
			}
		}
	}
	// Nobody touches the Requests or Responses in stSent, so the caller may
	// leave; the pipe discards the reply and recycles cl.
	if cl.state.CompareAndSwap(stSent, stAbandoned) {
		return cause
	}
	// The reader is filling the Responses: it finishes soon, or the
	// connection watchdog kills a reply that stalls midway. Leaving now
	// would let it touch memory the caller is about to reuse.
	<-cl.done
	err := cl.err
	c.putCall(cl)
	if err == nil {
		return nil // the reply made it after all
	}
	return err
}

func (c *Client) timeoutErr() error {
	return fmt.Errorf("%w after %v (%s)", ErrTimeout, c.cfg.RequestTimeout, c.cfg.Addr)
}

func (c *Client) countErr(err error) {
	if err == nil {
		c.callOK()
	} else {
		c.callFailed(err)
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrTimeout):
		c.timeouts.Add(1)
		c.errs.Add(1)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		c.canceled.Add(1)
	default:
		c.errs.Add(1)
	}
}

// pick returns the live connection with the fewest calls in flight among
// the first n, starting the scan at a rotating index so that ties spread
// round-robin.
func (c *Client) pick(n int) *pipe {
	start := c.rr.Add(1)
	var best *pipe
	for i := range uint32(n) {
		p := c.slots[(start+i)%uint32(n)].pipe.Load()
		if p == nil || p.isDead() {
			continue
		}
		if best == nil || p.load() < best.load() {
			best = p
		}
	}
	return best
}

func (c *Client) getCall() *call {
	if v := c.calls.Get(); v != nil {
		return v.(*call)
	}
	return &call{done: make(chan struct{}, 1)}
}

// putCall returns cl to the pool, dropping references to caller memory.
func (c *Client) putCall(cl *call) {
	cl.err = nil
	cl.reqs, cl.resps = nil, nil
	cl.one[0], cl.oneResp[0] = nil, nil
	if cap(cl.ops) > 4096 {
		cl.ops = nil
	} else {
		cl.ops = cl.ops[:0]
	}
	c.calls.Put(cl)
}

// Close stops all connections; calls in flight fail with ErrClosed, later
// calls too. It waits for the connection goroutines to exit.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

// Healthy reports whether at least one connection is up and the circuit
// breaker is closed.
func (c *Client) Healthy() bool {
	if c.circuitOpen() {
		return false
	}
	for _, s := range c.slots {
		if p := s.pipe.Load(); p != nil && !p.isDead() {
			return true
		}
	}
	return false
}

// PoolStats is a snapshot of a Client's connections and counters. Counters
// are cumulative since New.
type PoolStats struct {
	Addr    string
	Conns   int // connections configured
	ConnsUp int // connections currently up
	// InFlight is the number of calls (a Handle or a Do batch) queued or
	// awaiting replies.
	InFlight int
	// Requests counts Requests passed to Handle and Do.
	Requests uint64
	// Errors counts calls that returned a transport error (connection lost,
	// timeout, backend unavailable, closed); Timeouts is the subset that
	// timed out. Canceled counts calls whose context ended first.
	Errors   uint64
	Timeouts uint64
	Canceled uint64
	// Stalls counts connections dropped because they answered nothing for
	// RequestTimeout while requests were outstanding.
	Stalls uint64
	// Reconnects counts connections re-established after a drop; DialErrors
	// counts failed connection attempts.
	Reconnects uint64
	DialErrors uint64
	// Flushes counts socket writes; Requests/Flushes shows how well
	// pipelining batches.
	Flushes uint64
	// Breaker is the circuit breaker's state (BreakerClosed, BreakerOpen,
	// BreakerHalfOpen); BreakerOpens counts its closed -> open transitions.
	Breaker      string
	BreakerOpens uint64
}

// Stats returns a snapshot of the pool.
func (c *Client) Stats() PoolStats {
	st := PoolStats{
		Addr:         c.cfg.Addr,
		Conns:        len(c.slots),
		Requests:     c.requests.Load(),
		Errors:       c.errs.Load(),
		Timeouts:     c.timeouts.Load(),
		Canceled:     c.canceled.Load(),
		Stalls:       c.stalls.Load(),
		Reconnects:   c.reconnects.Load(),
		DialErrors:   c.dialErrs.Load(),
		Flushes:      c.flushes.Load(),
		Breaker:      c.BreakerState(),
		BreakerOpens: c.br.opens.Load(),
	}
	for _, s := range c.slots {
		if p := s.pipe.Load(); p != nil && !p.isDead() {
			st.ConnsUp++
			st.InFlight += p.load()
		}
	}
	return st
}

// runSlot keeps one connection up until Close: dial, serve until the
// connection fails, back off, redial.
func (c *Client) runSlot(s *slot, first *sync.WaitGroup) {
	defer c.wg.Done()
	backoff := c.cfg.BackoffMin
	everUp := false // a later successful dial is a reconnect
	failures := 0   // consecutive dial failures, to log a streak once
	for c.ctx.Err() == nil {
		nc, err := addr.Dial(c.ctx, c.cfg.Addr, c.cfg.DialTimeout)
		if err != nil {
			if first != nil {
				first.Done()
				first = nil
			}
			if c.ctx.Err() != nil {
				return
			}
			c.dialErrs.Add(1)
			failures++
			if failures == 1 {
				c.log.Warn("mcclient: connect failed, retrying with backoff", "conn", s.id, "err", err)
			} else {
				c.log.Debug("mcclient: connect failed", "conn", s.id, "attempt", failures, "err", err)
			}
			if !c.sleep(jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, c.cfg.BackoffMax)
			continue
		}
		p := newPipe(c, nc)
		s.pipe.Store(p)
		if first != nil {
			first.Done()
			first = nil
		}
		if everUp {
			c.reconnects.Add(1)
			c.log.Info("mcclient: reconnected", "conn", s.id, "failed_attempts", failures)
		}
		everUp, failures = true, 0
		served := c.serve(s, p)
		if c.ctx.Err() != nil {
			return
		}
		c.log.Warn("mcclient: connection lost", "conn", s.id, "err", p.err)
		if served {
			// It worked for a while: the server restarted or dropped us,
			// so try again promptly. A server that accepts and then fails
			// at once keeps doubling the backoff instead.
			backoff = c.cfg.BackoffMin
		}
		if !c.sleep(jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, c.cfg.BackoffMax)
	}
}

// serve runs p's writer and reader and watches it until it fails, then
// takes it out of rotation and fails whatever was still queued on it. It
// reports whether p answered anything.
func (c *Client) serve(s *slot, p *pipe) bool {
	p.wg.Add(2)
	go p.writeLoop()
	go p.readLoop()

	// The watchdog drops a connection that has had requests outstanding
	// and completed none for RequestTimeout: replies come in order, so one
	// stuck reply blocks all behind it, and only a new connection helps.
	// Callers time out on their own deadlines; this also covers calls whose
	// callers already left.
	limit, trips := c.stallLimit()
	tick := time.NewTicker(min(max(limit/10, time.Millisecond), 100*time.Millisecond))
	defer tick.Stop()
	var (
		lastAnswered uint64
		stuckSince   time.Time // zero while idle or progressing
	)
loop:
	for {
		select {
		case <-p.dead:
			break loop
		case <-c.ctx.Done():
			p.fail(ErrClosed)
		case now := <-tick.C:
			sent, answered := p.sent.Load(), p.answered.Load()
			progress := answered + p.partial.Load()
			switch {
			case sent == answered || progress != lastAnswered:
				lastAnswered, stuckSince = progress, time.Time{}
			case stuckSince.IsZero():
				stuckSince = now
			case now.Sub(stuckSince) >= limit:
				c.stalls.Add(1)
				if trips {
					// A server that answers nothing at all for this
					// long is frozen, not slow: stop sending it calls.
					c.trip(fmt.Sprintf("no reply for %v", limit))
				}
				p.fail(fmt.Errorf("%w: no reply for %v", ErrTimeout, limit))
			}
		}
	}
	s.pipe.Store(nil)
	p.wg.Wait()
	p.drain()
	return p.answered.Load() > 0
}

// sleep waits d or until Close; it reports whether to go on.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// jitter spreads reconnects of many clients over [d/2, d], so a restarted
// server is not hit by all of them in the same instant.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
