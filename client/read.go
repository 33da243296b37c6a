package client

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Item is a cache entry.
type Item struct {
	// Key is the application key, without the configured prefix.
	Key string
	// Value is the data. A read returns a Value the caller owns.
	Value []byte
	// Flags are opaque client flags stored with the item.
	Flags uint32
	// Expiration is memcached's exptime: 0 never expires; up to 30 days
	// (2592000) it is relative seconds; above, an absolute unix time.
	Expiration int32
	// CAS is the item's version on the server it was read from, set by
	// Get, GetMulti and GetAndTouch, and checked by CompareAndSwap.
	CAS uint64

	// zone is the zone that served a read: the CAS version belongs to that
	// zone's server, so CompareAndSwap must compare there.
	zone string
}

// Get returns the item for key, or ErrCacheMiss. It asks the local zone
// first, then (per ReadFallback) the other zones. Failures are not returned:
// a key that no zone could serve is a miss, because for a cache an
// unreachable server and an absent key call for the same action. Only a
// malformed key, the caller's context ending, or a closed Client are errors.
func (c *Client) Get(ctx context.Context, key string) (*Item, error) {
	return c.readOne(ctx, key, protocol.CmdGets, 0)
}

// GetAndTouch returns the item for key and sets its expiration (gat) in the
// zone that has it; the other write zones get a touch in the background.
func (c *Client) GetAndTouch(ctx context.Context, key string, exptime int32) (*Item, error) {
	return c.readOne(ctx, key, protocol.CmdGats, exptime)
}

func (c *Client) readOne(ctx context.Context, key string, cmd protocol.Command, exptime int32) (*Item, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	wk, err := c.wireKey(key)
	if err != nil {
		return nil, err
	}
	t := c.topo.Load()
	var orderBuf, missBuf [8]int
	order := c.readOrder(t, orderBuf[:0])
	missed := missBuf[:0] // zones that answered "not there", for fills
	c.stats.gets.Add(1)
	attempted, lastResort := false, false
	for i := 0; i < len(order); i++ {
		zi := order[i]
		n := t.zones[zi].locate(wk)
		if n.isDown() && !lastResort {
			n.skipped.Add(1)
			c.stats.readFailures.Add(1)
			if i == len(order)-1 && !attempted {
				// Every zone was skipped as down. Rather than answer a
				// miss without asking anyone (a stall of the client's own
				// host can mark healthy servers down), go round again
				// ignoring the marks: a pool with no connection fails at
				// once, a live server answers, and each try is bounded by
				// ReadTimeout.
				order = append(order, order...)
				lastResort = true
			}
			continue // a failure: every Fallback but Never goes on, and Never has one zone
		}
		attempted = true
		o := c.getOp()
		o.req.Command = cmd
		o.req.AddKey([]byte(wk))
		o.req.Want = protocol.WantValue | protocol.WantFlags | protocol.WantCAS | protocol.WantTTL
		if cmd == protocol.CmdGats {
			o.req.Exptime, o.req.HasExptime = int64(exptime), true
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.ReadTimeout)
		n.requests.Add(1)
		err := n.c.Handle(actx, &o.req, &o.resp)
		cancel()
		c.result(n, ctx, err)
		if err != nil {
			// The Response is undefined after an error; let it go.
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.stats.readFailures.Add(1)
			continue
		}
		if o.resp.Status != protocol.StatusOK {
			c.putOp(o)
			c.stats.readFailures.Add(1)
			continue
		}
		if len(o.resp.Hits) == 0 {
			c.putOp(o)
			if c.cfg.ReadFallback != FallbackOnMissOrError {
				break
			}
			missed = append(missed, zi)
			continue
		}
		h := &o.resp.Hits[0]
		it := &Item{Key: key, Value: bytes.Clone(h.Value), Flags: h.Flags, CAS: h.CAS,
			Expiration: clampExptime(h.Exptime), zone: t.zones[zi].name}
		if it.Value == nil {
			it.Value = []byte{}
		}
		abs := h.Exptime
		c.putOp(o)
		c.stats.hits.Add(1)
		if i > 0 {
			c.stats.fallbackHits.Add(1)
		}
		if cmd == protocol.CmdGats {
			c.touchOthers(ctx, t, wk, zi, exptime)
		}
		if c.cfg.FillOnFallback && len(missed) > 0 {
			c.fill(ctx, t, missed, wk, it.Value, it.Flags, abs)
		}
		return it, nil
	}
	c.stats.misses.Add(1)
	return nil, ErrCacheMiss
}

