package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"

	"github.com/moneta-cache/moneta/shared/binproto"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// GetBatcher is an optional interface of a Handler. A client that
// pipelines reads sends get after get without waiting for the replies (the
// binary protocol's multi-get is a run of getkq packets); a handler that
// fetches from a backend would then pay one backend round trip per request,
// one after the other. When the read buffer already holds further whole get
// requests behind the one just read (text get/gets lines, binary
// get/getq/getk/getkq packets), the server reads them too (up to
// maxGetBatch) and hands them over in one HandleGets call, so the handler
// can look all their keys up at once. Replies still go out one per request,
// in order.
type GetBatcher interface {
	// HandleGets answers reqs (each CmdGet or CmdGets), filling resps[i]
	// and setting errs[i] as Handle(ctx, reqs[i], resps[i]) would have.
	// The requests arrived together, so the client cannot tell in which
	// order, or whether concurrently, they were served. resps arrive Reset
	// and errs nil.
	//
	// The hits of one response may point into the memory of another of the
	// same call (one lookup filled them all), so the server encodes every
	// reply of the batch before it reuses any of the responses.
	HandleGets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error)
}

// RunBatcher is an optional interface of a GetBatcher that takes two more
// kinds of pipelined runs together: meta gets (mg lines join the get runs
// handed to HandleGets) and runs of plain sets (text set, meta ms, binary
// set/setq), handed to HandleSets. A store that commits writes as a group
// (mnemonic: one RocksDB WriteBatch per shard) then pays one commit for a
// pipeline of sets instead of one per request. Only whole requests already
// buffered are read ahead, as for gets.
type RunBatcher interface {
	GetBatcher
	// HandleSets answers reqs (each CmdSet), filling resps[i] and setting
	// errs[i] as Handle(ctx, reqs[i], resps[i]) would have, with the
	// effects in request order (a later set of a key wins). resps arrive
	// Reset and errs nil. The values stay valid until HandleSets returns.
	// The codec's value budget is released request by request as the run
	// is read, so a run may hold up to one read buffer of values that the
	// budget no longer counts.
	HandleSets(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response, errs []error)
}

// runKind is what a batch holds: gets (get, gets and, for a RunBatcher,
// mg) or sets.
type runKind uint8

const (
	runGets runKind = iota
	runSets
)

// maxGetBatch bounds the requests of one HandleGets (or HandleSets) call. Their keys are
// bounded by the connection's group size (grouping.go): no more requests
// are read ahead once the batch has that many, and the codec cuts the
// last one's line there, so a pipeline of huge multi-gets (or of gets of
// large items) is not all looked up at once.
const maxGetBatch = 64

// getBatch is the per-burst state of get batching, allocated the first time
// a burst batches and pooled with it.
type getBatch struct {
	// reqs and resps back the requests read ahead (reqs[0] and resps[0]
	// of a batch are the burst's own req and resp).
	reqs  []*protocol.Request
	resps []*protocol.Response
	// list, lresp and errs are the arguments of one HandleGets call.
	list  []*protocol.Request
	lresp []*protocol.Response
	errs  []error
	// A request read ahead may turn out malformed after all; the codec
	// then answers it at once. capW collects that answer (into capBuf)
	// so it can follow the replies of the batch before it, in order.
	capBuf bytes.Buffer
	capW   *bufio.Writer
	// used is how many spares (and list entries past the first) the
	// bursts since the last reset handed out: reset and size look at
	// those only, so a burst that did not batch costs nothing here.
	// retained is what size found the last time it looked at all spares.
	used, retained int
}

func newGetBatch() *getBatch {
	g := &getBatch{
		list:  make([]*protocol.Request, 0, maxGetBatch),
		lresp: make([]*protocol.Response, 0, maxGetBatch),
		errs:  make([]error, maxGetBatch),
	}
	g.capW = bufio.NewWriterSize(&g.capBuf, 512)
	return g
}

// spare returns the i-th read-ahead request and response, reset.
func (g *getBatch) spare(i int) (*protocol.Request, *protocol.Response) {
	for len(g.reqs) <= i {
		g.reqs = append(g.reqs, new(protocol.Request))
		g.resps = append(g.resps, new(protocol.Response))
	}
	g.resps[i].Reset()
	g.used = max(g.used, i+1)
	return g.reqs[i], g.resps[i]
}

// size is what the read-ahead requests and responses hold, for
// burst.oversized. Spares not used since the last reset kept their size.
func (g *getBatch) size() int {
	if g.used > 0 {
		g.retained = 0
		for i := range g.reqs {
			g.retained += g.reqs[i].Retained() + g.resps[i].Retained()
		}
	}
	return g.capBuf.Cap() + g.retained
}

// reset drops what the last batch left, before the burst is pooled. A
// spare keeps its value buffer (bounded by burst.oversized), as the
// burst's own request does, so a run of sets does not allocate values anew
// in every burst.
func (g *getBatch) reset() {
	for i := range g.used {
		v := g.reqs[i].Value[:0]
		g.reqs[i].Reset()
		g.reqs[i].Value = v
		g.resps[i].Reset()
	}
	clear(g.list[:min(g.used+1, cap(g.list))])
	clear(g.lresp[:min(g.used+1, cap(g.lresp))])
	clear(g.errs[:min(g.used+1, len(g.errs))])
	g.used = 0
	g.capBuf.Reset()
}

func isGet(req *protocol.Request) bool {
	return req.Command == protocol.CmdGet || req.Command == protocol.CmdGets
}

