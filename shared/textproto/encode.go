package textproto

import (
	"strconv"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// WriteResponse encodes resp as the reply to req into the writer (not
// flushed). It never allocates on the get path: headers are built in a
// reused scratch buffer and values are copied straight into the writer,
// or, in a reply too large for the writer's free space, handed to the
// server by reference (SetValueRef, refWorthy) and not copied at all.
func (c *ServerCodec) WriteResponse(req *protocol.Request, resp *protocol.Response) error {
	if req.Opcode == opTooLarge {
		if !req.Quiet {
			c.writeLine(msgTooLarge)
		}
	} else if req.Opcode == opNoMemory {
		if !req.Quiet {
			c.writeLine(msgNoMemory)
		}
	} else if req.Opcode != opText {
		c.writeMeta(req, resp)
	} else if !req.Quiet {
		// noreply: memcached suppresses every reply of the command, its
		// errors included.
		c.writeText(req, resp)
	}
	c.byRef = false
	// bufio.Writer's error is sticky: report it once the writes are done.
	_, err := c.w.Write(nil)
	return err
}

func (c *ServerCodec) writeLine(s string) {
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
}

// writeStatus writes the reply line for a status that is not the
// command's success: the same word for every classic command.
func (c *ServerCodec) writeStatus(resp *protocol.Response) {
	switch resp.Status {
	case protocol.StatusNotStored:
		c.writeLine("NOT_STORED")
	case protocol.StatusExists:
		c.writeLine("EXISTS")
	case protocol.StatusNotFound:
		c.writeLine("NOT_FOUND")
	case protocol.StatusNonNumeric:
		c.writeLine(msgNonNumeric)
	case protocol.StatusTooLarge:
		c.writeLine(msgTooLarge)
	default:
		c.writeError(resp)
	}
}

// writeError writes CLIENT_ERROR/SERVER_ERROR with the handler's message.
func (c *ServerCodec) writeError(resp *protocol.Response) {
	switch {
	case resp.Status == protocol.StatusClientError:
		c.w.WriteString("CLIENT_ERROR ")
	case resp.Message == "":
		c.writeLine(msgServerUnknown)
		return
	default:
		c.w.WriteString("SERVER_ERROR ")
	}
	c.writeLine(resp.Message)
}

func (c *ServerCodec) writeText(req *protocol.Request, resp *protocol.Response) {
	st := resp.Status
	switch req.Command {
	case protocol.CmdGet, protocol.CmdGets, protocol.CmdGat, protocol.CmdGats:
		gi := c.popGroup(req)
		if st != protocol.StatusOK && st != protocol.StatusNotFound {
			// memcached drops the stacked hits and sends only the error.
			// Earlier groups of a long line are sent already; the error
			// ends the reply all the same.
			c.writeStatus(resp)
			if gi != nil && !gi.last {
				c.dropGet()
			}
			return
		}
		c.byRef = c.refWorthy(resp.ValueBytes())
		if gi != nil {
			c.writeGroup(req, resp, gi)
			return
		}
		withCAS := req.Want&protocol.WantCAS != 0
		for i := range resp.Hits {
			c.writeValue(req, &resp.Hits[i], withCAS)
		}
		c.w.WriteString("END\r\n")
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace,
		protocol.CmdAppend, protocol.CmdPrepend, protocol.CmdCas:
		c.success(resp, "STORED")
	case protocol.CmdDelete:
		c.success(resp, "DELETED")
	case protocol.CmdTouch:
		c.success(resp, "TOUCHED")
	case protocol.CmdIncr, protocol.CmdDecr:
		if st != protocol.StatusOK {
			c.writeStatus(resp)
			return
		}
		h := strconv.AppendUint(c.hdr[:0], resp.Number, 10)
		h = append(h, "\r\n"...)
		c.hdr = h
		c.w.Write(h)
	case protocol.CmdFlushAll, protocol.CmdVerbosity:
		c.success(resp, "OK")
	case protocol.CmdCacheMemlimit:
		if st == protocol.StatusNotStored {
			c.writeLine(resp.Message) // MEMLIMIT_TOO_SMALL ... (CheckMemlimit)
			return
		}
		c.success(resp, "OK")
	case protocol.CmdVersion:
		if st != protocol.StatusOK {
			c.writeStatus(resp)
			return
		}
		c.w.WriteString("VERSION ")
		c.writeLine(resp.Message)
	case protocol.CmdStats:
		c.writeStats(req, resp)
	case protocol.CmdQuit:
		// memcached closes without a word.
	default:
		c.writeStatus(resp)
	}
}

func (c *ServerCodec) success(resp *protocol.Response, word string) {
	if resp.Status == protocol.StatusOK {
		c.writeLine(word)
		return
	}
	c.writeStatus(resp)
}

// writeValue writes one "VALUE <key> <flags> <bytes> [<cas>]" item.
func (c *ServerCodec) writeValue(req *protocol.Request, h *protocol.Hit, withCAS bool) {
	var key []byte
	if h.Index >= 0 && h.Index < len(req.Keys) {
		key = req.Keys[h.Index]
	}
	b := append(c.hdr[:0], "VALUE "...)
	b = append(b, key...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.Flags), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(h.Value)), 10)
	if withCAS {
		b = append(b, ' ')
		b = strconv.AppendUint(b, h.CAS, 10)
	}
	b = append(b, "\r\n"...)
	c.hdr = b
	c.w.Write(b)
	c.writeData(h.Value)
}