// clampExptime turns an absolute expiry from the server into an Item
// Expiration (absolute unix seconds, which fit an int32 until 2038).
func clampExptime(abs int64) int32 {
	if abs <= 0 || abs > 1<<31-1 {
		return 0
	}
	return int32(abs)
}

// touchOthers sends touch to the write zones other than served, in the
// background, so that all copies of an item expire together.
func (c *Client) touchOthers(ctx context.Context, t *topology, wk string, served int, exptime int32) {
	var buf [8]int
	targets := c.writeTargets(t, false, buf[:0])
	others := targets[:0:0]
	for _, z := range targets {
		if z != served {
			others = append(others, z)
		}
	}
	if len(others) > 0 {
		c.fanout(ctx, t, others, &writeReq{cmd: protocol.CmdTouch, key: wk, exptime: int64(exptime)}, 0, false)
	}
}

// fill copies a value found in a later zone into the zones that answered
// "not there" (a restarted, empty server; a zone that missed a write), in
// the background. It uses add, so it never overwrites a write that reached
// the zone in the meantime, and the absolute expiry the hit reported, so the
// copy dies with the original.
func (c *Client) fill(ctx context.Context, t *topology, zones []int, wk string, value []byte, flags uint32, abs int64) {
	if abs != 0 && abs <= time.Now().Unix() {
		return
	}
	c.stats.fills.Add(uint64(len(zones)))
	// The caller owns value once Get returns: fill from a copy.
	c.fanout(ctx, t, append([]int(nil), zones...),
		&writeReq{cmd: protocol.CmdAdd, key: wk, value: bytes.Clone(value), flags: flags, exptime: abs}, 0, false)
}

