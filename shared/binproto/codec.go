package binproto

import (
	"bufio"
	"encoding/binary"
	"io"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// memcachedReadBuffer is memcached's per-connection read buffer. memcached
// needs a packet's header, extras and key in it at once; when they cannot fit
// it closes the connection without a reply, and so do we (which also bounds
// what we read before validating a packet).
const memcachedReadBuffer = 16384

// ServerCodec reads binary protocol requests and writes binary replies for
// one connection. It implements server.Codec. It is not safe for concurrent
// use.
//
// Ownership: the codec keeps no reference into the bufio.Reader's buffer
// across calls; keys, stat groups and values are copied into the Request
// (its arena and ValueBuffer).
type ServerCodec struct {
	lim protocol.Limits
	r   *bufio.Reader
	w   *bufio.Writer
	// ref, if set (SetValueRef), sends a value without copying it into w.
	ref func(v []byte)

	hdr [HeaderLen]byte // request header being parsed
	ext [255]byte       // request extras (the extlen field is one byte)
	out [HeaderLen]byte // reply header being written
	num [8]byte         // incr/decr reply body, flags extras
	key []byte          // key scratch, grown up to lim.MaxKeyLen

	// spare is the value buffer of owner's earlier requests. Request.Reset
	// drops Value, so without it every set would allocate; reusing it only
	// for the same Request keeps the ownership rule (a Request's memory is
	// valid until the Request is reused). Dropped while idle.
	owner *protocol.Request
	spare []byte

	// budget, if set, is charged for the value bytes being read; held is
	// what this codec holds of it (given back at the next request).
	budget *protocol.Budget
	held   protocol.Hold
	// noMem is the set turned into a delete because the budget refused
	// its value: WriteResponse answers it "Out of memory".
	noMem *protocol.Request
}

// Value buffers grow in steps that at most double what has arrived; a
// buffer above maxKeptValue is not reused for the next request.
const (
	valueStep    = 64 << 10
	maxKeptValue = 64 << 10
)

// SetValueRef gives the codec a way to send a value without copying it into
// the writer (see server.Codec): a hit's value of at least
// protocol.RefMinReply bytes that does not fit in the writer's free space
// then goes out by reference. nil: every value is copied.
func (c *ServerCodec) SetValueRef(ref func(v []byte)) { c.ref = ref }

// SetBudget makes the codec charge the value bytes it reads to b, shared
// by the connections of a process. A value that does not fit is swallowed
// and answered "Out of memory" (0x82), as memcached answers an item it
// cannot allocate; a set also unlinks the key's old item.
func (c *ServerCodec) SetBudget(b *protocol.Budget) { c.budget = b }

func (c *ServerCodec) release() {
	c.budget.ReleaseHold(&c.held)
}

// NewServerCodec returns a codec enforcing l (zero fields take defaults).
func NewServerCodec(l protocol.Limits) *ServerCodec {
	l.EnsureDefaults()
	return &ServerCodec{lim: l}
}

// Reset attaches the codec to new buffers (nil, nil while the connection idles).
func (c *ServerCodec) Reset(r *bufio.Reader, w *bufio.Writer) {
	c.r, c.w = r, w
	if r == nil {
		c.owner, c.spare, c.noMem = nil, nil, nil
		c.release()
	}
}

// opClass groups opcodes by the lengths memcached accepts for them.
type opClass uint8

const (
	classUnknown  opClass = iota
	classEmpty            // no extras, key or body: noop, version, quit, sasl list
	classFlush            // no key; body == extras; extras 0 or 4
	classStore            // extras 8, key > 0: set, add, replace
	classKey              // extras 0, body == key > 0: get family, delete
	classCounter          // extras 20, key > 0, body == key + 20: incr, decr
	classConcat           // extras 0, key > 0: append, prepend
	classStat             // extras 0
	classSASLAuth         // extras 0, key > 0
	classTouch            // extras 4, key > 0: touch, gat family
)

// opInfo says how memcached treats an opcode: which length rule it checks,
// which command it runs, whether it is quiet and whether the reply echoes the
// key.
func opInfo(op Opcode) (cl opClass, cmd protocol.Command, quiet, withKey bool) {
	switch op {
	case OpGet:
		return classKey, protocol.CmdGet, false, false
	case OpGetQ:
		return classKey, protocol.CmdGet, true, false
	case OpGetK:
		return classKey, protocol.CmdGet, false, true
	case OpGetKQ:
		return classKey, protocol.CmdGet, true, true
	case OpSet:
		return classStore, protocol.CmdSet, false, false
	case OpSetQ:
		return classStore, protocol.CmdSet, true, false
	case OpAdd:
		return classStore, protocol.CmdAdd, false, false
	case OpAddQ:
		return classStore, protocol.CmdAdd, true, false
	case OpReplace:
		return classStore, protocol.CmdReplace, false, false
	case OpReplaceQ:
		return classStore, protocol.CmdReplace, true, false
	case OpAppend:
		return classConcat, protocol.CmdAppend, false, false
	case OpAppendQ:
		return classConcat, protocol.CmdAppend, true, false
	case OpPrepend:
		return classConcat, protocol.CmdPrepend, false, false
	case OpPrependQ:
		return classConcat, protocol.CmdPrepend, true, false
	case OpDelete:
		return classKey, protocol.CmdDelete, false, false
	case OpDeleteQ:
		return classKey, protocol.CmdDelete, true, false
	case OpIncrement:
		return classCounter, protocol.CmdIncr, false, false
	case OpIncrementQ:
		return classCounter, protocol.CmdIncr, true, false
	case OpDecrement:
		return classCounter, protocol.CmdDecr, false, false
	case OpDecrementQ:
		return classCounter, protocol.CmdDecr, true, false
	case OpTouch:
		// A binary touch hit answers the item's flags and CAS, which
		// only a read returns, so it runs as a gat that does not want
		// the value (see ReadRequest).
		return classTouch, protocol.CmdGat, false, false
	case OpGAT:
		return classTouch, protocol.CmdGat, false, false
	case OpGATQ:
		return classTouch, protocol.CmdGat, true, false
	case OpGATK:
		return classTouch, protocol.CmdGat, false, true
	case OpGATKQ:
		return classTouch, protocol.CmdGat, true, true
	case OpFlush:
		return classFlush, protocol.CmdFlushAll, false, false
	case OpFlushQ:
		return classFlush, protocol.CmdFlushAll, true, false
	case OpStat:
		return classStat, protocol.CmdStats, false, false
	case OpNoop:
		return classEmpty, protocol.CmdNoop, false, false
	case OpVersion:
		return classEmpty, protocol.CmdVersion, false, false
	case OpQuit:
		return classEmpty, protocol.CmdQuit, false, false
	case OpQuitQ:
		return classEmpty, protocol.CmdQuit, true, false
	case OpSASLList:
		return classEmpty, protocol.CmdNone, false, false
	case OpSASLAuth, OpSASLStep:
		return classSASLAuth, protocol.CmdNone, false, false
	}
	return classUnknown, protocol.CmdNone, false, false
}

// lengthsOK applies memcached's per-opcode length rules (dispatch_bin_command).
// The caller has already checked key+extras <= body.
func lengthsOK(cl opClass, ext, key, body int) bool {
	switch cl {
	case classEmpty:
		return ext == 0 && key == 0 && body == 0
	case classFlush:
		return key == 0 && body == ext && (ext == 0 || ext == 4)
	case classStore:
		return ext == 8 && key != 0
	case classKey:
		return ext == 0 && key > 0 && body == key
	case classCounter:
		return ext == 20 && key > 0 && body == key+ext
	case classConcat, classSASLAuth:
		return ext == 0 && key > 0
	case classStat:
		return ext == 0
	case classTouch:
		return ext == 4 && key > 0
	}
	return true
}

// ReadRequest resets req and parses the next request packet into it. See
// server.Codec for the meaning of the errors; malformed packets are answered
// here exactly as memcached answers them.
func (c *ServerCodec) ReadRequest(req *protocol.Request) error {
	c.release()
	if req == c.noMem {
		c.noMem = nil
	}
	if req != c.owner {
		c.owner, c.spare = req, nil
	}
	if cap(req.Value) > cap(c.spare) {
		c.spare = req.Value[:0]
	}
	if cap(c.spare) > maxKeptValue {
		// Let a large buffer go with its request: kept, it would pin
		// memory the budget no longer counts.
		c.spare = nil
	}
	req.Reset()
	if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
		return err
	}
	h := ParseHeader(c.hdr[:])
	if h.Magic != MagicRequest {
		// memcached closes silently: the stream is not binary (any more).
		return protocol.ErrClose
	}
	ext, key, body := int(h.ExtLen), int(h.KeyLen), int64(h.BodyLen)
	if HeaderLen+ext+key > memcachedReadBuffer {
		return protocol.ErrClose
	}
	// memcached waits for the extras and key before judging the packet, so
	// a reply never overtakes bytes the client is still sending.
	if _, err := io.ReadFull(c.r, c.ext[:ext]); err != nil {
		return unexpected(err)
	}
	var kb []byte
	if key <= c.lim.MaxKeyLen {
		if c.key == nil {
			// Once per codec, at most the longest key the limits allow.
			c.key = make([]byte, min(c.lim.MaxKeyLen, memcachedReadBuffer))
		}
		kb = c.key[:key]
		if _, err := io.ReadFull(c.r, kb); err != nil {
			return unexpected(err)
		}
	} else if _, err := c.r.Discard(key); err != nil {
		return unexpected(err)
	}
	if int64(key)+int64(ext) > body {
		return c.replyError(h, StatusUnknownCommand, 0, protocol.ErrClose)
	}
	if key > c.lim.MaxKeyLen {
		return c.replyError(h, StatusInvalidArgs, 0, protocol.ErrClose)
	}

	cl, cmd, quiet, withKey := opInfo(h.Opcode)
	if cl == classUnknown {
		// memcached swallows the body length counted from after the key,
		// i.e. extras+key bytes too many; an int-negative length swallows
		// nothing.
		return c.replyError(h, StatusUnknownCommand, int64(int32(h.BodyLen)), protocol.ErrReplied)
	}
	if !lengthsOK(cl, ext, key, int(body)) {
		return c.replyError(h, StatusInvalidArgs, 0, protocol.ErrClose)
	}
	if cmd == protocol.CmdNone { // SASL without SASL support
		// Here memcached swallows exactly the rest of the body (again as
		// a C int).
		return c.replyError(h, StatusUnknownCommand, int64(int32(h.BodyLen-uint32(key))), protocol.ErrReplied)
	}

	req.Command = cmd
	req.Quiet = quiet
	req.Opaque = h.Opaque
	req.Opcode = uint8(h.Opcode)
	req.CAS = h.CAS
	e := c.ext[:ext]
	switch cl {
	case classKey:
		req.AddKey(kb)
		if cmd == protocol.CmdGet {
			req.Want = protocol.WantValue | protocol.WantFlags | protocol.WantCAS
			if withKey {
				req.Want |= protocol.WantKey
			}
		}
	case classTouch:
		req.AddKey(kb)
		req.Exptime = int64(binary.BigEndian.Uint32(e))
		req.HasExptime = true
		req.Want = protocol.WantFlags | protocol.WantCAS
		if h.Opcode != OpTouch {
			req.Want |= protocol.WantValue
		}
		if withKey {
			req.Want |= protocol.WantKey
		}
		// Any body beyond extras and key stays in the stream and is read
		// as the next packet, as memcached does.
	case classCounter:
		req.AddKey(kb)
		req.Delta = binary.BigEndian.Uint64(e[0:8])
		req.Initial = binary.BigEndian.Uint64(e[8:16])
		exp := binary.BigEndian.Uint32(e[16:20])
		if exp != NoVivify {
			req.Vivify = true
			req.Exptime = int64(exp)
			req.HasExptime = true
		}
	case classStore, classConcat:
		req.AddKey(kb)
		vlen := body - int64(key) - int64(ext)
		if cl == classStore {
			req.Flags = binary.BigEndian.Uint32(e[0:4])
			req.Exptime = int64(binary.BigEndian.Uint32(e[4:8]))
			req.HasExptime = true
			if req.CAS != 0 {
				// memcached turns any store with a CAS into a
				// compare-and-swap (NREAD_CAS), add and replace too.
				req.Command = protocol.CmdCas
			}
		}
		if vlen > int64(c.lim.MaxItemSize) {
			// Checked before allocating: the body length is the
			// client's word, not a promise. memcached swallows the
			// value length as a C int: one of 2 GiB or more (a body
			// length near 2^32) swallows nothing, the stream stays in
			// sync and the next bytes are the next packet.
			if sw := int64(int32(uint32(vlen))); sw > 0 {
				if _, err := discard(c.r, sw); err != nil {
					return unexpected(err)
				}
			}
			if h.Opcode == OpSet || h.Opcode == OpSetQ {
				// memcached unlinks the old item so that a failed set
				// never leaves stale data readable; the handler does
				// that as a delete, and WriteResponse answers
				// "Too large." (it recognises a delete carrying a set
				// opcode).
				req.Command = protocol.CmdDelete
				req.CAS = 0
				req.Flags, req.Exptime, req.HasExptime = 0, 0, false
				req.Quiet = false
				return nil
			}
			return c.replyError(h, StatusValueTooLarge, 0, protocol.ErrReplied)
		}
		ok, err := c.readValue(req, int(vlen))
		if err != nil {
			return err
		}
		if !ok {
			c.release()
			if h.Opcode == OpSet || h.Opcode == OpSetQ {
				// As for a too-large set: the handler unlinks the
				// key, WriteResponse answers "Out of memory".
				req.Command = protocol.CmdDelete
				req.CAS = 0
				req.Flags, req.Exptime, req.HasExptime = 0, 0, false
				req.Quiet = false
				c.noMem = req
				return nil
			}
			return c.replyError(h, StatusOutOfMemory, 0, protocol.ErrReplied)
		}
	case classFlush:
		if ext == 4 {
			req.Exptime = int64(binary.BigEndian.Uint32(e))
			req.HasExptime = true
		}
	case classStat:
		if key > 0 {
			req.Args = req.CopyBytes(kb)
		}
		// Like touch, a stat body beyond its key is the next packet.
	}
	return nil
}

