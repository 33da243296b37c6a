package binproto

import (
	"encoding/binary"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// The writing half of ServerCodec: reply headers, error replies and the
// encoding of a protocol.Response as memcached 1.6.18 answers each opcode.

func (c *ServerCodec) writeHeader(op Opcode, opaque uint32, st Status, ext, key int, body int, cas uint64) error {
	putHeader(&c.out, Header{
		Magic:   MagicResponse,
		Opcode:  op,
		KeyLen:  uint16(key),
		ExtLen:  uint8(ext),
		Status:  st,
		BodyLen: uint32(body),
		Opaque:  opaque,
		CAS:     cas,
	})
	_, err := c.w.Write(c.out[:])
	return err
}

func (c *ServerCodec) writeError(op Opcode, opaque uint32, st Status, text string) error {
	if err := c.writeHeader(op, opaque, st, 0, 0, len(text), 0); err != nil {
		return err
	}
	_, err := c.w.WriteString(text)
	return err
}

// errorStatus maps a handler outcome to the status memcached sends for the
// command, as complete_update_bin and friends do.
func errorStatus(cmd protocol.Command, s protocol.Status) Status {
	switch s {
	case protocol.StatusNotFound:
		return StatusKeyNotFound
	case protocol.StatusExists:
		return StatusKeyExists
	case protocol.StatusNotStored:
		// memcached answers a failed add "exists" and a failed replace
		// "not found"; only append/prepend say "not stored".
		switch cmd {
		case protocol.CmdAdd:
			return StatusKeyExists
		case protocol.CmdReplace:
			return StatusKeyNotFound
		}
		return StatusItemNotStored
	case protocol.StatusNonNumeric:
		return StatusNonNumeric
	case protocol.StatusTooLarge:
		// A store fails its allocation: "Too large.". An append whose
		// result would be too large is NOT_STORED in memcached.
		if cmd == protocol.CmdAppend || cmd == protocol.CmdPrepend {
			return StatusItemNotStored
		}
		return StatusValueTooLarge
	case protocol.StatusClientError:
		if cmd == protocol.CmdStats {
			// An unknown stats group is a client error in text
			// ("CLIENT_ERROR bad command line format"); memcached's
			// binary stat answers it "Not found".
			return StatusKeyNotFound
		}
		return StatusInvalidArgs
	}
	return StatusOutOfMemory
}

// WriteResponse encodes resp as the reply to req into the writer (not
// flushed), honouring quiet opcodes.
func (c *ServerCodec) WriteResponse(req *protocol.Request, resp *protocol.Response) error {
	op, opaque := Opcode(req.Opcode), req.Opaque
	switch req.Command {
	case protocol.CmdNoop:
		return c.writeHeader(op, opaque, StatusOK, 0, 0, 0, 0)
	case protocol.CmdQuit:
		if req.Quiet {
			return nil
		}
		return c.writeHeader(op, opaque, StatusOK, 0, 0, 0, 0)
	}
	if req.Command == protocol.CmdDelete && req == c.noMem {
		// A set the value budget refused, turned into a delete.
		c.noMem = nil
		return c.writeError(op, opaque, StatusOutOfMemory, StatusOutOfMemory.Text())
	}
	if req.Command == protocol.CmdDelete && (op == OpSet || op == OpSetQ) {
		// A too-large set turned into a delete by ReadRequest.
		return c.writeError(op, opaque, StatusValueTooLarge, StatusValueTooLarge.Text())
	}
	if req.Command.IsRead() {
		return c.writeRead(req, resp)
	}
	if resp.Status != protocol.StatusOK {
		st := errorStatus(req.Command, resp.Status)
		text := st.Text()
		if st == StatusOutOfMemory && resp.Message != "" {
			// A server error carries the handler's fixed message (say,
			// which backend failed); memcached's own is "Out of memory".
			text = resp.Message
		}
		return c.writeError(op, opaque, st, text)
	}
	switch req.Command {
	case protocol.CmdStats:
		if len(resp.Stats) == 0 && resp.Message != "" && resp.Message != "OK" {
			// A group whose text reply is a free-form buffer ("stats
			// detail dump") goes out in memcached's binary protocol as
			// one stat named "detailed" holding that buffer; a one-word
			// acknowledgement (detail on|off: OK) as the terminator alone.
			const name = "detailed"
			if err := c.writeHeader(op, opaque, StatusOK, 0, len(name), len(name)+len(resp.Message)+2, 0); err != nil {
				return err
			}
			c.w.WriteString(name)
			c.w.WriteString(resp.Message)
			if _, err := c.w.WriteString("\r\n"); err != nil {
				return err
			}
		}
		for _, s := range resp.Stats {
			if err := c.writeHeader(op, opaque, StatusOK, 0, len(s.Name), len(s.Name)+len(s.Value), 0); err != nil {
				return err
			}
			c.w.WriteString(s.Name)
			if _, err := c.w.WriteString(s.Value); err != nil {
				return err
			}
		}
		return c.writeHeader(op, opaque, StatusOK, 0, 0, 0, 0)
	case protocol.CmdVersion:
		if err := c.writeHeader(op, opaque, StatusOK, 0, 0, len(resp.Message), 0); err != nil {
			return err
		}
		_, err := c.w.WriteString(resp.Message)
		return err
	}
	if req.Quiet {
		return nil
	}
	switch req.Command {
	case protocol.CmdIncr, protocol.CmdDecr:
		if err := c.writeHeader(op, opaque, StatusOK, 0, 0, 8, resp.CAS); err != nil {
			return err
		}
		binary.BigEndian.PutUint64(c.num[:], resp.Number)
		_, err := c.w.Write(c.num[:])
		return err
	case protocol.CmdDelete, protocol.CmdFlushAll:
		// memcached reports no CAS for these.
		return c.writeHeader(op, opaque, StatusOK, 0, 0, 0, 0)
	}
	return c.writeHeader(op, opaque, StatusOK, 0, 0, 0, resp.CAS)
}

// writeRead answers get, getk, gat, gatk, touch and their quiet forms.
func (c *ServerCodec) writeRead(req *protocol.Request, resp *protocol.Response) error {
	op, opaque := Opcode(req.Opcode), req.Opaque
	withKey := req.Want&protocol.WantKey != 0
	key := req.Key()
	if resp.Status != protocol.StatusOK && resp.Status != protocol.StatusNotFound {
		st := errorStatus(req.Command, resp.Status)
		text := st.Text()
		if st == StatusOutOfMemory && resp.Message != "" {
			text = resp.Message
		}
		return c.writeError(op, opaque, st, text)
	}
	if resp.Status == protocol.StatusNotFound || len(resp.Hits) == 0 {
		if req.Quiet {
			return nil
		}
		if withKey {
			// getk/gatk misses carry the key instead of "Not found".
			if err := c.writeHeader(op, opaque, StatusKeyNotFound, 0, len(key), len(key), 0); err != nil {
				return err
			}
			_, err := c.w.Write(key)
			return err
		}
		return c.writeError(op, opaque, StatusKeyNotFound, StatusKeyNotFound.Text())
	}
	hit := &resp.Hits[0]
	body := 4
	klen := 0
	if withKey {
		klen = len(key)
		body += klen
	}
	var value []byte
	if req.Want&protocol.WantValue != 0 {
		value = hit.Value
		body += len(value)
	}
	if err := c.writeHeader(op, opaque, StatusOK, 4, klen, body, hit.CAS); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(c.num[:4], hit.Flags)
	c.w.Write(c.num[:4])
	if klen > 0 {
		c.w.Write(key)
	}
	if c.ref != nil && len(value) >= protocol.RefMinReply && len(value) > c.w.Available() {
		c.ref(value) // sent with the header, no copy (the server flushes)
		value = nil
	}
	_, err := c.w.Write(value)
	return err
}