// GetMulti returns the items found for keys, by application key; missing
// keys are absent from the map. It asks each server of the first zone for
// its keys in one pipelined batch, then asks the next zone only for the keys
// still missing or whose server failed, and so on. As with Get, failures
// are misses, not errors.
func (c *Client) GetMulti(ctx context.Context, keys []string) (map[string]*Item, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]*Item, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	t := c.topo.Load()
	type entry struct {
		key, wk string
		missed  []int // zones that answered "not there"
		tried   bool  // a server was asked (not all skipped as down)
	}
	entries := make([]entry, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		wk, err := c.wireKey(k)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry{key: k, wk: wk})
	}
	c.stats.gets.Add(uint64(len(entries)))
	pending := make([]int, len(entries))
	for i := range pending {
		pending[i] = i
	}
	var orderBuf [8]int
	order := c.readOrder(t, orderBuf[:0])
	fills := map[int][]bulkEntry{}
	lastResort := false
	for step := 0; step < len(order); step++ {
		zi := order[step]
		if len(pending) == 0 {
			break
		}
		z := t.zones[zi]
		groups := map[*node][]int{}
		for _, e := range pending {
			n := z.locate(entries[e].wk)
			groups[n] = append(groups[n], e)
		}
		results := c.fetchGroups(ctx, groups, func(e int) string { return entries[e].wk }, lastResort)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next := pending[:0:0]
		for _, r := range results {
			if r.err != errDown {
				for _, e := range r.idx {
					entries[e].tried = true
				}
			}
			if r.err != nil {
				c.stats.readFailures.Add(1)
				next = append(next, r.idx...)
				continue
			}
			found := make([]bool, len(r.idx))
			for _, h := range r.hits {
				found[h.Index] = true
				e := &entries[r.idx[h.Index]]
				it := &Item{Key: e.key, Value: h.Value, Flags: h.Flags, CAS: h.CAS,
					Expiration: clampExptime(h.Exptime), zone: z.name}
				out[e.key] = it
				if step > 0 {
					c.stats.fallbackHits.Add(1)
				}
				if c.cfg.FillOnFallback && (h.Exptime == 0 || h.Exptime > time.Now().Unix()) {
					for _, mz := range e.missed {
						// The Item's Value is the caller's: fill from a copy.
						fills[mz] = append(fills[mz], bulkEntry{wk: e.wk, value: bytes.Clone(h.Value), flags: h.Flags, exptime: h.Exptime})
					}
				}
			}
			if c.cfg.ReadFallback != FallbackOnMissOrError {
				continue
			}
			for i, e := range r.idx {
				if !found[i] {
					entries[e].missed = append(entries[e].missed, zi)
					next = append(next, e)
				}
			}
		}
		pending = next
		if step == len(order)-1 && !lastResort {
			// Keys whose every server was skipped as down go round again
			// ignoring the marks, as in Get.
			var blind []int
			for _, e := range pending {
				if !entries[e].tried {
					blind = append(blind, e)
				}
			}
			if len(blind) > 0 {
				order = append(order, order...)
				pending, lastResort = blind, true
			}
		}
	}
	c.stats.hits.Add(uint64(len(out)))
	c.stats.misses.Add(uint64(len(entries) - len(out)))
	for zi, es := range fills {
		c.stats.fills.Add(uint64(len(es)))
		c.goBackground(func() {
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.WriteTimeout)
			defer cancel()
			c.bulkWrite(bctx, t.zones[zi], protocol.CmdAdd, es, false, false)
		})
	}
	return out, nil
}

// groupResult is what one server answered for its share of a GetMulti.
type groupResult struct {
	idx  []int // entry indices, in the order of the request's keys
	hits []protocol.Hit
	err  error
}

// fetchGroups asks every server in groups for its keys in parallel, one
// request each, bounded by BulkReadTimeout. The first group runs on the
// caller's goroutine. Hit values are copied out, so they belong to the
// caller. force asks servers marked down too.
func (c *Client) fetchGroups(ctx context.Context, groups map[*node][]int, wireKey func(int) string, force bool) []groupResult {
	results := make([]groupResult, 0, len(groups))
	nodes := make([]*node, 0, len(groups))
	for n, idx := range groups {
		nodes = append(nodes, n)
		results = append(results, groupResult{idx: idx})
	}
	fetch := func(i int) {
		n, r := nodes[i], &results[i]
		if n.isDown() && !force {
			n.skipped.Add(1)
			r.err = errDown
			return
		}
		o := c.getOp()
		o.req.Command = protocol.CmdGets
		o.req.Want = protocol.WantValue | protocol.WantFlags | protocol.WantCAS | protocol.WantTTL
		for _, e := range r.idx {
			o.req.AddKey([]byte(wireKey(e)))
		}
		actx, cancel := context.WithTimeout(ctx, c.cfg.BulkReadTimeout)
		n.requests.Add(1)
		err := n.c.Handle(actx, &o.req, &o.resp)
		cancel()
		c.result(n, ctx, err)
		if err != nil {
			r.err = err
			return
		}
		if o.resp.Status != protocol.StatusOK {
			r.err = statusErr(&o.resp)
			c.putOp(o)
			return
		}
		r.hits = make([]protocol.Hit, len(o.resp.Hits))
		for j, h := range o.resp.Hits {
			h.Value = bytes.Clone(h.Value)
			if h.Value == nil {
				h.Value = []byte{}
			}
			r.hits[j] = h
		}
		c.putOp(o)
	}
	var wg sync.WaitGroup
	for i := 1; i < len(nodes); i++ {
		wg.Go(func() { fetch(i) })
	}
	if len(nodes) > 0 {
		fetch(0)
	}
	wg.Wait()
	return results
}
