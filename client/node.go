package client

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// conn is what the Client needs from a server's connection pool; it is
// *mcclient.Client in production and a fake in unit tests.
type conn interface {
	Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error
	Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error
	Close() error
}

// node is one server of one zone, with its health.
type node struct {
	addr  string // regular address, also its name on the ring
	zone  string
	c     conn
	batch conn // batch-port pool, nil when the zone has none

	// Health. fails counts consecutive failures; the goroutine that moves
	// it to the threshold flips down and starts the one prober, which is the
	// only one to flip it back. Successes reset fails, so sporadic timeouts
	// on a busy server never add up to a down mark.
	fails atomic.Int32
	// streak is when the current run of failures began (unix nanoseconds).
	streak atomic.Int64
	down   atomic.Bool
	// stop is closed when the node leaves the topology, ending its prober.
	stop chan struct{}

	requests, failures, skipped, downMarks atomic.Uint64
}

// isDown reports whether requests should skip the node.
func (n *node) isDown() bool { return n.down.Load() }

// pool picks the regular or batch connection pool.
func (n *node) pool(batch bool) conn {
	if batch && n.batch != nil {
		return n.batch
	}
	return n.c
}

// result records the outcome of one request for the node's health. parent
// is the caller's context: when it ended, the failure is the caller's doing
// and says nothing about the server.
func (c *Client) result(n *node, parent context.Context, err error) {
	if err == nil {
		if n.fails.Load() != 0 {
			n.fails.Store(0)
		}
		return
	}
	if parent.Err() != nil {
		return
	}
	n.failures.Add(1)
	now := time.Now().UnixNano()
	f := n.fails.Add(1)
	if f == 1 {
		n.streak.Store(now)
	}
	if int(f) < c.cfg.FailureThreshold || time.Duration(now-n.streak.Load()) < c.cfg.FailureWindow {
		return
	}
	if !n.down.CompareAndSwap(false, true) {
		return
	}
	n.downMarks.Add(1)
	c.log.Warn("moneta server marked down", "zone", n.zone, "server", n.addr, "error", err)
	c.goBackground(func() { c.probe(n) })
}

// probe retries a down node with a version command, waiting ProbeMin,
// doubling to ProbeMax with jitter, until it answers, the node leaves the
// topology, or the Client closes. Probing in the background, rather than
// letting a live request through now and then, keeps every caller's latency
// bounded while the server is away.
func (c *Client) probe(n *node) {
	wait := c.cfg.ProbeMin
	timer := time.NewTimer(jitter(wait))
	defer timer.Stop()
	var req protocol.Request
	var resp protocol.Response
	for {
		select {
		case <-c.done:
			return
		case <-n.stop:
			return
		case <-timer.C:
		}
		req.Reset()
		req.Command = protocol.CmdVersion
		ctx, cancel := context.WithTimeout(context.Background(), c.probeTimeout())
		err := n.c.Handle(ctx, &req, &resp)
		cancel()
		if err == nil && resp.Status == protocol.StatusOK {
			n.fails.Store(0)
			n.down.Store(false)
			c.log.Info("moneta server back up", "zone", n.zone, "server", n.addr)
			return
		}
		wait = min(2*wait, c.cfg.ProbeMax)
		timer.Reset(jitter(wait))
	}
}

// probeTimeout gives a probe more time than a read: a server that just came
// back may need a reconnect first, and a probe that times out costs another
// back-off period of the server's capacity.
func (c *Client) probeTimeout() time.Duration {
	return max(4*c.cfg.ReadTimeout, 250*time.Millisecond)
}

// jitter spreads d by ±20% so that many clients do not probe in lockstep.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + time.Duration(rand.Int64N(int64(d/5)*2+1))
}
