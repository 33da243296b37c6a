package mcclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// errValueTooLarge fails a call whose reply announced a value above
// Config.MaxValueSize. The value is skipped, so the connection stays usable.
var errValueTooLarge = errors.New("mcclient: reply value larger than MaxValueSize")

// protoError is a reply that does not fit the command it answers: the stream
// is out of step (or the server does not speak the meta protocol) and the
// connection must be dropped.
type protoError struct {
	what string
	line []byte
}

func (e *protoError) Error() string {
	line := e.line
	if len(line) > 64 {
		line = line[:64]
	}
	return fmt.Sprintf("mcclient: protocol error: %s: %q", e.what, line)
}

func badReply(what string, line []byte) error {
	// Copy: line points into the read buffer, which the next read reuses.
	return &protoError{what: what, line: bytes.Clone(line)}
}

// replyReader parses the replies of one connection. It owns no Request: an
// op says everything it needs to know.
type replyReader struct {
	br       *bufio.Reader
	maxValue int
	// scratch holds a value too large to be peeked in br's buffer.
	scratch []byte
}

// maxScratchKeep bounds the scratch buffer kept between replies, so one huge
// value does not pin its memory for the life of the connection.
const maxScratchKeep = 1 << 20

// readLine returns the next line without its "\r\n", valid until the next read.
func (r *replyReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, badReply("reply line too long", line)
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, badReply("line not ended by CRLF", line)
	}
	return line[:len(line)-2], nil
}

// readValue reads a data block of n bytes and its "\r\n". The returned slice
// is valid until r.release(n, peeked), which must be called before the next
// read. A value that fits the read buffer is peeked, so it is copied once,
// straight into the Response.
func (r *replyReader) readValue(n int) (v []byte, peeked bool, err error) {
	if n+2 <= r.br.Size() {
		b, err := r.br.Peek(n + 2)
		if err != nil {
			return nil, false, err
		}
		if b[n] != '\r' || b[n+1] != '\n' {
			return nil, false, badReply("data block not ended by CRLF", b[n:])
		}
		return b[:n], true, nil
	}
	if cap(r.scratch) < n+2 {
		r.scratch = make([]byte, n+2)
	}
	b := r.scratch[:n+2]
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, false, err
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, false, badReply("data block not ended by CRLF", b[n:])
	}
	return b[:n], false, nil
}

// readHit reads a data block of n bytes and its "\r\n" into a new hit of
// resp for key index i. A block that fits the read buffer is peeked and
// copied once, into the Response; a larger one is read straight into the
// Response's own memory (AppendHitBuffer), with no scratch copy either. On
// an error the hit is dropped again (the connection is failed anyway).
func (r *replyReader) readHit(resp *protocol.Response, i, n int, flags uint32, cas uint64, exp int64) (*protocol.Hit, error) {
	if n+2 <= r.br.Size() {
		v, peeked, err := r.readValue(n)
		if err != nil {
			return nil, err
		}
		h := resp.AppendHit(i, v, flags, cas, exp)
		r.release(n, peeked)
		return h, nil
	}
	h := resp.AppendHitBuffer(i, n, flags, cas, exp)
	if _, err := io.ReadFull(r.br, h.Value); err != nil {
		resp.Hits = resp.Hits[:len(resp.Hits)-1]
		return nil, err
	}
	end, err := r.br.Peek(2)
	if err == nil && (end[0] != '\r' || end[1] != '\n') {
		err = badReply("data block not ended by CRLF", end)
	}
	if err != nil {
		resp.Hits = resp.Hits[:len(resp.Hits)-1]
		return nil, err
	}
	r.br.Discard(2)
	return h, nil
}

// release ends the life of a slice returned by readValue.
func (r *replyReader) release(n int, peeked bool) {
	if peeked {
		// Peek proved the bytes are buffered, so Discard cannot fail.
		r.br.Discard(n + 2)
		return
	}
	if cap(r.scratch) > maxScratchKeep {
		r.scratch = nil
	}
}

// skip discards n bytes plus "\r\n" without allocating.
func (r *replyReader) skip(n int) error {
	_, err := r.br.Discard(n + 2)
	return err
}

