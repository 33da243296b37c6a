package client

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/moneta-cache/moneta/client/ketama"
	"github.com/moneta-cache/moneta/shared/mcclient"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Client talks to a moneta cluster. Create it with New; it is safe for
// concurrent use; Close it when done.
type Client struct {
	cfg Config
	log *slog.Logger
	// dial opens a server's pool; tests replace it with fakes.
	dial func(addr string) (conn, error)

	// topo is the current topology; operations load it once and use that
	// snapshot throughout, so a SetZones in the middle of a call never mixes
	// two rings.
	topo atomic.Pointer[topology]

	// mu serialises SetZones and Close.
	mu     sync.Mutex
	closed atomic.Bool
	// bgMu orders goBackground's Add against Close's Wait (see there).
	bgMu sync.RWMutex
	done chan struct{} // closed by Close: stops probers
	// bg counts background goroutines (writes finishing after their call
	// returned, probers); Close waits for them before closing the pools.
	bg sync.WaitGroup

	ops   sync.Pool // *op
	stats clientStats
}

// topology is an immutable snapshot of the zones.
type topology struct {
	zones []*zone
	local int // index of the local zone, -1 if none
	// nodes indexes every node by address (for reuse by SetZones).
	nodes map[string]*node
}

type zone struct {
	name  string
	nodes []*node // in the order of the ring's servers
	ring  *ketama.Ring
}

// locate returns the node owning a wire key.
func (z *zone) locate(key string) *node {
	return z.nodes[z.ring.Locate([]byte(key))]
}

// op is a pooled request/response pair.
type op struct {
	req  protocol.Request
	resp protocol.Response
}

func (c *Client) getOp() *op {
	if o, ok := c.ops.Get().(*op); ok {
		return o
	}
	return new(op)
}

// putOp returns o to the pool. Only after a call that returned: mcclient
// stops touching a Request and Response when Handle returns.
func (c *Client) putOp(o *op) {
	o.req.Reset()
	o.resp.Reset()
	c.ops.Put(o)
}

// New validates cfg (after filling its defaults) and returns a Client. It
// does not wait for servers: pools connect in the background, and a server
// that is down at start is treated as any failing server.
func New(cfg Config) (*Client, error) {
	return newClient(cfg, nil)
}

