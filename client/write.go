package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// errDown is the failure recorded for a request not sent because its
// server is marked down.
var errDown = errors.New("server marked down")

// writeReq is one write as sent to every zone. It is shared read-only by the
// goroutines of a fan-out, which may outlive the call: value is always a
// copy the Client owns.
type writeReq struct {
	cmd     protocol.Command
	key     string // wire key
	value   []byte
	flags   uint32
	exptime int64
	cas     uint64
	delta   uint64
}

func (w *writeReq) fill(req *protocol.Request) {
	req.Command = w.cmd
	req.AddKey([]byte(w.key))
	req.Value = w.value
	req.Flags = w.flags
	req.Exptime, req.HasExptime = w.exptime, true
	req.CAS = w.cas
	req.Delta = w.delta
}

// answer is one zone's reply to a write.
type answer struct {
	pos    int   // position among the targets: lower is preferred
	err    error // the server could not be reached in time, or is down
	status protocol.Status
	msg    string
	number uint64
	cas    uint64
}

// acked reports whether the answer counts towards the policy: the server
// answered, and not with a failure of its own.
func (a *answer) acked() bool {
	return a.err == nil && a.status != protocol.StatusServerError
}

func (a *answer) failure() error {
	if a.err != nil {
		return a.err
	}
	return &ServerError{Message: a.msg}
}

// outcome is the error the caller sees for an acknowledged answer.
func (a *answer) outcome() error {
	return statusErr(&protocol.Response{Status: a.status, Message: a.msg})
}

// usable reports why a call must not start: the Client is closed, or the
// caller's context already ended (a pool may still complete a request on a
// dead context when the reply is quick, which would make the outcome depend
// on timing).
func (c *Client) usable(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// goBackground runs f on a goroutine that Close waits for, unless the
// Client is closing. bgMu makes "not closed, so Add" atomic with respect to
// Close's "closed, so Wait", which sync.WaitGroup requires.
func (c *Client) goBackground(f func()) bool {
	c.bgMu.RLock()
	defer c.bgMu.RUnlock()
	if c.closed.Load() {
		return false
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		f()
	}()
	return true
}

// send performs one write on one server, bounded by WriteTimeout. ctx is
// detached from the caller's cancellation when the write may outlive the
// call.
func (c *Client) send(ctx context.Context, n *node, w *writeReq, batch, force bool) answer {
	if n.isDown() && !force {
		n.skipped.Add(1)
		return answer{err: fmt.Errorf("%s: %w", n.addr, errDown)}
	}
	o := c.getOp()
	w.fill(&o.req)
	wctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
	n.requests.Add(1)
	err := n.pool(batch).Handle(wctx, &o.req, &o.resp)
	cancel()
	c.result(n, ctx, err)
	if err != nil {
		return answer{err: fmt.Errorf("%s: %w", n.addr, err)}
	}
	a := answer{status: o.resp.Status, msg: o.resp.Message, number: o.resp.Number, cas: o.resp.CAS}
	c.putOp(o)
	return a
}

// fanout sends w to the owner of its key in every target zone, in
// parallel, and waits until required zones acknowledged (then returns the
// most preferred acknowledged answer) or so many failed that required can no
// longer be reached (ErrUnavailable). The writes not waited for go on in
// the background, each bounded by WriteTimeout, and are not cancelled by
// ctx: a cache write abandoned halfway would leave zones disagreeing for the
// item's whole lifetime. If ctx ends first, fanout returns ctx.Err().
func (c *Client) fanout(ctx context.Context, t *topology, targets []int, w *writeReq, required int, batch bool) (answer, error) {
	required = min(required, len(targets))
	bctx := context.WithoutCancel(ctx)
	ch := make(chan answer, len(targets)) // never blocks a sender
	// returned is set once the caller stopped waiting, so that failures
	// after that point are counted as background failures.
	var returned atomic.Bool
	// When every target server is marked down, send anyway rather than
	// fail without trying: a down mark may be stale, and a pool with no
	// connection fails at once.
	force := true
	for _, zi := range targets {
		if !t.zones[zi].locate(w.key).isDown() {
			force = false
			break
		}
	}
	for pos, zi := range targets {
		n := t.zones[zi].locate(w.key)
		ok := c.goBackground(func() {
			a := c.send(bctx, n, w, batch, force)
			a.pos = pos
			if !a.acked() && returned.Load() {
				c.stats.bgWriteFailures.Add(1)
				c.log.Debug("moneta background write failed", "server", n.addr, "error", a.failure())
			}
			ch <- a
		})
		if !ok {
			return answer{}, ErrClosed
		}
	}
	if required == 0 {
		returned.Store(true)
		return answer{}, nil
	}
	var best answer
	acked, failed := 0, 0
	var firstErr error
	for acked < required && failed <= len(targets)-required {
		select {
		case a := <-ch:
			if a.acked() {
				if acked == 0 || a.pos < best.pos {
					best = a
				}
				acked++
			} else {
				failed++
				if firstErr == nil {
					firstErr = a.failure()
				}
			}
		case <-ctx.Done():
			returned.Store(true)
			return answer{}, ctx.Err()
		}
	}
	returned.Store(true)
	if acked >= required {
		return best, nil
	}
	return answer{}, fmt.Errorf("%w: %d of %d zones acknowledged, policy %s needs %d: %w",
		ErrUnavailable, acked, len(targets), c.cfg.Policy, required, firstErr)
}

// write runs w under the configured policy (and at least minRequired
// acknowledgements) on the write zones, or on every zone when all is set.
func (c *Client) write(ctx context.Context, w *writeReq, all bool, minRequired int) (answer, error) {
	if err := c.usable(ctx); err != nil {
		return answer{}, err
	}
	t := c.topo.Load()
	var buf [8]int
	targets := c.writeTargets(t, all, buf[:0])
	required := max(c.cfg.Policy.required(len(targets)), minRequired)
	c.stats.writes.Add(1)
	a, err := c.fanout(ctx, t, targets, w, required, c.cfg.BatchWrites == BatchAll)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			c.stats.writeFailures.Add(1)
		}
		return answer{}, err
	}
	if required == 0 {
		return a, nil
	}
	return a, a.outcome()
}

