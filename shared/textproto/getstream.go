package textproto

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Long multi-gets are served in groups. memcached accepts a get line of any
// length and writes each hit as it finds it, so a client may name 100,000
// keys, or one 4 MiB item a hundred times, in one request. Materialising
// such a request (a Keys entry per key) and its reply (a copy of every hit)
// costs memory proportional to the reply, not to the line.
//
// Instead ReadRequest returns a get line as a run of requests, each holding
// at most GroupKeys keys of the line, the repeated keys of a group only once
// (a handler fetches each distinct key once per group). WriteResponse writes
// a group's hits in the line's order, a repeated key once per time the line
// names it, and END only after the last group. The server calls the handler
// for a group and writes its hits before ReadRequest returns the next group
// (Pending reports that one is left), so what a connection holds is one
// group's hits, however long the line and however large the reply.
//
// The whole line is checked before the first group is returned, so a key
// over MaxKeyLen anywhere still answers only CLIENT_ERROR, as memcached.

// DefaultGroupKeys is the group size until SetGroupKeys is called.
const DefaultGroupKeys = 1024

// groupInfo is what WriteResponse needs of a get request whose keys were
// deduplicated or that is not its line's last group.
type groupInfo struct {
	req *protocol.Request
	// pos maps each key position of the group, in line order, to its index
	// in req.Keys.
	pos  []int32
	last bool // the line's last group: END follows
}

// getState is the part of a get line not yet returned.
type getState struct {
	line  []byte // the rest of the line, nil if none
	owned bool   // line is the codec's memory, not the reader's buffer
	cmd   protocol.Command
	want  protocol.Want
	exp   int64
	tch   bool // gat/gats: Exptime applies
	left  int  // keys in line
}

// SetGroupKeys bounds the keys of the next get request ReadRequest returns
// (at least 1). The server sizes it from the bytes earlier hits took.
func (c *ServerCodec) SetGroupKeys(n int) {
	c.groupKeys = max(n, 1)
}

// Pending reports that the codec holds the rest of a get line: the next
// ReadRequest returns its next group without reading from the connection.
func (c *ServerCodec) Pending() bool { return c.get.line != nil }

// nextGroup fills req with the next group of the get line in c.get and
// records what WriteResponse needs to write it.
func (c *ServerCodec) nextGroup(req *protocol.Request) {
	g := &c.get
	req.Command = g.cmd
	req.Want = g.want
	if g.tch {
		req.Exptime, req.HasExptime = g.exp, true
	}
	line := g.line
	limit := c.groupKeys
	if limit <= 0 {
		limit = DefaultGroupKeys
	}
	pos := c.pos[:0]
	dup := false
	c.dedupReset(min(limit, g.left))
	i := 0
	for i < len(line) && len(pos) < limit {
		s := i
		for i < len(line) && line[i] != ' ' {
			i++
		}
		key := line[s:i]
		for i < len(line) && line[i] == ' ' {
			i++
		}
		u, seen := c.dedup(req, key)
		if seen {
			dup = true
		}
		pos = append(pos, int32(u))
	}
	c.pos = pos
	g.left -= len(pos)
	rest := line[i:]
	last := len(rest) == 0
	switch {
	case last:
		g.line = nil
	case g.owned:
		g.line = rest
	default:
		// The line is in the reader's buffer, which the next read may
		// overwrite: keep the rest in the codec's own memory.
		c.rest = append(c.rest[:0], rest...)
		g.line, g.owned = c.rest, true
	}
	if dup || !last {
		c.pushGroup(req, pos, last)
	}
}

// linearKeys: a group of at most this many keys is deduplicated by
// comparing each key with the ones before it, cheaper than hashing them.
const linearKeys = 16

