package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/shared/mcclient"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Options configure a copy. Build them from flags, call EnsureDefaults, then
// Validate (run does both).
type Options struct {
	// From is the source: a host's batch port (reads there go L1 then L2
	// and never fill L1, so a copy does not churn the source's hot set), or
	// its mnemonic socket when run on the source host (L2 is the record of
	// every write, and reading it skips rend). The regular port works too
	// but fills the source's L1.
	From string
	// To is the target host's batch port: writes go to its L2 and update its
	// L1 only for keys already there, so a warm-up does not evict the
	// target's hot set either.
	To string
	// Mode is the store command on the target: "add" (the default) never
	// overwrites a key the target already has, which is what a zone that
	// already receives the application's writes needs (its copy is newer
	// than the one read from the source); "set" overwrites.
	Mode string
	// Batch is the number of keys read with one pipelined round of mg and
	// written with one pipelined round of ms.
	Batch int
	// Concurrency is the number of batches in flight at once.
	Concurrency int
	// Rate caps the keys read per second (0: no cap).
	Rate int
	// Conns is the number of pipelined connections to each host (0: one per
	// batch in flight). rend serves the requests of one connection one after
	// the other, and each write is an L2 then an L1 round trip, so writes
	// scale with connections, not with pipelining on one.
	Conns int
	// Timeout bounds one batch round trip; a failed batch is retried
	// Retries times with a growing pause before its keys count as failed.
	Timeout time.Duration
	Retries int
	// Progress is the interval of progress lines (0: none).
	Progress time.Duration
}

// Defaults for the zero fields of Options.
const (
	DefaultBatch       = 100
	DefaultConcurrency = 16
	DefaultTimeout     = 5 * time.Second
	DefaultRetries     = 3
)