// readValue reads a value of n bytes into req.Value, growing the buffer as
// bytes arrive (never by more than what has arrived, or valueStep) and
// charging each growth to the budget first. If the budget refuses, the rest
// of the value is swallowed and ok is false.
func (c *ServerCodec) readValue(req *protocol.Request, n int) (ok bool, err error) {
	v, refused, err := protocol.ReadValue(c.r, c.spare, n, valueStep, c.charge)
	if err != nil {
		req.Value = v
		return false, unexpected(err)
	}
	if refused {
		req.Value = v[:0]
		if _, err := discard(c.r, int64(n-len(v))); err != nil {
			return false, unexpected(err)
		}
		return false, nil
	}
	req.Value = v
	return true, nil
}

// charge takes n bytes from the budget for the value of size bytes being
// read.
func (c *ServerCodec) charge(n, size int) bool {
	return c.budget.Charge(&c.held, n, size)
}

// unexpected turns an EOF inside a packet into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// discard skips n bytes of r without buffering more than r's buffer.
func discard(r *bufio.Reader, n int64) (int64, error) {
	var done int64
	for n > 0 {
		step := n
		const maxStep = 1 << 30 // Discard takes an int
		if step > maxStep {
			step = maxStep
		}
		d, err := r.Discard(int(step))
		done += int64(d)
		n -= int64(d)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// replyError writes an error reply for h with memcached's text, then skips
// swallow bytes (if positive) and returns ret.
func (c *ServerCodec) replyError(h Header, st Status, swallow int64, ret error) error {
	if err := c.writeError(h.Opcode, h.Opaque, st, st.Text()); err != nil {
		return err
	}
	if swallow > 0 {
		if _, err := discard(c.r, swallow); err != nil {
			return unexpected(err)
		}
	}
	return ret
}
