package mcclient

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Circuit breaker. A server that stops answering without closing its
// connections (a SIGSTOPped or wedged process, a full accept backlog)
// looks healthy to a pool that only counts connections: connects still
// succeed into the kernel's listen backlog, and every call waits the full
// RequestTimeout. The breaker turns that into a fast failure:
//
//	closed     calls go through. BreakerFailures consecutive timed-out
//	           calls, or one connection that has had
//	           calls outstanding and answered none for BreakerStall, open it.
//	open       calls fail at once with ErrUnavailable and Healthy is false,
//	           so a caller with another source (rend's other layer) uses it
//	           at once. Opening also fails the calls in flight. After
//	           BreakerOpen one probe (version) goes out:
//	half-open  while the probe runs; its success closes the breaker, its
//	           failure (no reply within BreakerStall) opens it again for
//	           another BreakerOpen.
//
// The call path pays one atomic load (the state) and, after a failure, one
// atomic store on the next success.

// Breaker states, as BreakerState reports them.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half_open"
)

const (
	brClosed int32 = iota
	brOpen
	brHalfOpen
)

type breaker struct {
	state atomic.Int32
	fails atomic.Int32  // consecutive failed calls while closed
	opens atomic.Uint64 // closed -> open transitions
}

// breakerOn reports whether the breaker is configured.
func (c *Client) breakerOn() bool { return c.cfg.BreakerFailures > 0 }

// circuitOpen reports whether calls must fail fast.
func (c *Client) circuitOpen() bool { return c.br.state.Load() != brClosed }

// BreakerState is the breaker's state: BreakerClosed, BreakerOpen or
// BreakerHalfOpen (always closed when the breaker is off).
func (c *Client) BreakerState() string {
	switch c.br.state.Load() {
	case brOpen:
		return BreakerOpen
	case brHalfOpen:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

// callFailed counts a timed-out call toward opening the breaker. Other
// failures do not count: a lost or refused connection already makes the
// pool fail fast and reconnect (a restarted server is used again at once),
// and the caller's context, the breaker's own fast failures and a closed
// client say nothing about the server.
func (c *Client) callFailed(err error) {
	if !c.breakerOn() || !errors.Is(err, ErrTimeout) {
		return
	}
	if c.br.fails.Add(1) >= int32(c.cfg.BreakerFailures) {
		c.trip(fmt.Sprintf("%d consecutive failed calls, last: %v", c.cfg.BreakerFailures, err))
	}
}

// callOK resets the failure streak.
func (c *Client) callOK() {
	if c.br.fails.Load() != 0 {
		c.br.fails.Store(0)
	}
}

// trip opens a closed breaker: fail the calls in flight (their connections
// are replaced) and start probing. Only the closed -> open transition acts.
func (c *Client) trip(reason string) {
	if !c.breakerOn() || c.closed.Load() || !c.br.state.CompareAndSwap(brClosed, brOpen) {
		return
	}
	c.br.opens.Add(1)
	c.log.Warn("mcclient: circuit open, failing fast", "reason", reason, "probe_after", c.cfg.BreakerOpen)
	// The calls in flight fail as on a lost connection (which it now is).
	cause := fmt.Errorf("circuit opened (%s)", reason)
	for _, s := range c.slots {
		if p := s.pipe.Load(); p != nil {
			p.fail(cause)
		}
	}
	c.wg.Add(1)
	go c.probeLoop()
}

// probeLoop waits BreakerOpen, then probes until a probe succeeds (closing
// the breaker) or the client closes.
func (c *Client) probeLoop() {
	defer c.wg.Done()
	for {
		if !c.sleep(c.cfg.BreakerOpen) {
			return
		}
		c.br.state.Store(brHalfOpen)
		if c.probe() == nil {
			c.br.fails.Store(0)
			c.br.state.Store(brClosed)
			c.log.Info("mcclient: circuit closed, backend answering again")
			return
		}
		c.br.state.Store(brOpen)
	}
}

// probe sends one version request past the breaker, bounded by BreakerStall.
func (c *Client) probe() error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.BreakerStall)
	defer cancel()
	req, resp := &protocol.Request{Command: protocol.CmdVersion}, new(protocol.Response)
	cl := c.getCall()
	cl.one[0], cl.oneResp[0] = req, resp
	err := c.call(ctx, cl, cl.one[:], cl.oneResp[:])
	if err == nil && resp.Status != protocol.StatusOK {
		err = fmt.Errorf("mcclient: probe answered status %v", resp.Status)
	}
	return err
}

// stallLimit is how long a connection may leave calls unanswered before the
// watchdog acts: BreakerStall opens the breaker (which drops the
// connection), RequestTimeout only drops the connection.
func (c *Client) stallLimit() (time.Duration, bool) {
	if c.breakerOn() && c.cfg.BreakerStall < c.cfg.RequestTimeout {
		return c.cfg.BreakerStall, true
	}
	return c.cfg.RequestTimeout, c.breakerOn()
}