// refWorthy reports whether a reply of n value bytes is sent by reference
// (see protocol.RefMinReply): it does not fit in what the writer has free,
// so the writer would be written during it anyway.
func (c *ServerCodec) refWorthy(n int) bool {
	return c.ref != nil && n >= protocol.RefMinReply && n > c.w.Available()
}

// writeData writes a value and its "\r\n": by reference when the reply
// is written so (byRef) and the value is large enough to be worth a writev
// segment of its own, else copied into the writer.
func (c *ServerCodec) writeData(v []byte) {
	if c.byRef && len(v) >= protocol.RefMinValue {
		c.ref(v)
	} else {
		c.w.Write(v)
	}
	c.w.WriteString("\r\n")
}

// writeStats writes STAT lines and END. A handler answers StatusNotFound
// for a group it does not know, which memcached answers "ERROR"; "stats
// reset" is answered "RESET".
func (c *ServerCodec) writeStats(req *protocol.Request, resp *protocol.Response) {
	switch resp.Status {
	case protocol.StatusOK:
	case protocol.StatusNotFound:
		c.writeLine(msgError)
		return
	default:
		c.writeStatus(resp)
		return
	}
	if string(req.Args) == "reset" && len(resp.Stats) == 0 {
		c.writeLine("RESET")
		return
	}
	if resp.Message != "" && len(resp.Stats) == 0 {
		// A group answered with one word ("stats detail on": OK).
		c.writeLine(resp.Message)
		return
	}
	for _, s := range resp.Stats {
		c.w.WriteString("STAT ")
		c.w.WriteString(s.Name)
		c.w.WriteString(" ")
		c.writeLine(s.Value)
	}
	c.w.WriteString("END\r\n")
}