// read parses the reply to o into resp. keys are the Request's keys, which
// an opGets reply is matched against, or nil when nobody waits for the
// reply (it is then only consumed). A *protoError or an I/O error means the
// connection is unusable; errValueTooLarge means only this call failed.
func (r *replyReader) read(o *op, resp *protocol.Response, keys [][]byte, now time.Time) error {
	line, err := r.readLine()
	if err != nil {
		return err
	}
	if len(line) >= 5 && (line[0] == 'C' || line[0] == 'S' || line[0] == 'E') {
		if done, err := r.errorReply(o, line, resp); done || err != nil {
			return err
		}
	}
	switch o.kind {
	case opGet, opGat:
		return r.readGet(o, line, resp, now)
	case opGets:
		return r.readGets(o, line, resp, keys)
	case opTouch:
		return r.status(line, resp, "HDEN")
	case opStore:
		if err := r.status(line, resp, "HDNSEXNF"); err != nil {
			return err
		}
		if resp.Status == protocol.StatusOK {
			resp.CAS = flagUint(line, 'c')
		}
		return nil
	case opDelete:
		return r.status(line, resp, "HDNFEX")
	case opArith:
		return r.readArith(line, resp)
	case opFlush, opVerbosity:
		if string(line) != "OK" {
			return badReply("want OK", line)
		}
		return nil
	case opVersion:
		v, ok := bytes.CutPrefix(line, []byte("VERSION "))
		if !ok {
			return badReply("want VERSION", line)
		}
		resp.Message = string(v)
		return nil
	case opStats:
		return r.readStats(line, resp)
	case opMemlimit:
		// OK, or memcached's refusal line (MEMLIMIT_TOO_SMALL ...),
		// passed on as protocol.CheckMemlimit reports it.
		if string(line) == "OK" {
			return nil
		}
		if bytes.HasPrefix(line, []byte("MEMLIMIT_")) {
			setStatus(resp, protocol.StatusNotStored, string(line))
			return nil
		}
		return badReply("want OK", line)
	}
	return badReply("unknown op", line)
}

// errorReply handles CLIENT_ERROR, SERVER_ERROR and ERROR. done says the
// line was one of them.
func (r *replyReader) errorReply(o *op, line []byte, resp *protocol.Response) (done bool, err error) {
	if msg, ok := bytes.CutPrefix(line, []byte("SERVER_ERROR ")); ok {
		if string(msg) == msgTooLarge {
			setStatus(resp, protocol.StatusTooLarge, msgTooLarge)
		} else {
			setStatus(resp, protocol.StatusServerError, message(msg))
		}
		return true, nil
	}
	if msg, ok := bytes.CutPrefix(line, []byte("CLIENT_ERROR ")); ok {
		switch {
		case o.kind == opArith && bytes.Contains(msg, []byte("non-numeric")):
			setStatus(resp, protocol.StatusNonNumeric, msgNonNumeric)
		case o.kind == opStore && (string(msg) == msgBadFormat || string(msg) == "bad data chunk"):
			// memcached answers these before (or instead of) swallowing the
			// data block, so its next reply may be the data read as a
			// command: nothing after this point can be trusted.
			return true, badReply("storage command rejected, stream may be out of step", line)
		default:
			setStatus(resp, protocol.StatusClientError, message(msg))
		}
		return true, nil
	}
	if string(line) == "ERROR" {
		if o.kind == opStats || o.kind == opVerbosity {
			// Legitimate for an unknown stats group or bad verbosity args.
			setStatus(resp, protocol.StatusClientError, msgUnknownCmd)
			return true, nil
		}
		// We only send commands memcached knows, well formed: ERROR means
		// the stream is out of step or the server lacks meta commands.
		return true, badReply("server answered ERROR", line)
	}
	return false, nil
}

// setStatus records an outcome. In a multi-key get the first error wins,
// matching what one classic get line would have answered.
func setStatus(resp *protocol.Response, s protocol.Status, msg string) {
	if resp.Status != protocol.StatusOK {
		return
	}
	resp.Status, resp.Message = s, msg
}

// message turns a server message into a string, without allocating for the
// ones memcached commonly sends.
func message(b []byte) string {
	switch string(b) {
	case msgBadFormat:
		return msgBadFormat
	case "out of memory storing object":
		return "out of memory storing object"
	case "bad data chunk":
		return "bad data chunk"
	case "invalid flag":
		return "invalid flag"
	case "invalid exptime argument":
		return "invalid exptime argument"
	}
	// Keep only printable bytes so the message is safe to echo on a wire.
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= ' ' && c < 0x7f {
			out = append(out, c)
		}
	}
	return string(out)
}