func newClient(cfg Config, dial func(string) (conn, error)) (*Client, error) {
	cfg.EnsureDefaults()
	if cfg.LocalZone == "" {
		if env := cfg.getenv(cfg.ZoneEnv); env != "" {
			if slices.ContainsFunc(cfg.Zones, func(z Zone) bool { return z.Name == env }) {
				cfg.LocalZone = env
			} else {
				cfg.Logger.Warn("moneta: zone from environment is not configured; reading from random zones",
					"env", cfg.ZoneEnv, "zone", env)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	c.dial = dial
	if c.dial == nil {
		c.dial = c.dialMC
	}
	t, err := c.build(cfg.Zones, nil)
	if err != nil {
		return nil, err
	}
	c.topo.Store(t)
	return c, nil
}

// dialMC opens an mcclient pool. Its request timeout is the longest of ours:
// every call carries its own, shorter deadline in the context.
func (c *Client) dialMC(addr string) (conn, error) {
	return mcclient.New(mcclient.Config{
		Addr:           addr,
		Conns:          c.cfg.ConnsPerServer,
		DialTimeout:    c.cfg.DialTimeout,
		RequestTimeout: max(c.cfg.WriteTimeout, c.cfg.ReadTimeout, c.cfg.BulkReadTimeout),
		MaxValueSize:   c.cfg.MaxValueSize,
		Logger:         c.log,
	})
}

// build makes a topology for zones, reusing the nodes of old whose address
// is still listed (their pools and health carry over).
func (c *Client) build(zones []Zone, old *topology) (*topology, error) {
	t := &topology{local: -1, nodes: map[string]*node{}}
	var opened []*node
	fail := func(err error) (*topology, error) {
		for _, n := range opened {
			closeNode(n)
		}
		return nil, err
	}
	for zi, zc := range zones {
		batch, err := c.cfg.batchAddrs(zc)
		if err != nil {
			return fail(err)
		}
		z := &zone{name: zc.Name, ring: zc.newRing()}
		for i, a := range zc.Servers {
			if _, dup := t.nodes[a]; dup {
				return fail(fmt.Errorf("client: server %s is in two zones", a))
			}
			var n *node
			if old != nil {
				n = old.nodes[a]
			}
			if n == nil || n.zone != zc.Name || (batch == nil) != (n.batch == nil) {
				n = &node{addr: a, zone: zc.Name, stop: make(chan struct{})}
				if n.c, err = c.dial(a); err != nil {
					return fail(fmt.Errorf("client: %s: %w", a, err))
				}
				opened = append(opened, n)
				if batch != nil {
					if n.batch, err = c.dial(batch[i]); err != nil {
						return fail(fmt.Errorf("client: %s: %w", batch[i], err))
					}
				}
			}
			z.nodes = append(z.nodes, n)
			t.nodes[a] = n
		}
		t.zones = append(t.zones, z)
		if zc.Name == c.cfg.LocalZone {
			t.local = zi
		}
	}
	return t, nil
}

func closeNode(n *node) {
	close(n.stop)
	n.c.Close()
	if n.batch != nil {
		n.batch.Close()
	}
}

// SetZones replaces the cluster's zones, for adding or removing servers
// while running. Servers listed before and after keep their connections and
// health; with ketama only the keys in the arcs of added or removed servers
// change owner. The local zone, if any, must still exist. Calls in flight
// finish on the old topology; requests they still had on removed servers
// fail and fall back like any failure.
func (c *Client) SetZones(zones []Zone) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	check := c.cfg
	check.Zones = zones
	if err := check.Validate(); err != nil {
		return err
	}
	old := c.topo.Load()
	t, err := c.build(zones, old)
	if err != nil {
		return err
	}
	c.cfg.Zones = zones
	c.topo.Store(t)
	for a, n := range old.nodes {
		if t.nodes[a] != n {
			closeNode(n)
		}
	}
	return nil
}

// Close waits for background writes to finish (each is bounded by
// WriteTimeout), stops the probers and closes every connection. Calls made
// after Close return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bgMu.Lock()
	already := c.closed.Swap(true)
	c.bgMu.Unlock()
	if already {
		return nil
	}
	close(c.done)
	c.bg.Wait()
	var errs []error
	for _, n := range c.topo.Load().nodes {
		if err := n.c.Close(); err != nil {
			errs = append(errs, err)
		}
		if n.batch != nil {
			if err := n.batch.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// LocalZone returns the name of the zone reads start with ("" if none).
func (c *Client) LocalZone() string {
	t := c.topo.Load()
	if t.local < 0 {
		return ""
	}
	return t.zones[t.local].name
}

// readOrder returns the zones a read tries, in order: the local zone, then
// the others starting at a random one, so that the reads a down local zone
// sheds spread over the remaining zones instead of piling onto the next one
// in the list. Without a local zone the start is random as well.
func (c *Client) readOrder(t *topology, buf []int) []int {
	n := len(t.zones)
	buf = buf[:0]
	limit := n
	switch c.cfg.ReadFallback {
	case FallbackNever:
		limit = 1
	default:
		if c.cfg.FallbackZones > 0 {
			limit = min(n, 1+c.cfg.FallbackZones)
		}
	}
	if t.local >= 0 {
		buf = append(buf, t.local)
		if n > 1 {
			start := rand.IntN(n - 1)
			for i := 0; i < n-1 && len(buf) < limit; i++ {
				z := (t.local + 1 + (start+i)%(n-1)) % n
				buf = append(buf, z)
			}
		}
		return buf
	}
	start := rand.IntN(n)
	for i := 0; i < n && len(buf) < limit; i++ {
		buf = append(buf, (start+i)%n)
	}
	return buf
}

// writeTargets returns the zones a write goes to: ReplicaWrites of them
// (all by default), starting with the local zone and going on in
// configuration order, so that with a partial replica count every client of
// a zone writes the same zones.
func (c *Client) writeTargets(t *topology, all bool, buf []int) []int {
	n := len(t.zones)
	k := n
	if !all && c.cfg.ReplicaWrites > 0 {
		k = c.cfg.ReplicaWrites
	}
	start := max(t.local, 0)
	buf = buf[:0]
	for i := 0; i < k; i++ {
		buf = append(buf, (start+i)%n)
	}
	return buf
}
