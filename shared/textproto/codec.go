package textproto

import (
	"bufio"
	"bytes"
	"errors"
	"hash/maphash"
	"io"
	"math"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Line length limits. memcached reads into a 16 KiB buffer and closes a
// connection whose buffer holds more than 2 KiB without a newline unless
// the line starts with "get " or "gets " (after at most 100 spaces), which
// may grow without bound. What memcached does with a 2..16 KiB line thus
// depends on how the bytes arrived. The codec must not depend on chunking,
// so it fixes the outcome memcached gives a line written in one piece:
// up to readBufferSize bytes for any command, up to Limits.MaxLineLen for
// get and gets, longer lines close the connection without a reply.
const (
	readBufferSize   = 16 << 10
	maxLeadingSpaces = 100
)

// Opcode values of meta requests (Request.Opcode). Text commands use 0.
const (
	opText   = 0
	opMetaMG = 'g'
	opMetaMS = 's'
	opMetaMD = 'd'
	opMetaMA = 'a'
	opMetaMN = 'n'
	opMetaME = 'e'
	// opTooLarge marks the delete a too-large set turns into (tooLarge).
	opTooLarge = 0xfe
	// opNoMemory marks the delete a set refused by the value budget turns
	// into (noMemory).
	opNoMemory = 0xfd
)

// Value buffers. A data block is read in steps that at most double what
// has arrived, so a header declaring 20 MiB followed by a stall holds
// little; a buffer above maxKeptValue is not reused by the next request.
const (
	valueStep    = 64 << 10
	maxKeptValue = 64 << 10
	// maxKeptLine: a long-line buffer above it is not reused.
	maxKeptLine = 64 << 10
)

// msgNoMemoryLine answers a line the budget cannot hold; memcached says the
// same when it cannot grow its read buffer, and closes.
const msgNoMemoryLine = "SERVER_ERROR out of memory reading request"

// errNoMemory: the value budget could not cover a data block, which has
// been swallowed; ReadRequest turns it into memcached's answer.
var errNoMemory = errors.New("textproto: value budget exhausted")

// maxTokens bounds the token spans kept per line. memcached keeps 24; every
// command but the get family looks at fewer than 21 (meta rejects more),
// and the get family walks the line itself.
const maxTokens = 24

// memcachedTokens is how many tokens memcached splits a line into at most
// (its 24 slots hold a terminator too); the 23rd holds the rest.
const memcachedTokens = 23

type span struct{ start, end int }

// ServerCodec parses text and meta requests from one connection and encodes
// their replies. It is owned by the connection's goroutine.
type ServerCodec struct {
	lim protocol.Limits
	now func() time.Time // clock for meta t and me exp; time.Now

	r *bufio.Reader
	w *bufio.Writer
	// ref, if set (SetValueRef), sends a value without copying it into w;
	// byRef says the reply being written uses it (see writeData).
	ref   func(v []byte)
	byRef bool

	// line is the current command line without its terminator. It points
	// into r's buffer, or into long for a line longer than r's buffer,
	// and is valid until the next read from r: every parser copies what
	// it keeps into the Request before reading a data block.
	line []byte
	toks [maxTokens]span
	ntok int // tokens on the line; may exceed len(toks)

	long      []byte // accumulates lines longer than r's buffer
	lineOwned bool   // line points into long, not into r's buffer
	hdr       []byte // reply header scratch, reused
	kbuf      []byte // base64 key decode scratch, reused

	// Get lines are returned in groups (see getstream.go).
	groupKeys int         // keys per group; 0: DefaultGroupKeys
	get       getState    // the rest of the current get line
	rest      []byte      // owns the rest of a get line read from r's buffer
	groups    []groupInfo // layouts of gets read but not yet answered
	popped    groupInfo   // the layout WriteResponse is writing
	pos       []int32     // scratch: key positions of the group being read
	hitAt     []int32     // scratch: hit per key of the group being written
	table     []int32     // scratch: dedup hash table
	linear    bool        // dedup by comparison (small groups), not table
	fps       []uint64    // scratch: key fingerprints of a small group
	seed      maphash.Seed

	// budget, if set, is charged for the value bytes being read (see
	// readData); held is what this codec holds of it.
	budget *protocol.Budget
	held   protocol.Hold
	// lineHeld is what long holds of the budget: a get line may be
	// megabytes, and many connections sending one must not add up
	// unchecked. Held until the line's last group is returned.
	lineHeld int64
}

// NewServerCodec returns a codec enforcing l (zero fields take defaults).
func NewServerCodec(l protocol.Limits) *ServerCodec {
	l.EnsureDefaults()
	return &ServerCodec{lim: l, now: time.Now}
}

// SetValueRef gives the codec a way to send a value without copying it into
// the writer (see server.Codec): the values of a get reply too large for
// the writer's free space then go out by reference (refWorthy). nil: every
// value is copied.
func (c *ServerCodec) SetValueRef(ref func(v []byte)) { c.ref = ref }

// Reset lends the codec the connection's buffers for a burst of requests,
// or takes them back (nil, nil) while the connection idles. Scratch that a
// long line grew is dropped then, so an idle connection holds little.
func (c *ServerCodec) Reset(r *bufio.Reader, w *bufio.Writer) {
	c.r, c.w = r, w
	c.line = nil
	if r == nil {
		// Idle (or closing): nothing read is still owed an answer.
		c.get = getState{}
		c.groups = c.groups[:0]
		c.release()
		c.releaseLine()
		if cap(c.long) > 4096 {
			c.long = nil
		}
		if cap(c.rest) > 4096 {
			c.rest = nil
		}
		if cap(c.hdr) > 4096 {
			c.hdr = nil
		}
		if cap(c.table) > 4096 {
			c.table, c.pos, c.hitAt = nil, nil, nil
		}
	}
}

// SetBudget makes the codec charge the value bytes it reads to b, shared
// by the connections of a process. A value that does not fit is swallowed
// and answered "SERVER_ERROR out of memory storing object".
func (c *ServerCodec) SetBudget(b *protocol.Budget) { c.budget = b }

// releaseLine returns what a long line held of the budget, and lets a
// large line buffer go so that the memory really is free.
func (c *ServerCodec) releaseLine() {
	if c.lineHeld != 0 {
		c.budget.Release(c.lineHeld)
		c.lineHeld = 0
	}
	if cap(c.long) > maxKeptLine {
		c.long = nil
	}
}

// release returns what the codec holds of the budget: the value of the
// previous request, whose Handle call has returned.
func (c *ServerCodec) release() {
	c.budget.ReleaseHold(&c.held)
}

// ReadRequest resets req and parses the next request into it. See
// server.Codec for the meaning of its errors.
func (c *ServerCodec) ReadRequest(req *protocol.Request) error {
	// Request.Reset drops Value; keeping its capacity lets a burst of sets
	// read into one buffer (ValueBuffer reuses it). The previous request's
	// value is dead by now: its Handle call has returned.
	c.release()
	v := req.Value[:0]
	if cap(v) > maxKeptValue {
		// Let a large buffer go with its request: kept, it would pin
		// memory the budget no longer counts.
		v = nil
	}
	req.Reset()
	req.Value = v
	if c.get.line != nil {
		c.nextGroup(req)
		return nil
	}
	c.releaseLine()
	if err := c.readLine(); err != nil {
		return err
	}
	err := c.parse(req)
	if err == errNoMemory {
		return c.noMemory(req)
	}
	return err
}

// readLine reads the next command line into c.line, applying memcached's
// terminator rules: the line ends at '\n'; one '\r' before it is dropped
// unless it is the line's only byte; a NUL ends the line early (memcached
// works on C strings).
func (c *ServerCodec) readLine() error {
	line, err := c.r.ReadSlice('\n')
	c.lineOwned = false
	if err == bufio.ErrBufferFull {
		line, err = c.readLongLine(line)
		c.lineOwned = true
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	line = line[:len(line)-1]
	if len(line) > c.lineLimit(line) {
		return protocol.ErrClose
	}
	if n := len(line); n > 1 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	c.line = line
	return nil
}

// readLongLine gathers a line that does not fit r's buffer into c.long,
// giving up (ErrClose) as soon as it is certain to exceed its limit.
func (c *ServerCodec) readLongLine(first []byte) ([]byte, error) {
	c.long = append(c.long[:0], first...)
	for {
		part, err := c.r.ReadSlice('\n')
		c.long = append(c.long, part...)
		n := len(c.long)
		if err == nil {
			n-- // the '\n'
		}
		// What the line holds beyond a read buffer is charged to the
		// budget, as a large value: a long line never takes the reserve
		// small writes rely on. Counting bytes (not the buffer's
		// capacity) keeps the outcome independent of how they arrived:
		// whichever of the length limit and the budget a byte-by-byte
		// reader would hit first decides, however large this read was.
		if limit := c.lineLimit(c.long); n > limit {
			// The limit is crossed at byte limit+1: did the budget run
			// out at an earlier byte?
			if need := int64(limit-readBufferSize) - c.lineHeld; need > 0 {
				if !c.budget.TryAcquire(need, math.MaxInt64) {
					return nil, c.lineNoMemory()
				}
				c.lineHeld += need
			}
			return nil, protocol.ErrClose
		}
		if over := int64(len(c.long)-readBufferSize) - c.lineHeld; over > 0 {
			if !c.budget.TryAcquire(over, math.MaxInt64) {
				return nil, c.lineNoMemory()
			}
			c.lineHeld += over
		}
		if err == nil {
			return c.long, nil
		}
		if err != bufio.ErrBufferFull {
			return c.long, err
		}
	}
}

// lineLimit is the longest line (without terminator) allowed for a line
// starting with prefix.
func (c *ServerCodec) lineLimit(prefix []byte) int {
	other := min(readBufferSize, c.lim.MaxLineLen)
	if len(prefix) <= other {
		return other // decided without looking: anything this short is fine
	}
	i := 0
	for i < len(prefix) && prefix[i] == ' ' {
		i++
	}
	if i <= maxLeadingSpaces {
		p := prefix[i:]
		if bytes.HasPrefix(p, []byte("get ")) || bytes.HasPrefix(p, []byte("gets ")) {
			return max(other, c.lim.MaxLineLen)
		}
	}
	return other
}

// tokenize splits c.line on spaces (only ' ', as memcached does: a tab is
// part of a token), keeping the first maxTokens spans and counting all.
func (c *ServerCodec) tokenize() {
	n := 0
	line := c.line
	i := 0
	for {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i == len(line) {
			break
		}
		s := i
		for i < len(line) && line[i] != ' ' {
			i++
		}
		if n < maxTokens {
			c.toks[n] = span{s, i}
		}
		n++
	}
	c.ntok = n
}

// tok returns token i (which must be < min(ntok, maxTokens)).
func (c *ServerCodec) tok(i int) []byte {
	t := c.toks[i]
	return c.line[t.start:t.end]
}

// parse dispatches the tokenized line.
func (c *ServerCodec) parse(req *protocol.Request) error {
	c.tokenize()
	if c.ntok == 0 {
		return c.replyError(req, "ERROR")
	}
	cmd := c.tok(0)
	if len(cmd) == 2 && cmd[0] == 'm' {
		return c.parseMeta(req, cmd[1])
	}
	return c.parseText(req, cmd)
}

// replyError writes a one-line error reply memcached gives for a malformed
// request (suppressed under text noreply, as memcached's out_string does)
// and returns ErrReplied.
func (c *ServerCodec) replyError(req *protocol.Request, msg string) error {
	if !(req.Quiet && req.Opcode == opText) {
		c.w.WriteString(msg)
		c.w.WriteString("\r\n")
	}
	return protocol.ErrReplied
}

// readData reads a data block of n bytes and its "\r\n" into req.Value. n
// has been checked against MaxItemSize. memcached reads exactly n+2 bytes
// and only then checks the last two: a block of the wrong length is
// answered "bad data chunk" and whatever follows it is read as the next
// command, which is what the stream looks like to memcached.
//
// The buffer grows as bytes arrive, never by more than what has arrived
// (or valueStep), and each growth is charged to the budget first; when the
// budget refuses, the rest of the block is swallowed and errNoMemory
// returned.
func (c *ServerCodec) readData(req *protocol.Request, n int) (bad bool, err error) {
	v, refused, err := protocol.ReadValue(c.r, req.Value, n, valueStep, c.charge)
	if err != nil {
		req.Value = v
		return false, eofIsUnexpected(err)
	}
	if refused {
		req.Value = v[:0]
		if err := c.swallow(int64(n-len(v)) + 2); err != nil {
			return false, err
		}
		return false, errNoMemory
	}
	req.Value = v
	cr, err := c.r.ReadByte()
	if err != nil {
		return false, eofIsUnexpected(err)
	}
	lf, err := c.r.ReadByte()
	if err != nil {
		return false, eofIsUnexpected(err)
	}
	return cr != '\r' || lf != '\n', nil
}

// lineNoMemory answers a line the budget cannot hold, as memcached answers
// a read buffer it cannot grow, and closes the connection.
func (c *ServerCodec) lineNoMemory() error {
	c.w.WriteString(msgNoMemoryLine + "\r\n")
	return protocol.ErrClose
}

// charge takes n bytes from the budget for the value of size bytes being
// read.
func (c *ServerCodec) charge(n, size int) bool {
	return c.budget.Charge(&c.held, n, size)
}

// noMemory answers a storage request whose block the budget refused (and
// readData swallowed) as memcached answers an item it cannot allocate:
// "SERVER_ERROR out of memory storing object", and a set (any ms) unlinks
// the key's old item first, so a refused write never leaves stale data
// readable. req.Keys is set.
func (c *ServerCodec) noMemory(req *protocol.Request) error {
	c.release()
	if req.Command == protocol.CmdSet || req.Opcode == opMetaMS {
		if req.Opcode == opMetaMS {
			req.Quiet = false // meta errors are always answered
		}
		req.Command = protocol.CmdDelete
		req.Opcode = opNoMemory
		req.Value = req.Value[:0]
		return nil
	}
	return c.replyError(req, msgNoMemory)
}

// swallow discards a data block the request was refused for.
func (c *ServerCodec) swallow(n int64) error {
	for n > 0 {
		chunk := n
		if chunk > 1<<30 {
			chunk = 1 << 30
		}
		d, err := c.r.Discard(int(chunk))
		n -= int64(d)
		if err != nil {
			return eofIsUnexpected(err)
		}
	}
	return nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