// status maps a one-line meta reply to a status. allowed lists the two-letter
// codes that can answer this command; any other reply means the stream is out
// of step. The codes mean the same for every meta command: HD success, EN/NF
// not found, NS not stored, EX CAS mismatch.
func (r *replyReader) status(line []byte, resp *protocol.Response, allowed string) error {
	if len(line) < 2 || (len(line) > 2 && line[2] != ' ') {
		return badReply("malformed status", line)
	}
	code := line[:2]
	found := false
	for i := 0; i+2 <= len(allowed); i += 2 {
		if allowed[i] == code[0] && allowed[i+1] == code[1] {
			found = true
			break
		}
	}
	if !found {
		return badReply("unexpected reply", line)
	}
	switch string(code) {
	case "EN", "NF":
		resp.Status = protocol.StatusNotFound
	case "NS":
		resp.Status = protocol.StatusNotStored
	case "EX":
		resp.Status = protocol.StatusExists
	}
	return nil
}

func (r *replyReader) readGet(o *op, line []byte, resp *protocol.Response, now time.Time) error {
	if string(line) == "EN" {
		return nil
	}
	rest, ok := bytes.CutPrefix(line, []byte("VA "))
	if !ok {
		return badReply("want VA or EN", line)
	}
	sz, rest := nextToken(rest)
	n, ok := parseUint(sz)
	if !ok || n > 1<<40 {
		return badReply("bad value length", line)
	}
	if n > uint64(r.maxValue) {
		if err := r.skip(int(n)); err != nil {
			return err
		}
		return errValueTooLarge
	}
	var (
		flags    uint64
		cas      uint64
		ttl      int64 = -1
		win      bool
		stale    bool
		won      bool
		fetched  bool
		access   int64 = -1
		tok      []byte
		parseErr bool
	)
	for len(rest) > 0 {
		tok, rest = nextToken(rest)
		if len(tok) == 0 {
			continue
		}
		switch tok[0] {
		case 'f':
			var ok bool
			if flags, ok = parseUint(tok[1:]); !ok || flags > 1<<32-1 {
				parseErr = true
			}
		case 'c':
			var ok bool
			if cas, ok = parseUint(tok[1:]); !ok {
				parseErr = true
			}
		case 't':
			var ok bool
			if ttl, ok = parseInt(tok[1:]); !ok {
				parseErr = true
			}
		case 'h':
			fetched = string(tok) == "h1"
		case 'l':
			var ok bool
			if access, ok = parseInt(tok[1:]); !ok {
				parseErr = true
			}
		case 'W':
			win = true
		case 'X':
			stale = true
		case 'Z':
			won = true
		}
	}
	if parseErr {
		return badReply("bad flag token", line)
	}
	exp := o.exp
	if o.kind == opGet {
		exp = 0
		if ttl >= 0 {
			exp = now.Unix() + ttl
		}
	}
	h, err := r.readHit(resp, int(o.key), int(n), uint32(flags), cas, exp)
	if err != nil {
		return err
	}
	h.Win, h.Stale, h.Won = win, stale, won
	h.Fetched = fetched
	if access >= 0 {
		h.Accessed = now.Unix() - access
	}
	if o.kind == opGat {
		// t came before T: it shows the TTL before this gat.
		h.EarlyTTL, h.EarlyExptime = true, 0
		if ttl >= 0 {
			h.EarlyExptime = now.Unix() + ttl
		}
	}
	return nil
}