// EnsureDefaults fills zero fields with the defaults.
func (o *Options) EnsureDefaults() {
	if o.Mode == "" {
		o.Mode = "add"
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Conns == 0 {
		o.Conns = o.Concurrency
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
}

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	switch {
	case o.From == "" || o.To == "":
		return errors.New("-from and -to are required")
	case o.From == o.To:
		return errors.New("-from and -to are the same address")
	case o.Mode != "add" && o.Mode != "set":
		return fmt.Errorf("-mode %q: want add or set", o.Mode)
	case o.Batch < 1 || o.Batch > 10000:
		return fmt.Errorf("-batch %d out of range 1..10000", o.Batch)
	case o.Concurrency < 1 || o.Concurrency > 1024:
		return fmt.Errorf("-concurrency %d out of range 1..1024", o.Concurrency)
	case o.Rate < 0:
		return fmt.Errorf("-rate %d is negative", o.Rate)
	case o.Conns < 1 || o.Conns > 64:
		return fmt.Errorf("-conns %d out of range 1..64", o.Conns)
	case o.Timeout < 0 || o.Retries < 0 || o.Progress < 0:
		return errors.New("negative -timeout, -retries or -progress")
	}
	return nil
}

// Counts are a copy's outcomes so far; every key read ends in exactly one.
type Counts struct {
	Copied  atomic.Int64 // stored on the target
	Exists  atomic.Int64 // mode add: the target already had the key
	Missing atomic.Int64 // not on the source (expired or evicted meanwhile)
	Expired atomic.Int64 // found with less than a second to live: not worth copying
	Failed  atomic.Int64 // an error on either side after the retries
	Bytes   atomic.Int64 // value bytes copied
}

// Read is the number of keys that reached an outcome.
func (c *Counts) Read() int64 {
	return c.Copied.Load() + c.Exists.Load() + c.Missing.Load() + c.Expired.Load() + c.Failed.Load()
}

// copier moves batches of keys from one host to another.
type copier struct {
	opt      Options
	src, dst *mcclient.Client
	counts   *Counts
	pace     *pacer
	now      func() time.Time
	// errMu guards firstErr, the first failure, reported in the summary.
	errMu    sync.Mutex
	firstErr error
}

// copyBatch reads keys from the source and writes the hits to the target,
// retrying a round that failed with a Go error (a connection or timeout:
// protocol outcomes are statuses and are not retried). bufs are the
// caller's reusable requests and responses.
func (c *copier) copyBatch(ctx context.Context, keys [][]byte, b *bufs) {
	c.pace.wait(ctx, len(keys))
	get := &b.get
	get.Reset()
	get.Command = protocol.CmdGet
	get.Want = protocol.WantValue | protocol.WantFlags | protocol.WantTTL
	for _, k := range keys {
		get.AddKey(k)
	}
	if err := c.retry(ctx, func(ctx context.Context) error {
		return c.src.Handle(ctx, get, &b.got)
	}); err != nil {
		c.fail(len(keys), fmt.Errorf("read from %s: %w", c.opt.From, err))
		return
	}
	if b.got.Status != protocol.StatusOK {
		c.fail(len(keys), fmt.Errorf("read from %s: %v %s", c.opt.From, b.got.Status, b.got.Message))
		return
	}
	now := c.now()
	cmd := protocol.CmdAdd
	if c.opt.Mode == "set" {
		cmd = protocol.CmdSet
	}
	reqs, resps := b.reqs[:0], b.resps[:0]
	for i := range b.got.Hits {
		h := &b.got.Hits[i]
		exptime, ok := remaining(h.Exptime, now)
		if !ok {
			c.counts.Expired.Add(1)
			continue
		}
		n := len(reqs)
		if n == len(b.pool) {
			b.pool = append(b.pool, &protocol.Request{})
			b.out = append(b.out, &protocol.Response{})
		}
		r := b.pool[n]
		r.Reset()
		r.Command = cmd
		r.AddKey(keys[h.Index])
		r.Value = h.Value // owned by b.got until its next Reset: after the write
		r.Flags = h.Flags
		r.Exptime, r.HasExptime = exptime, true
		reqs, resps = append(reqs, r), append(resps, b.out[n])
	}
	c.counts.Missing.Add(int64(len(keys) - len(b.got.Hits)))
	b.reqs, b.resps = reqs, resps
	if len(reqs) == 0 {
		return
	}
	// A retried write round may repeat writes the failed round already
	// made: harmless for the data (same value, flags and expiry), but in
	// mode add those keys then count as "already on target".
	if err := c.retry(ctx, func(ctx context.Context) error {
		return c.dst.Do(ctx, reqs, resps)
	}); err != nil {
		c.fail(len(reqs), fmt.Errorf("write to %s: %w", c.opt.To, err))
		return
	}
	for i, resp := range resps {
		switch resp.Status {
		case protocol.StatusOK:
			c.counts.Copied.Add(1)
			c.counts.Bytes.Add(int64(len(reqs[i].Value)))
		case protocol.StatusNotStored:
			c.counts.Exists.Add(1)
		default:
			c.fail(1, fmt.Errorf("write %q to %s: %v %s", reqs[i].Key(), c.opt.To, resp.Status, resp.Message))
		}
	}
}

// remaining turns a hit's absolute expiry into the exptime to store: 0 for
// never, the seconds left while they fit memcached's relative range (so the
// copy does not depend on the two hosts' clocks agreeing), else the
// absolute time. ok is false when less than a second is left.
func remaining(abs int64, now time.Time) (exptime int64, ok bool) {
	if abs == 0 {
		return 0, true
	}
	left := abs - now.Unix()
	switch {
	case left < 1:
		return 0, false
	case left <= protocol.MaxRelativeExptime:
		return left, true
	default:
		return abs, true
	}
}

func (c *copier) retry(ctx context.Context, f func(context.Context) error) error {
	var err error
	for attempt := 0; attempt <= c.opt.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		rctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
		err = f(rctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (c *copier) fail(n int, err error) {
	c.counts.Failed.Add(int64(n))
	c.errMu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.errMu.Unlock()
}

// bufs are one worker's reusable requests and responses.
type bufs struct {
	get   protocol.Request
	got   protocol.Response
	pool  []*protocol.Request
	out   []*protocol.Response
	reqs  []*protocol.Request
	resps []*protocol.Response
}

// pacer spaces reads to a rate: each batch reserves its keys' slots on a
// shared timeline and sleeps until its slot comes.
type pacer struct {
	rate int // keys per second; 0 means no pacing
	mu   sync.Mutex
	next time.Time // guarded by mu: when the next key may be read
}

func (p *pacer) wait(ctx context.Context, n int) {
	if p.rate <= 0 {
		return
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(n) * time.Second / time.Duration(p.rate))
	p.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