// inRun reports whether req belongs to a run of kind.
func inRun(kind runKind, req *protocol.Request) bool {
	if kind == runSets {
		return req.Command == protocol.CmdSet
	}
	return isGet(req)
}

// nextIs reports whether the read buffer starts with a whole request of
// kind, which ReadRequest can then parse without reading the socket: for
// gets a text get or gets line in its plain form ("get k..." with no
// leading spaces; "mg k..." for a RunBatcher), or a binary get, getq, getk
// or getkq packet; for sets a text set or ms line with its whole data
// block, or a binary set or setq packet. Any other request is simply not
// batched (nor is one that parses to another command after all: an ms
// with a mode, an mg with T).
func (c *conn) nextIs(kind runKind) bool {
	br := c.b.br
	n := br.Buffered()
	if n < len("get k\n") || c.headOff < c.headLen || c.pending() {
		// A get line still being returned in groups is served one group
		// per call, each written before the next is read.
		return false
	}
	buf, _ := br.Peek(n) // Peek of what is buffered never reads
	if c.binary {
		if n < binproto.HeaderLen || buf[0] != binaryMagic {
			return false
		}
		switch op := binproto.Opcode(buf[1]); {
		case kind == runGets && (op == binproto.OpGet || op == binproto.OpGetQ || op == binproto.OpGetK || op == binproto.OpGetKQ):
		case kind == runSets && (op == binproto.OpSet || op == binproto.OpSetQ):
		default:
			return false
		}
		return uint64(n) >= binproto.HeaderLen+uint64(binary.BigEndian.Uint32(buf[8:12]))
	}
	if kind == runSets {
		return wholeTextSet(buf)
	}
	if !bytes.HasPrefix(buf, []byte("get ")) && !bytes.HasPrefix(buf, []byte("gets ")) &&
		!(c.runs && bytes.HasPrefix(buf, []byte("mg "))) {
		return false
	}
	return bytes.IndexByte(buf, '\n') >= 0
}

// wholeTextSet reports whether buf starts with a text "set" or meta "ms"
// line followed by its whole data block. Its byte count is the fifth token
// of set, the third of ms; anything it cannot read is not batched (the
// codec then answers it on its own).
func wholeTextSet(buf []byte) bool {
	var at int // token index of the byte count
	switch {
	case bytes.HasPrefix(buf, []byte("set ")):
		at = 4
	case bytes.HasPrefix(buf, []byte("ms ")):
		at = 2
	default:
		return false
	}
	eol := bytes.IndexByte(buf, '\n')
	if eol < 0 {
		return false
	}
	line := buf[:eol]
	tok := 0
	for i := 0; i < len(line); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		start := i
		for i < len(line) && line[i] != ' ' && line[i] != '\r' {
			i++
		}
		if start == i {
			break
		}
		if tok == at {
			n := 0
			for _, d := range line[start:i] {
				if d < '0' || d > '9' || n > len(buf) {
					return false
				}
				n = n*10 + int(d-'0')
			}
			return len(buf) >= eol+1+n+2
		}
		tok++
	}
	return false
}

// serveRun answers the get (or set) in the burst's req together with the
// whole requests of its kind buffered behind it, in one HandleGets (or
// HandleSets) call. It reports false if the connection must close (the
// caller flushes what is owed).
func (c *conn) serveRun(kind runKind) bool {
	s, b := c.srv, c.b
	if b.gets == nil {
		b.gets = newGetBatch()
	}
	g := b.gets
	list := append(g.list[:0], &b.req)
	lresp := append(g.lresp[:0], &b.resp)
	keys := len(b.req.Keys)

	// Read ahead. The codec writes into capW meanwhile, so that if it
	// answers a malformed request itself, that answer waits for the
	// replies of the requests before it.
	var readErr error
	var other *protocol.Request // read ahead, not a get after all
	var otherResp *protocol.Response
	c.codec.Reset(b.br, g.capW)
	for len(list) < maxGetBatch && (kind == runSets || keys < c.groupKeys) && c.nextIs(kind) {
		r, resp := g.spare(len(list) - 1)
		c.reqSeq++
		if kind == runGets {
			c.limitKeys(c.groupKeys - keys)
		}
		if readErr = c.codec.ReadRequest(r); readErr != nil {
			break
		}
		c.nreqs++
		if !inRun(kind, r) {
			other, otherResp = r, resp
			break
		}
		list, lresp = append(list, r), append(lresp, resp)
		keys += len(r.Keys)
	}
	c.codec.Reset(b.br, b.bw)
	g.capW.Flush()

	b.resp.Reset()
	errs := g.errs[:len(list)]
	clear(errs)
	if kind == runSets {
		s.runs.HandleSets(s.ctx, list, lresp, errs)
	} else {
		s.gets.HandleGets(s.ctx, list, lresp, errs)
		nb := 0
		for i := range lresp {
			nb += hitBytes(lresp[i])
		}
		c.adaptGroup(keys, nb)
	}
	for i, req := range list {
		if errs[i] != nil {
			c.handlerFailed(req, lresp[i], errs[i])
		}
		if !c.writeResponse(req, lresp[i]) {
			return false
		}
	}
	if g.capBuf.Len() > 0 {
		b.bw.Write(g.capBuf.Bytes())
		g.capBuf.Reset()
	}
	switch {
	case readErr != nil:
		return c.requestError(readErr)
	case other != nil:
		return c.answer(other, otherResp)
	}
	return true
}
