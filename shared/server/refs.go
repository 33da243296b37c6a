package server

import (
	"net"
)

// valueRef is a value to send, by reference, once the first at bytes of
// the write buffer are out.
type valueRef struct {
	at int
	v  []byte
}

// valueReferrer is implemented by codecs that can send a large value
// without copying it into the write buffer (textproto and binproto
// ServerCodec): see refValue.
type valueReferrer interface {
	SetValueRef(ref func(v []byte))
}

// gathers reports whether nc writes a net.Buffers with one writev. Any
// other net.Conn (a test's pipe, a wrapper) would get one write per value,
// so its codec copies values as before.
func gathers(nc net.Conn) bool {
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// refValue is the codec's way to send v without copying it: v goes out
// after the bytes the codec has written to the borrowed bufio.Writer so
// far, straight from v's memory, by one writev with the buffered bytes
// around it (Write). v must stay unchanged until then; writeResponse
// sends every referenced value before WriteResponse's caller can reuse
// the Response v belongs to. Only while the codec writes to b.bw (not to
// a batch's capW, where it only answers malformed requests).
func (c *conn) refValue(v []byte) {
	b := c.b
	if c.loopIO {
		// The event loop never waits on a socket: what a write cannot
		// take at once is copied aside (writeNow), so copy now.
		b.bw.Write(v)
		return
	}
	b.refs = append(b.refs, valueRef{at: b.bw.Buffered(), v: v})
}

// sendRefs writes everything buffered and every referenced value, and
// forgets the references (also after a write error: they must not pin a
// Response, nor be sent later).
func (c *conn) sendRefs() error {
	b := c.b
	err := b.bw.Flush()
	if err == nil && len(b.refs) > 0 {
		// Nothing was buffered after the last reference (a binary reply
		// ends with its value), so Flush did not call Write.
		_, err = c.Write(nil)
	}
	clear(b.refs)
	b.refs = b.refs[:0]
	return err
}

// writeRefs is Write while values are referenced: p (what bufio flushes,
// its whole buffer) goes out with the values spliced in where the codec
// referenced them, in one writev.
func (c *conn) writeRefs(p []byte) (int, error) {
	b := c.b
	vec := b.vec[:0]
	at := 0
	for _, r := range b.refs {
		// r.at <= len(p): p is the buffer the offsets were taken in
		// (bufio writes around its buffer only when it holds nothing,
		// and then every offset is 0).
		if r.at > at {
			vec = append(vec, p[at:r.at])
			at = r.at
		}
		vec = append(vec, r.v)
	}
	if at < len(p) {
		vec = append(vec, p[at:])
	}
	clear(b.refs)
	b.refs = b.refs[:0]
	var n int64
	var err error
	if c.rio != nil {
		n, err = c.rio.Writev(vec)
	} else {
		b.send = vec
		n, err = b.send.WriteTo(c.nc) // writev on TCP and unix sockets
		b.send = nil
	}
	clear(vec)
	b.vec = vec[:0]
	c.nwritten += uint64(n)
	if err != nil {
		c.werr = err
		c.srv.stats.WriteErrors.Add(1)
		return 0, err
	}
	return len(p), nil
}