func (c *Client) store(ctx context.Context, cmd protocol.Command, item *Item) error {
	wk, err := c.wireKey(item.Key)
	if err != nil {
		return err
	}
	_, err = c.write(ctx, &writeReq{cmd: cmd, key: wk, value: cloneValue(item.Value),
		flags: item.Flags, exptime: int64(item.Expiration)}, false, 0)
	return err
}

// cloneValue copies v: writes may outlive the call, the caller's slice may
// not stay unchanged that long.
func cloneValue(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return bytes.Clone(v)
}

// Set stores item in the write zones, per the write policy.
func (c *Client) Set(ctx context.Context, item *Item) error {
	return c.store(ctx, protocol.CmdSet, item)
}

// Add stores item only where its key is absent; ErrNotStored otherwise.
// Zones decide independently: with a policy below all, the result is that
// of the most preferred zone that answered (the local zone first).
func (c *Client) Add(ctx context.Context, item *Item) error {
	return c.store(ctx, protocol.CmdAdd, item)
}

// Replace stores item only where its key exists; ErrNotStored otherwise.
func (c *Client) Replace(ctx context.Context, item *Item) error {
	return c.store(ctx, protocol.CmdReplace, item)
}

// Append appends item.Value to the existing value; ErrNotStored on a miss.
func (c *Client) Append(ctx context.Context, item *Item) error {
	return c.store(ctx, protocol.CmdAppend, item)
}

// Prepend prepends item.Value to the existing value; ErrNotStored on a miss.
func (c *Client) Prepend(ctx context.Context, item *Item) error {
	return c.store(ctx, protocol.CmdPrepend, item)
}

// Delete removes key from every zone (not only the write zones: a zone that
// still had an old copy would serve it to a fallback read). ErrCacheMiss if
// the preferred answering zone did not have it.
func (c *Client) Delete(ctx context.Context, key string) error {
	wk, err := c.wireKey(key)
	if err != nil {
		return err
	}
	_, err = c.write(ctx, &writeReq{cmd: protocol.CmdDelete, key: wk}, true, 0)
	return err
}

// Touch sets key's expiration in the write zones; ErrCacheMiss on a miss.
func (c *Client) Touch(ctx context.Context, key string, exptime int32) error {
	wk, err := c.wireKey(key)
	if err != nil {
		return err
	}
	_, err = c.write(ctx, &writeReq{cmd: protocol.CmdTouch, key: wk, exptime: int64(exptime)}, false, 0)
	return err
}