// readGets reads the reply to a classic gets line, whose first line is
// line: a VALUE block per key found, in the order the keys were sent, then
// END. Each VALUE names its key; it must be the next key sent from that
// position on, or the stream is out of step. With keys nil the values are
// consumed and dropped.
func (r *replyReader) readGets(o *op, line []byte, resp *protocol.Response, keys [][]byte) error {
	next, end := int(o.key), int(o.key+o.n)
	var callErr error
	for string(line) != "END" {
		rest, ok := bytes.CutPrefix(line, []byte("VALUE "))
		if !ok {
			return badReply("want VALUE or END", line)
		}
		key, rest := nextToken(rest)
		fl, rest := nextToken(rest)
		sz, rest := nextToken(rest)
		cs, rest := nextToken(rest)
		flags, okF := parseUint(fl)
		n, okN := parseUint(sz)
		cas, okC := parseUint(cs)
		if !okF || flags > 1<<32-1 || !okN || n > 1<<40 || !okC || len(rest) > 0 {
			return badReply("bad VALUE line", line)
		}
		idx := -1
		if keys != nil {
			for next < end && !bytes.Equal(keys[next], key) {
				next++
			}
			if next == end {
				return badReply("VALUE for a key not asked for", line)
			}
			idx = next
			next++
		}
		if n > uint64(r.maxValue) {
			if err := r.skip(int(n)); err != nil {
				return err
			}
			callErr = errValueTooLarge
		} else if idx < 0 {
			// Nobody asked for it: check and drop it.
			_, peeked, err := r.readValue(int(n))
			if err != nil {
				return err
			}
			r.release(int(n), peeked)
		} else if _, err := r.readHit(resp, idx, int(n), uint32(flags), cas, 0); err != nil {
			return err
		}
		var err error
		if line, err = r.readLine(); err != nil {
			return err
		}
	}
	return callErr
}

func (r *replyReader) readArith(line []byte, resp *protocol.Response) error {
	rest, ok := bytes.CutPrefix(line, []byte("VA "))
	if !ok {
		return r.status(line, resp, "HDNFNSEX")
	}
	sz, rest := nextToken(rest)
	n, ok := parseUint(sz)
	if !ok || n == 0 || n > 20 {
		return badReply("bad number length", line)
	}
	resp.CAS = flagUint(rest, 'c')
	early, hasT := flagTTL(rest)
	v, peeked, err := r.readValue(int(n))
	if err != nil {
		return err
	}
	num, ok := parseUint(v)
	r.release(int(n), peeked)
	if !ok {
		return badReply("bad number", v)
	}
	resp.Number = num
	if hasT {
		// The item's TTL as the reply's t showed it (before any T the
		// request carried), for a caller that must show the same.
		resp.AppendHit(0, nil, 0, resp.CAS, early)
	}
	return nil
}

// flagTTL reads the t flag of a meta reply as an absolute expiry (0 never).
func flagTTL(flags []byte) (exp int64, ok bool) {
	for len(flags) > 0 {
		var tok []byte
		tok, flags = nextToken(flags)
		if len(tok) > 1 && tok[0] == 't' {
			ttl, ok := parseInt(tok[1:])
			if !ok {
				return 0, false
			}
			if ttl < 0 {
				return 0, true
			}
			return time.Now().Unix() + ttl, true
		}
	}
	return 0, false
}

// readStats reads STAT lines up to END; "stats reset" and "stats detail on"
// answer a single RESET or OK instead.
func (r *replyReader) readStats(line []byte, resp *protocol.Response) error {
	for n := 0; ; n++ {
		switch {
		case string(line) == "END":
			return nil
		case n == 0 && (string(line) == "RESET" || string(line) == "OK"):
			return nil
		}
		if len(resp.Stats) > 1<<16 {
			return badReply("too many stats lines", line)
		}
		body, ok := bytes.CutPrefix(line, []byte("STAT "))
		if !ok {
			// cachedump's ITEM lines and the like: keep them whole.
			body = line
		}
		name, value, _ := bytes.Cut(body, []byte(" "))
		resp.Stats = append(resp.Stats, protocol.Stat{Name: string(name), Value: string(value)})
		var err error
		if line, err = r.readLine(); err != nil {
			return err
		}
	}
}

// nextToken splits off the next space-separated token.
func nextToken(b []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// flagUint returns the numeric token of return flag f in a reply line, or 0.
func flagUint(line []byte, f byte) uint64 {
	for len(line) > 0 {
		var tok []byte
		tok, line = nextToken(line)
		if len(tok) > 1 && tok[0] == f {
			v, _ := parseUint(tok[1:])
			return v
		}
	}
	return 0
}

// parseUint parses a decimal uint64, rejecting empty input, non-digits and
// overflow.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseUint(b)
	if !ok || u > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}
