// Package textproto is the server side of memcached's text and meta protocols.
package textproto

import (
	"bufio"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// ServerCodec parses text and meta requests and encodes their replies.
// It is owned by one connection goroutine.
type ServerCodec struct {
	lim protocol.Limits
	r   *bufio.Reader
	w   *bufio.Writer
}

// NewServerCodec returns a codec that enforces l (zero fields take defaults).
func NewServerCodec(l protocol.Limits) *ServerCodec {
	l.EnsureDefaults()
	return &ServerCodec{lim: l}
}

// Reset lends the codec the connection's buffers (nil, nil while idle).
func (c *ServerCodec) Reset(r *bufio.Reader, w *bufio.Writer) {
	c.r, c.w = r, w
}

// ReadRequest resets req and parses the next request into it.
func (c *ServerCodec) ReadRequest(req *protocol.Request) error {
	req.Reset()
	return protocol.ErrClose
}

// WriteResponse encodes resp as the reply to req.
func (c *ServerCodec) WriteResponse(req *protocol.Request, resp *protocol.Response) error {
	return nil
}