// writeMeta encodes a meta reply. Which outcome q hides differs by command
// (memcached 1.6.18): mg hides EN, ms and md hide HD, ma hides HD and VA;
// errors are never hidden.
func (c *ServerCodec) writeMeta(req *protocol.Request, resp *protocol.Response) {
	st := resp.Status
	switch req.Opcode {
	case opMetaMN:
		c.w.WriteString("MN\r\n")
	case opMetaMG:
		if st != protocol.StatusOK && st != protocol.StatusNotFound {
			c.writeMetaError(resp)
			return
		}
		if len(resp.Hits) == 0 {
			if !req.Quiet {
				c.writeMetaMiss(req, "EN")
			}
			return
		}
		c.writeMG(req, &resp.Hits[0])
	case opMetaMS:
		var word string
		switch st {
		case protocol.StatusOK:
			if req.Quiet {
				return
			}
			word = "HD"
		case protocol.StatusNotStored:
			word = "NS"
		case protocol.StatusExists:
			word = "EX"
		case protocol.StatusNotFound:
			word = "NF"
		default:
			c.writeMetaError(resp)
			return
		}
		b := append(c.hdr[:0], word...)
		b = c.appendReturnFlags(b, req, printMS, item{cas: resp.CAS})
		c.finish(b)
	case opMetaMD:
		var word string
		switch st {
		case protocol.StatusOK:
			if req.Quiet {
				return
			}
			word = "HD"
		case protocol.StatusNotFound:
			word = "NF"
		case protocol.StatusExists:
			word = "EX"
		default:
			c.writeMetaError(resp)
			return
		}
		c.writeMetaMiss(req, word)
	case opMetaMA:
		c.writeMA(req, resp)
	case opMetaME:
		c.writeME(req, resp)
	}
}

// writeMetaError writes an error outcome of a meta command.
func (c *ServerCodec) writeMetaError(resp *protocol.Response) {
	c.writeStatus(resp)
}

// writeMetaMiss writes a status word followed by the O and k flags, which
// is all memcached echoes when there is no item.
func (c *ServerCodec) writeMetaMiss(req *protocol.Request, word string) {
	b := append(c.hdr[:0], word...)
	b = c.appendReturnFlags(b, req, printMiss, item{})
	c.finish(b)
}

func (c *ServerCodec) finish(b []byte) {
	b = append(b, "\r\n"...)
	c.hdr = b
	c.w.Write(b)
}

// writeMG writes an mg hit: "VA <len> <flags>" and the value, or "HD <flags>".
func (c *ServerCodec) writeMG(req *protocol.Request, h *protocol.Hit) {
	b := c.hdr[:0]
	withValue := req.Want&protocol.WantValue != 0
	if withValue {
		b = append(b, "VA "...)
		b = strconv.AppendInt(b, int64(len(h.Value)), 10)
	} else {
		b = append(b, "HD"...)
	}
	b = c.appendReturnFlags(b, req, printMG, hitItem(h))
	// memcached's order: Z (a win token was already sent), X (stale),
	// W (this client won the right to recache).
	if h.Won {
		b = append(b, " Z"...)
	}
	if h.Stale {
		b = append(b, " X"...)
	}
	if h.Win {
		b = append(b, " W"...)
	}
	c.finish(b)
	if withValue {
		c.byRef = c.refWorthy(len(h.Value))
		c.writeData(h.Value)
	}
}

// writeMA writes an ma reply. The remaining TTL (t) comes from the first
// hit's Exptime when the handler supplied one, else it reads -1 (no expiry).
func (c *ServerCodec) writeMA(req *protocol.Request, resp *protocol.Response) {
	switch resp.Status {
	case protocol.StatusOK:
	case protocol.StatusNotFound:
		c.writeMetaMiss(req, "NF")
		return
	case protocol.StatusExists:
		c.writeMetaMiss(req, "EX")
		return
	case protocol.StatusNotStored:
		c.writeMetaMiss(req, "NS")
		return
	default:
		c.writeMetaError(resp)
		return
	}
	if req.Quiet {
		return
	}
	it := item{cas: resp.CAS}
	if len(resp.Hits) > 0 {
		it.exptime = resp.Hits[0].Exptime
		if resp.Hits[0].EarlyTTL {
			it.exptime = resp.Hits[0].EarlyExptime
		}
	}
	b := c.hdr[:0]
	withValue := req.Want&protocol.WantValue != 0
	var digits [20]byte
	num := strconv.AppendUint(digits[:0], resp.Number, 10)
	if withValue {
		b = append(b, "VA "...)
		b = strconv.AppendInt(b, int64(len(num)), 10)
	} else {
		b = append(b, "HD"...)
	}
	b = c.appendReturnFlags(b, req, printMA, it)
	if withValue {
		b = append(b, "\r\n"...)
		b = append(b, num...)
	}
	c.finish(b)
}