// Incr adds delta to the decimal number stored at key and returns the new
// value (from the most preferred zone that answered; zones count
// independently, so after a zone missed some increments their values
// differ). It waits for at least one zone whatever the policy, since it
// returns a value. ErrCacheMiss if the key is absent.
func (c *Client) Incr(ctx context.Context, key string, delta uint64) (uint64, error) {
	return c.arith(ctx, protocol.CmdIncr, key, delta)
}

// Decr subtracts delta, stopping at 0, like Incr.
func (c *Client) Decr(ctx context.Context, key string, delta uint64) (uint64, error) {
	return c.arith(ctx, protocol.CmdDecr, key, delta)
}

func (c *Client) arith(ctx context.Context, cmd protocol.Command, key string, delta uint64) (uint64, error) {
	wk, err := c.wireKey(key)
	if err != nil {
		return 0, err
	}
	a, err := c.write(ctx, &writeReq{cmd: cmd, key: wk, delta: delta}, false, 1)
	if err != nil {
		return 0, err
	}
	return a.number, nil
}

// CompareAndSwap stores item only if it has not changed since it was read:
// item must come from Get, GetMulti or GetAndTouch. CAS versions are per
// server, so the compare happens in the zone the item was read from, and
// that zone decides (ErrCASConflict, ErrCacheMiss). On success the value is
// set in the other write zones, per the policy counting the deciding zone
// as one acknowledgement; a concurrent write that reached only another zone
// is overwritten there, as last writer.
func (c *Client) CompareAndSwap(ctx context.Context, item *Item) error {
	if err := c.usable(ctx); err != nil {
		return err
	}
	wk, err := c.wireKey(item.Key)
	if err != nil {
		return err
	}
	t := c.topo.Load()
	home := max(t.local, 0)
	for i, z := range t.zones {
		if z.name == item.zone {
			home = i
		}
	}
	c.stats.writes.Add(1)
	w := &writeReq{cmd: protocol.CmdCas, key: wk, value: cloneValue(item.Value),
		flags: item.Flags, exptime: int64(item.Expiration), cas: item.CAS}
	a := c.send(ctx, t.zones[home].locate(wk), w, c.cfg.BatchWrites == BatchAll, true)
	if !a.acked() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.stats.writeFailures.Add(1)
		return fmt.Errorf("%w: zone %s: %w", ErrUnavailable, t.zones[home].name, a.failure())
	}
	if err := a.outcome(); err != nil {
		return err
	}
	var buf [8]int
	targets := c.writeTargets(t, false, buf[:0])
	others := make([]int, 0, len(targets))
	for _, z := range targets {
		if z != home {
			others = append(others, z)
		}
	}
	required := c.cfg.Policy.required(len(targets))
	if len(others) < len(targets) {
		required-- // the home zone is one of the targets and has acknowledged
	}
	set := *w
	set.cmd, set.cas = protocol.CmdSet, 0
	_, err = c.fanout(ctx, t, others, &set, max(required, 0), c.cfg.BatchWrites == BatchAll)
	if errors.Is(err, ErrUnavailable) {
		c.stats.writeFailures.Add(1)
	}
	return err
}

// bulkEntry is one item of a bulk write, with its wire key.
type bulkEntry struct {
	wk      string
	value   []byte
	flags   uint32
	exptime int64
}

// BulkError reports the items of a SetMulti that were not stored, by key.
type BulkError struct {
	Errors map[string]error
}

func (e *BulkError) Error() string {
	for k, err := range e.Errors {
		return "moneta: " + strconv.Itoa(len(e.Errors)) + " items not stored, e.g. " + strconv.Quote(k) + ": " + err.Error()
	}
	return "moneta: no items failed"
}

