package server

import (
	"bufio"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Codec reads requests from and writes replies to one client connection in
// one wire protocol. textproto.ServerCodec (text and meta) and
// binproto.ServerCodec (binary) implement it. A Codec is owned by one
// connection goroutine; it is not safe for concurrent use.
//
// The server lends the codec pooled buffers for a burst of requests with
// Reset, and takes them back (Reset(nil, nil)) while the connection idles, so
// a codec must not keep references into r's buffer across ReadRequest calls
// (it copies keys and values into the Request).
//
// A codec may also implement SetValueRef(ref func(v []byte)); the server
// then calls it once per connection. ref sends v after what the codec
// has written to w so far, without copying it into w: the server writes
// the buffered bytes and the referenced values with one writev, right
// after the WriteResponse that referenced them (v must stay unchanged
// until WriteResponse returns, which every Response value does). Codecs
// reference only the values of a reply that does not fit in w's free
// space (protocol.RefMinReply), so the early write costs no extra syscall.
type Codec interface {
	Reset(r *bufio.Reader, w *bufio.Writer)

	// ReadRequest resets req and parses the next request into it.
	//   nil: req is ready; Noop and Quit come back as commands too.
	//   protocol.ErrReplied: malformed request, already answered, stream in sync.
	//   protocol.ErrClose: answered if there was anything to say; flush and close.
	//   any other error: I/O (io.EOF, timeout); close without writing.
	ReadRequest(req *protocol.Request) error

	// WriteResponse encodes resp as the reply to req into w (not flushed),
	// honouring req.Quiet. For CmdNoop it writes the noop reply (binary noop
	// response, meta "MN"); for CmdQuit it writes what memcached writes
	// (nothing, or the binary quit response) and the server then closes.
	WriteResponse(req *protocol.Request, resp *protocol.Response) error
}
