package textproto

import (
	"bytes"
	"math"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// memcached's reply words for malformed classic commands.
const (
	msgError         = "ERROR"
	msgBadFormat     = "CLIENT_ERROR bad command line format"
	msgBadChunk      = "CLIENT_ERROR bad data chunk"
	msgTooLarge      = "SERVER_ERROR object too large for cache"
	msgNoMemory      = "SERVER_ERROR out of memory storing object"
	msgBadExptime    = "CLIENT_ERROR invalid exptime argument"
	msgBadDelta      = "CLIENT_ERROR invalid numeric delta argument"
	msgNonNumeric    = "CLIENT_ERROR cannot increment or decrement non-numeric value"
	msgDeleteUsage   = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
	msgTooManyKeys   = "SERVER_ERROR out of memory writing get response"
	msgServerUnknown = "SERVER_ERROR unknown error"
)

// parseText parses a classic text command. Token counts are checked the way
// memcached's process_command_ascii does (n counts real tokens, memcached's
// ntokens is n+1), then each command's own checks run in memcached's order,
// because the first failing check decides the reply word.
func (c *ServerCodec) parseText(req *protocol.Request, cmd []byte) error {
	n := c.ntok
	switch string(cmd) {
	case "get", "bget":
		return c.parseGet(req, protocol.CmdGet, false)
	case "gets":
		return c.parseGet(req, protocol.CmdGets, false)
	case "gat":
		return c.parseGet(req, protocol.CmdGat, true)
	case "gats":
		return c.parseGet(req, protocol.CmdGats, true)
	case "set":
		return c.parseStore(req, protocol.CmdSet)
	case "add":
		return c.parseStore(req, protocol.CmdAdd)
	case "replace":
		return c.parseStore(req, protocol.CmdReplace)
	case "append":
		return c.parseStore(req, protocol.CmdAppend)
	case "prepend":
		return c.parseStore(req, protocol.CmdPrepend)
	case "cas":
		return c.parseStore(req, protocol.CmdCas)
	case "incr":
		return c.parseArith(req, protocol.CmdIncr)
	case "decr":
		return c.parseArith(req, protocol.CmdDecr)
	case "touch":
		return c.parseTouch(req)
	case "delete":
		return c.parseDelete(req)
	case "flush_all":
		return c.parseFlushAll(req)
	case "verbosity":
		return c.parseNumberArg(req, n, protocol.CmdVerbosity, msgBadFormat)
	case "cache_memlimit":
		// memcached: "cache_memlimit <MB> [noreply]"; anything else,
		// a number it cannot read included, is ERROR.
		return c.parseNumberArg(req, n, protocol.CmdCacheMemlimit, msgError)
	case "stats":
		req.Command = protocol.CmdStats
		if n > 1 {
			// The group and its arguments, single-spaced.
			t := c.toks[1]
			t.end = c.toks[min(n, maxTokens)-1].end
			req.Args = req.CopyBytes(c.line[t.start:t.end])
			if n > 2 {
				req.Args = collapseSpaces(req.Args)
			}
		}
		return nil
	case "version":
		req.Command = protocol.CmdVersion
		return nil
	case "quit":
		req.Command = protocol.CmdQuit
		return nil
	}
	if c.isHTTP(cmd) {
		// An HTTP request (a browser sent to the cache's port) ends the
		// connection without a reply, so its body (which may spell
		// "set ...") is never read as commands.
		return protocol.ErrClose
	}
	return c.replyError(req, msgError)
}

// isHTTP applies memcached 1.6.18's rule for an unknown command: if its
// last token (the 23rd, when there are more, as memcached keeps 24 token
// slots including a terminator) starts with "HTTP/", the connection is
// closed without a reply. Only commands that reach memcached's final
// "else" branch are checked: not those shorter than two bytes, nor any
// starting with a letter memcached dispatches on first (g s a c i d t),
// nor the other names it knows, which answer ERROR or their own error.
func (c *ServerCodec) isHTTP(cmd []byte) bool {
	if len(cmd) < 2 {
		return false
	}
	switch cmd[0] {
	case 'g', 's', 'a', 'c', 'i', 'd', 't':
		return false
	}
	switch string(cmd) {
	case "replace", "prepend", "bget", "flush_all", "version", "quit",
		"lru_crawler", "watch", "verbosity", "lru", "extstore", "refresh_certs":
		return false
	}
	last := min(c.ntok, memcachedTokens) - 1
	return bytes.HasPrefix(c.tok(last), []byte("HTTP/"))
}

// collapseSpaces rewrites runs of spaces in b (owned by the request) to one.
func collapseSpaces(b []byte) []byte {
	out := b[:0]
	for i, ch := range b {
		if ch == ' ' && i > 0 && b[i-1] == ' ' {
			continue
		}
		out = append(out, ch)
	}
	return out
}

// setNoreply applies memcached's set_noreply_maybe: the last token decides,
// whatever the command's arity, so "set k 0 0 noreply" is a quiet request
// with a bad length.
// parseNumberArg parses "<command> <number> [noreply]" (n tokens) into cmd
// with the number in req.Args; a number memcached cannot read is answered
// with bad, which differs per command.
func (c *ServerCodec) parseNumberArg(req *protocol.Request, n int, cmd protocol.Command, bad string) error {
	if n != 2 && n != 3 {
		return c.replyError(req, msgError)
	}
	c.setNoreply(req)
	if _, ok := safeStrtoul(c.tok(1)); !ok {
		return c.replyError(req, bad)
	}
	req.Command = cmd
	req.Args = req.CopyBytes(c.tok(1))
	return nil
}

func (c *ServerCodec) setNoreply(req *protocol.Request) {
	if c.ntok >= 2 && c.ntok <= maxTokens && string(c.tok(c.ntok-1)) == "noreply" {
		req.Quiet = true
	}
}

// parseGet parses get/gets/gat/gats. The keys are walked on the line itself,
// since a multi-get may hold far more tokens than c.toks.
func (c *ServerCodec) parseGet(req *protocol.Request, cmd protocol.Command, touch bool) error {
	if c.ntok < 2 {
		return c.replyError(req, msgError)
	}
	req.Command = cmd
	req.Want = protocol.WantValue | protocol.WantFlags
	if cmd == protocol.CmdGets || cmd == protocol.CmdGats {
		req.Want |= protocol.WantCAS
	}
	first := 1
	if touch {
		exp, ok := safeStrtol(c.tok(1))
		if !ok {
			return c.replyError(req, msgBadExptime)
		}
		req.Exptime, req.HasExptime = int64(exp), true
		first = 2
	}
	if c.ntok <= first {
		// "gat 10": memcached walks zero keys and answers END.
		return c.replyError(req, "END")
	}
	// Check the whole line first: memcached answers only the error when a
	// key anywhere is too long, and no group of the line may have been
	// sent by then.
	if c.ntok <= maxTokens {
		// Every key is a token span already: check those.
		for _, t := range c.toks[first:c.ntok] {
			if t.end-t.start > c.lim.MaxKeyLen {
				return c.replyError(req, msgBadFormat)
			}
		}
		if c.ntok == first+1 {
			// One key: nothing to group or deduplicate.
			req.AddKey(c.tok(first))
			return nil
		}
	}
	line := c.line[c.toks[first].start:]
	n := c.ntok - first
	if c.ntok > maxTokens {
		n = 0
		for i := 0; i < len(line); {
			s := i
			for i < len(line) && line[i] != ' ' {
				i++
			}
			if i-s > c.lim.MaxKeyLen {
				return c.replyError(req, msgBadFormat)
			}
			n++
			for i < len(line) && line[i] == ' ' {
				i++
			}
		}
	}
	if n > c.lim.MaxKeys {
		return c.replyError(req, msgTooManyKeys)
	}
	c.get = getState{line: line, owned: c.lineOwned, cmd: cmd, want: req.Want, exp: req.Exptime, tch: touch, left: n}
	c.nextGroup(req)
	return nil
}

// parseStore parses set/add/replace/append/prepend/cas and reads the data
// block, following process_update_command: noreply, key length, the three
// numbers (all or nothing), the cas unique, the length's range, the size
// limit. Only the size limit swallows the block: after any earlier error
// memcached reads the block as the next command line, and so do we.
func (c *ServerCodec) parseStore(req *protocol.Request, cmd protocol.Command) error {
	n, want := c.ntok, 5
	if cmd == protocol.CmdCas {
		want = 6
	}
	if n != want && n != want+1 {
		return c.replyError(req, msgError)
	}
	c.setNoreply(req)
	key := c.tok(1)
	if len(key) > c.lim.MaxKeyLen {
		return c.replyError(req, msgBadFormat)
	}
	flags, ok1 := safeStrtoul(c.tok(2))
	exp, ok2 := safeStrtol(c.tok(3))
	vlen, ok3 := safeStrtol(c.tok(4))
	if !ok1 || !ok2 || !ok3 {
		return c.replyError(req, msgBadFormat)
	}
	if cmd == protocol.CmdCas {
		cas, ok := safeStrtoull(c.tok(5))
		if !ok {
			return c.replyError(req, msgBadFormat)
		}
		req.CAS = cas
	}
	if vlen < 0 || vlen > math.MaxInt32-2 {
		return c.replyError(req, msgBadFormat)
	}
	req.AddKey(key) // before any read: key points into the read buffer
	if int(vlen) > c.lim.MaxItemSize {
		if err := c.swallow(int64(vlen) + 2); err != nil {
			return err
		}
		if cmd == protocol.CmdSet {
			return c.tooLarge(req)
		}
		return c.replyError(req, msgTooLarge)
	}
	req.Command = cmd
	req.Flags = flags
	req.Exptime, req.HasExptime = int64(exp), true
	bad, err := c.readData(req, int(vlen))
	if err != nil {
		return err
	}
	if bad {
		return c.replyError(req, msgBadChunk)
	}
	return nil
}

// tooLarge turns a set whose block was too large (and swallowed) into a
// delete of its key, answered "SERVER_ERROR object too large for cache"
// whatever the delete finds. memcached unlinks the old item in this case
// so that a failed set never leaves the previous value readable; the
// codec cannot store the block, but the handler can drop the old item.
// req.Keys and req.Quiet are already set.
func (c *ServerCodec) tooLarge(req *protocol.Request) error {
	req.Command = protocol.CmdDelete
	req.Opcode = opTooLarge
	req.Value = req.Value[:0]
	return nil
}

// parseArith parses incr/decr.
func (c *ServerCodec) parseArith(req *protocol.Request, cmd protocol.Command) error {
	if c.ntok != 3 && c.ntok != 4 {
		return c.replyError(req, msgError)
	}
	c.setNoreply(req)
	key := c.tok(1)
	if len(key) > c.lim.MaxKeyLen {
		return c.replyError(req, msgBadFormat)
	}
	delta, ok := safeStrtoull(c.tok(2))
	if !ok {
		return c.replyError(req, msgBadDelta)
	}
	req.Command = cmd
	req.AddKey(key)
	req.Delta = delta
	return nil
}

// parseTouch parses touch.
func (c *ServerCodec) parseTouch(req *protocol.Request) error {
	if c.ntok != 3 && c.ntok != 4 {
		return c.replyError(req, msgError)
	}
	c.setNoreply(req)
	key := c.tok(1)
	if len(key) > c.lim.MaxKeyLen {
		return c.replyError(req, msgBadFormat)
	}
	exp, ok := safeStrtol(c.tok(2))
	if !ok {
		return c.replyError(req, msgBadExptime)
	}
	req.Command = protocol.CmdTouch
	req.AddKey(key)
	req.Exptime, req.HasExptime = int64(exp), true
	return nil
}

// parseDelete parses delete, including the legacy "delete <key> 0".
func (c *ServerCodec) parseDelete(req *protocol.Request) error {
	n := c.ntok
	if n < 2 || n > 4 {
		return c.replyError(req, msgError)
	}
	if n > 2 {
		holdIsZero := string(c.tok(2)) == "0"
		c.setNoreply(req)
		valid := (n == 3 && (holdIsZero || req.Quiet)) || (n == 4 && holdIsZero && req.Quiet)
		if !valid {
			return c.replyError(req, msgDeleteUsage)
		}
	}
	key := c.tok(1)
	if len(key) > c.lim.MaxKeyLen {
		return c.replyError(req, msgBadFormat)
	}
	req.Command = protocol.CmdDelete
	req.AddKey(key)
	return nil
}

// parseFlushAll parses flush_all [delay] [noreply]. The delay goes to
// Request.Exptime as sent (after memcached's int32 truncation); memcached
// treats a delay <= 0 as "now", as protocol.AbsExpiry does.
func (c *ServerCodec) parseFlushAll(req *protocol.Request) error {
	n := c.ntok
	if n < 1 || n > 3 {
		return c.replyError(req, msgError)
	}
	c.setNoreply(req)
	bare := 1
	if req.Quiet {
		bare = 2
	}
	if n != bare {
		exp, ok := safeStrtol(c.tok(1))
		if !ok {
			return c.replyError(req, msgBadExptime)
		}
		req.Exptime = int64(exp)
	}
	req.Command = protocol.CmdFlushAll
	req.HasExptime = true
	return nil
}
