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

// maxGetBatch bounds the requests of one HandleGets call. Their keys are
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

// reset drops what the last batch left, before the burst is pooled.
func (g *getBatch) reset() {
	for i := range g.used {
		g.reqs[i].Reset()
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

// nextIsGet reports whether the read buffer starts with a whole get
// request, which ReadRequest can then parse without reading the socket: a
// text get or gets line in its plain form ("get k..." with no leading
// spaces), or a binary get, getq, getk or getkq packet. Any other request is
// simply not batched.
func (c *conn) nextIsGet() bool {
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
		switch binproto.Opcode(buf[1]) {
		case binproto.OpGet, binproto.OpGetQ, binproto.OpGetK, binproto.OpGetKQ:
		default:
			return false
		}
		return uint64(n) >= binproto.HeaderLen+uint64(binary.BigEndian.Uint32(buf[8:12]))
	}
	if !bytes.HasPrefix(buf, []byte("get ")) && !bytes.HasPrefix(buf, []byte("gets ")) {
		return false
	}
	return bytes.IndexByte(buf, '\n') >= 0
}

// serveGets answers the get in the burst's req together with the whole get
// requests buffered behind it, in one HandleGets call. It reports false if
// the connection must close (the caller flushes what is owed).
func (c *conn) serveGets() bool {
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
	for len(list) < maxGetBatch && keys < c.groupKeys && c.nextIsGet() {
		r, resp := g.spare(len(list) - 1)
		c.reqSeq++
		c.limitKeys(c.groupKeys - keys)
		if readErr = c.codec.ReadRequest(r); readErr != nil {
			break
		}
		c.nreqs++
		if !isGet(r) {
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
	s.gets.HandleGets(s.ctx, list, lresp, errs)
	nb := 0
	for i := range lresp {
		nb += hitBytes(lresp[i])
	}
	c.adaptGroup(keys, nb)
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
