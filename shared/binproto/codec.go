package binproto

import (
	"bufio"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// ServerCodec reads binary protocol requests and writes binary replies for
// one connection. It implements server.Codec.
type ServerCodec struct {
	lim protocol.Limits
	r   *bufio.Reader
	w   *bufio.Writer
}

// NewServerCodec returns a codec enforcing l (zero fields take defaults).
func NewServerCodec(l protocol.Limits) *ServerCodec {
	l.EnsureDefaults()
	return &ServerCodec{lim: l}
}

// Reset attaches the codec to new buffers (nil, nil while idle).
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