// writeME writes the reply to me. memcached prints internals the model
// does not have; la, fetch and cls are fixed and size is the value length.
// exp mirrors 1.6.18, which prints the remaining TTL negated (-1: never).
func (c *ServerCodec) writeME(req *protocol.Request, resp *protocol.Response) {
	if resp.Status != protocol.StatusOK && resp.Status != protocol.StatusNotFound {
		c.writeMetaError(resp)
		return
	}
	if len(resp.Hits) == 0 {
		c.w.WriteString("EN\r\n")
		return
	}
	h := &resp.Hits[0]
	b := append(c.hdr[:0], "ME "...)
	if req.Meta.Base64 {
		b = appendKey(b, req.Key(), true)
		b = b[:len(b)-2] // me prints no " b" marker
	} else {
		b = append(b, req.Key()...)
	}
	b = append(b, " exp="...)
	if h.Exptime == 0 {
		b = append(b, "-1"...)
	} else {
		b = strconv.AppendInt(b, -protocol.RemainingTTL(h.Exptime, c.now()), 10)
	}
	b = append(b, " la=0 cas="...)
	b = strconv.AppendUint(b, h.CAS, 10)
	b = append(b, " fetch=no cls=1 size="...)
	b = strconv.AppendInt(b, int64(len(h.Value)), 10)
	c.finish(b)
}

// item is what a meta reply may print about the item a command touched.
type item struct {
	has     bool // there is an item (s, f are printed only then)
	size    int
	flags   uint32
	cas     uint64
	exptime int64 // absolute, 0 never, as t shows it
	fetched bool  // h
	access  int64 // l: unix second of the last access, 0 unknown
}

func hitItem(h *protocol.Hit) item {
	it := item{has: true, size: len(h.Value), flags: h.Flags, cas: h.CAS, exptime: h.Exptime,
		fetched: h.Fetched, access: h.Accessed}
	if h.EarlyTTL {
		it.exptime = h.EarlyExptime
	}
	return it
}

// Return flags each meta command prints (bit rfX set), as memcached does.
const (
	printMG   = 1<<rfS | 1<<rfT | 1<<rfC | 1<<rfF | 1<<rfL | 1<<rfH | 1<<rfO | 1<<rfK
	printMS   = 1<<rfO | 1<<rfK | 1<<rfC
	printMA   = 1<<rfC | 1<<rfT | 1<<rfO | 1<<rfK
	printMiss = 1<<rfO | 1<<rfK
)

// appendReturnFlags appends, in the order the client sent them, those of
// the requested return flags that are in mask.
func (c *ServerCodec) appendReturnFlags(b []byte, req *protocol.Request, mask uint16, it item) []byte {
	for order := req.Meta.Flags; order != 0; order >>= 4 {
		code := order & 0xf
		if mask&(1<<code) == 0 {
			continue
		}
		switch code {
		case rfS:
			if it.has {
				b = append(b, " s"...)
				b = strconv.AppendInt(b, int64(it.size), 10)
			}
		case rfT:
			b = append(b, " t"...)
			b = strconv.AppendInt(b, protocol.RemainingTTL(it.exptime, c.now()), 10)
		case rfC:
			b = append(b, " c"...)
			b = strconv.AppendUint(b, it.cas, 10)
		case rfF:
			if it.has {
				b = append(b, " f"...)
				b = strconv.AppendUint(b, uint64(it.flags), 10)
			}
		case rfL:
			b = append(b, " l"...)
			var la int64
			if it.access != 0 {
				la = max(c.now().Unix()-it.access, 0)
			}
			b = strconv.AppendInt(b, la, 10)
		case rfH:
			if it.fetched {
				b = append(b, " h1"...)
			} else {
				b = append(b, " h0"...)
			}
		case rfO:
			b = append(b, ' ')
			b = append(b, req.Meta.Opaque...)
		case rfK:
			b = append(b, " k"...)
			b = appendKey(b, req.Key(), req.Meta.Base64)
		}
	}
	return b
}