// SetMulti stores many items, pipelined: each server of each write zone
// gets one batch. With BatchWrites set to bulk or all, the batches go to
// the servers' batch port (rend's 11212), whose writes do not evict the hot
// set. A zone acknowledges when all its servers answered; the call returns
// per the policy, like Set. Items the preferred acknowledging zone did not
// store are reported in a *BulkError.
func (c *Client) SetMulti(ctx context.Context, items []*Item) error {
	if err := c.usable(ctx); err != nil {
		return err
	}
	entries := make([]bulkEntry, len(items))
	for i, it := range items {
		wk, err := c.wireKey(it.Key)
		if err != nil {
			return err
		}
		entries[i] = bulkEntry{wk: wk, value: cloneValue(it.Value), flags: it.Flags, exptime: int64(it.Expiration)}
	}
	t := c.topo.Load()
	var buf [8]int
	targets := c.writeTargets(t, false, buf[:0])
	required := c.cfg.Policy.required(len(targets))
	batch := c.cfg.BatchWrites != BatchOff
	c.stats.writes.Add(1)
	// As in fanout: with every server of the write zones marked down, send
	// anyway rather than fail without trying.
	force := true
	for _, zi := range targets {
		for _, n := range t.zones[zi].nodes {
			force = force && n.isDown()
		}
	}

	type zoneAnswer struct {
		pos  int
		errs []error // per entry; nil entries were stored
		err  error   // a server of the zone failed
	}
	ch := make(chan zoneAnswer, len(targets))
	var returned atomic.Bool
	bctx := context.WithoutCancel(ctx)
	for pos, zi := range targets {
		ok := c.goBackground(func() {
			wctx, cancel := context.WithTimeout(bctx, c.cfg.WriteTimeout)
			errs, err := c.bulkWrite(wctx, t.zones[zi], protocol.CmdSet, entries, batch, force)
			cancel()
			if err != nil && returned.Load() {
				c.stats.bgWriteFailures.Add(1)
			}
			ch <- zoneAnswer{pos: pos, errs: errs, err: err}
		})
		if !ok {
			return ErrClosed
		}
	}
	if required == 0 {
		returned.Store(true)
		return nil
	}
	var best *zoneAnswer
	acked, failed := 0, 0
	var firstErr error
	for acked < required && failed <= len(targets)-required {
		select {
		case a := <-ch:
			if a.err == nil {
				if best == nil || a.pos < best.pos {
					best = &a
				}
				acked++
			} else {
				failed++
				if firstErr == nil {
					firstErr = a.err
				}
			}
		case <-ctx.Done():
			returned.Store(true)
			return ctx.Err()
		}
	}
	returned.Store(true)
	if acked < required {
		c.stats.writeFailures.Add(1)
		return fmt.Errorf("%w: %d of %d zones acknowledged, policy %s needs %d: %w",
			ErrUnavailable, acked, len(targets), c.cfg.Policy, required, firstErr)
	}
	var be *BulkError
	for i, err := range best.errs {
		if err != nil {
			if be == nil {
				be = &BulkError{Errors: map[string]error{}}
			}
			be.Errors[items[i].Key] = err
		}
	}
	if be != nil {
		return be
	}
	return nil
}

// bulkWrite sends cmd for every entry to its server in zone z: one
// pipelined batch per server, the servers in parallel. errs[i] is entry i's
// outcome; err is the first server failure (its entries' errs say so too).
func (c *Client) bulkWrite(ctx context.Context, z *zone, cmd protocol.Command, entries []bulkEntry, batch, force bool) (errs []error, err error) {
	errs = make([]error, len(entries))
	groups := map[*node][]int{}
	for i := range entries {
		n := z.locate(entries[i].wk)
		groups[n] = append(groups[n], i)
	}
	var mu sync.Mutex // guards err
	var wg sync.WaitGroup
	for n, idx := range groups {
		wg.Go(func() {
			fail := func(e error) {
				e = fmt.Errorf("%s: %w", n.addr, e)
				for _, i := range idx {
					errs[i] = e
				}
				mu.Lock()
				if err == nil {
					err = e
				}
				mu.Unlock()
			}
			if n.isDown() && !force {
				n.skipped.Add(1)
				fail(errDown)
				return
			}
			reqs := make([]*protocol.Request, len(idx))
			resps := make([]*protocol.Response, len(idx))
			for j, i := range idx {
				e := &entries[i]
				reqs[j] = &protocol.Request{}
				(&writeReq{cmd: cmd, key: e.wk, value: e.value, flags: e.flags, exptime: e.exptime}).fill(reqs[j])
				resps[j] = &protocol.Response{}
			}
			n.requests.Add(1)
			e := n.pool(batch).Do(ctx, reqs, resps)
			c.result(n, context.Background(), e)
			if e != nil {
				fail(e)
				return
			}
			for j, i := range idx {
				if resps[j].Status == protocol.StatusServerError {
					fail(&ServerError{Message: resps[j].Message})
					return
				}
				errs[i] = statusErr(resps[j])
			}
		})
	}
	wg.Wait()
	return errs, err
}