// dedupReset prepares the key table for a group of up to n keys.
func (c *ServerCodec) dedupReset(n int) {
	c.linear = n <= linearKeys
	if c.linear {
		c.fps = c.fps[:0]
		return
	}
	size := 8
	for size < 2*n {
		size <<= 1
	}
	if cap(c.table) < size {
		c.table = make([]int32, size)
		c.seed = maphash.MakeSeed()
	}
	c.table = c.table[:size]
	clear(c.table)
}

// dedup returns the index in req.Keys of key, adding it if it is new.
// The table holds index+1 per slot (0: empty), open addressing.
func (c *ServerCodec) dedup(req *protocol.Request, key []byte) (idx int, seen bool) {
	if c.linear {
		fp := fingerprint(key)
		for i, f := range c.fps {
			if f == fp && string(req.Keys[i]) == string(key) {
				return i, true
			}
		}
		c.fps = append(c.fps, fp)
		req.AddKey(key)
		return len(req.Keys) - 1, false
	}
	mask := uint64(len(c.table) - 1)
	h := maphash.Bytes(c.seed, key) & mask
	for {
		e := c.table[h]
		if e == 0 {
			c.table[h] = int32(len(req.Keys) + 1)
			req.AddKey(key)
			return len(req.Keys) - 1, false
		}
		if string(req.Keys[e-1]) == string(key) {
			return int(e - 1), true
		}
		h = (h + 1) & mask
	}
}

// fingerprint packs a key's length and last bytes (where keys that share a
// prefix differ) into a word, so most comparisons are one instruction.
func fingerprint(key []byte) uint64 {
	n := len(key)
	if n >= 4 {
		return uint64(n)<<32 | uint64(binary.LittleEndian.Uint32(key[n-4:]))
	}
	fp := uint64(n)
	for _, b := range key {
		fp = fp<<8 | uint64(b)
	}
	return fp
}

// pushGroup queues the group layout of req for WriteResponse. Replies are
// written in the order requests were read, so a queue suffices even when
// the server reads several gets ahead (GetBatcher).
func (c *ServerCodec) pushGroup(req *protocol.Request, pos []int32, last bool) {
	if len(c.groups) < cap(c.groups) {
		c.groups = c.groups[:len(c.groups)+1]
	} else {
		c.groups = append(c.groups, groupInfo{})
	}
	gi := &c.groups[len(c.groups)-1]
	gi.req = req
	gi.pos = append(gi.pos[:0], pos...)
	gi.last = last
}

// popGroup returns the queued layout of req, or nil if it has none (a get
// whose keys are all distinct and whose line ended with it). Only the
// queue's head can be req's: replies are written in the order requests
// were read, and a connection that stops answering is reset.
func (c *ServerCodec) popGroup(req *protocol.Request) *groupInfo {
	if len(c.groups) == 0 || c.groups[0].req != req {
		return nil
	}
	gi := c.groups[0]
	// Shift down, keeping the pos slices for reuse.
	copy(c.groups, c.groups[1:])
	c.groups[len(c.groups)-1] = gi
	c.groups = c.groups[:len(c.groups)-1]
	c.popped = gi
	return &c.popped
}

// writeGroup writes the hits of a group in line order, each position of a
// repeated key getting its own copy, and END after the line's last group.
func (c *ServerCodec) writeGroup(req *protocol.Request, resp *protocol.Response, gi *groupInfo) {
	withCAS := req.Want&protocol.WantCAS != 0
	at := c.hitAt[:0]
	for range req.Keys {
		at = append(at, -1)
	}
	for i := range resp.Hits {
		if x := resp.Hits[i].Index; x >= 0 && x < len(at) && at[x] < 0 {
			at[x] = int32(i)
		}
	}
	c.hitAt = at
	for _, u := range gi.pos {
		if h := at[u]; h >= 0 {
			c.writeValue(req, &resp.Hits[h], withCAS)
		}
	}
	if gi.last {
		c.w.WriteString("END\r\n")
	}
}

// dropGet forgets the rest of a get line: a group failed, its error ends
// the reply, and memcached would not go on after it either.
func (c *ServerCodec) dropGet() {
	c.get.line = nil
}
