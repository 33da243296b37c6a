package textproto

import (
	"math"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// memcached 1.6.18's meta error replies.
const (
	msgDupFlag        = "CLIENT_ERROR duplicate flag"
	msgInvalidFlag    = "CLIENT_ERROR invalid flag"
	msgBadToken       = "CLIENT_ERROR bad token in command line format"
	msgBadKey64       = "CLIENT_ERROR error decoding key"
	msgMLength        = "CLIENT_ERROR incorrect length for M token"
	msgBadInitial     = "CLIENT_ERROR invalid numeric initial value"
	msgBadDeltaValue  = "CLIENT_ERROR invalid numeric delta value"
	msgOpaqueTooLong  = "CLIENT_ERROR opaque token too long"
	msgMgTooManyFlags = "CLIENT_ERROR options flags are too long" // mg's wording
	msgTooManyFlags   = "CLIENT_ERROR options flags too long"     // ms, md, ma
	msgInvalidOrDup   = "CLIENT_ERROR invalid or duplicate flag"  // md, ma: any flag error
	msgMsMode         = "CLIENT_ERROR invalid mode for ms M token"
	msgMaMode         = "CLIENT_ERROR invalid mode for ma M token"
)

// memcached limits: a meta line may have at most 20 tokens counting its
// terminal token (so 17 flags after the command and key, 16 for ms), and
// an opaque token, its 'O' included, at most 32 bytes.
const (
	maxMetaTokens = 20 - 1
	maxOpaqueLen  = 32
)

// Return flags are echoed in the order the client sent them. Request.Meta.
// Flags records that order as a sequence of 4-bit codes, lowest nibble
// first; every flag can appear once (memcached rejects duplicates) and
// there are eight of them, so 32 bits always suffice.
const (
	rfS = 1 + iota // s: value size
	rfT            // t: remaining TTL
	rfC            // c: CAS
	rfF            // f: client flags
	rfL            // l: seconds since last access (answered 0)
	rfH            // h: hit before (answered 0)
	rfO            // O: opaque token
	rfK            // k: key
)

func returnFlagCode(f byte) uint32 {
	switch f {
	case 's':
		return rfS
	case 't':
		return rfT
	case 'c':
		return rfC
	case 'f':
		return rfF
	case 'l':
		return rfL
	case 'h':
		return rfH
	case 'O':
		return rfO
	case 'k':
		return rfK
	}
	return 0
}

// metaFlags is what the shared flag pass (memcached's _meta_flag_preparse)
// learns from a meta command's flag tokens.
type metaFlags struct {
	order    uint32 // return flags, see rfS
	norder   uint
	want     protocol.Want
	quiet    bool
	b64      bool
	hasT     bool
	exptime  int32 // T
	vivify   bool  // N
	vivExp   int32 // N's TTL
	flags    uint32
	hasCAS   bool
	cas      uint64
	mode     byte
	delta    uint64
	hasDelta bool
	initial  uint64
	invalid  bool // I
	opaque   []byte
	recache  int32 // R
	hasR     bool
	noBump   bool  // u
	classic  bool  // G (Limits.PeerFlags only)
	peerAcc  int64 // A (Limits.PeerFlags only)
	// Token positions of t, T and N (0: absent), because memcached
	// applies T and N and prints t in flag order.
	posTTL, posT, posN int
}

// preparse runs memcached's flag pass over tokens [first, ntok). It returns
// the error reply or "". As in memcached, a duplicate or unknown flag stops
// the pass at once, while a bad value only records its message and the
// pass goes on (so a later bad value's message wins). A key marked b is
// decoded into c.kbuf; the caller takes it from there.
func (c *ServerCodec) preparse(first int, mf *metaFlags) (errMsg string) {
	var seen [128]bool
	c.kbuf = c.kbuf[:0]
	for i := first; i < c.ntok; i++ {
		t := c.tok(i)
		o := t[0]
		if o >= 127 || seen[o] {
			return msgDupFlag
		}
		seen[o] = true
		val := t[1:]
		switch o {
		case 'b':
			var ok bool
			c.kbuf, ok = decodeKey(c.kbuf[:0], c.tok(1))
			if !ok {
				errMsg = msgBadKey64
			} else if len(c.kbuf) > c.lim.MaxKeyLen {
				errMsg = msgBadFormat // only with a MaxBase64KeyLen allowance
			}
			mf.b64 = true
		case 'N':
			v, ok := safeStrtol(val)
			if !ok {
				errMsg = msgBadToken
			}
			mf.vivify, mf.vivExp, mf.posN = true, v, i
		case 'T':
			v, ok := safeStrtol(val)
			if !ok {
				errMsg = msgBadToken
			}
			mf.hasT, mf.exptime, mf.posT = true, v, i
		case 'R':
			v, ok := safeStrtol(val)
			if !ok {
				errMsg = msgBadToken
			}
			mf.hasR, mf.recache = true, v
		case 'O':
			mf.opaque = t
		case 'u':
			mf.noBump = true
		case 'G':
			if !c.lim.PeerFlags {
				return msgInvalidFlag
			}
			mf.classic = true
		case 'A':
			if !c.lim.PeerFlags {
				return msgInvalidFlag
			}
			v, ok := safeStrtoull(val)
			if !ok || v == 0 || v > 1<<62 {
				errMsg = msgBadToken
			}
			mf.peerAcc = int64(v)
		case 'P', 'L', 'h', 'l':
			// P, L: proxy hints. Accepted and ignored.
		case 't':
			mf.posTTL = i
		case 'k', 's', 'c', 'f':
		case 'v':
			mf.want |= protocol.WantValue
		case 'q':
			mf.quiet = true
		case 'F':
			v, ok := safeStrtoul(val)
			if !ok {
				if errMsg == "" {
					errMsg = msgBadFormat // F sets no message of its own
				}
			}
			mf.flags = v
		case 'C':
			v, ok := safeStrtoull(val)
			if !ok {
				errMsg = msgBadToken
			}
			mf.hasCAS, mf.cas = true, v
		case 'M':
			if len(t) != 2 {
				errMsg = msgMLength
			} else {
				mf.mode = t[1]
			}
		case 'J':
			v, ok := safeStrtoull(val)
			if !ok {
				errMsg = msgBadInitial
			}
			mf.initial = v
		case 'D':
			v, ok := safeStrtoull(val)
			if !ok {
				errMsg = msgBadDeltaValue
			}
			mf.delta, mf.hasDelta = v, true
		case 'I':
			mf.invalid = true
		default:
			return msgInvalidFlag
		}
		if code := returnFlagCode(o); code != 0 {
			mf.order |= code << (4 * mf.norder)
			mf.norder++
			switch o {
			case 's':
				mf.want |= protocol.WantSize
			case 't':
				mf.want |= protocol.WantTTL
			case 'c':
				mf.want |= protocol.WantCAS
			case 'f':
				mf.want |= protocol.WantFlags
			case 'k':
				mf.want |= protocol.WantKey
			case 'h':
				mf.want |= protocol.WantFetched
			case 'l':
				mf.want |= protocol.WantAccess
			}
		}
	}
	return errMsg
}

// metaKey returns the request key: the decoded one under b, else token 1.
func (c *ServerCodec) metaKey(mf *metaFlags) []byte {
	if mf.b64 {
		return c.kbuf
	}
	return c.tok(1)
}

// applyMeta copies what every meta command shares into req.
func (c *ServerCodec) applyMeta(req *protocol.Request, mf *metaFlags) {
	req.AddKey(c.metaKey(mf))
	req.Want = mf.want
	req.Quiet = mf.quiet
	req.Meta.Base64 = mf.b64
	req.Meta.Flags = mf.order
	req.Meta.Mode = mf.mode
	m := &req.Mods
	m.Meta = true
	m.SetTTL = mf.hasT
	m.VivifyExptime = int64(mf.vivExp)
	m.Recache, m.HasRecache = int64(mf.recache), mf.hasR
	m.NoBump = mf.noBump
	m.ClassicRead = mf.classic
	m.PeerAccess = mf.peerAcc
	m.TTLBeforeSet = mf.posTTL != 0 && mf.posTTL < mf.posT
	m.TTLBeforeVivify = mf.posTTL != 0 && mf.posTTL < mf.posN
	m.VivifyAfterSet = mf.posN > mf.posT
	if mf.opaque != nil {
		req.Meta.Opaque = req.CopyBytes(mf.opaque)
	}
}

// parseMeta parses mg, ms, md, ma, mn and me. Meta errors are always
// answered, q or not (memcached's out_errstring).
func (c *ServerCodec) parseMeta(req *protocol.Request, sub byte) error {
	switch sub {
	case 'g':
		req.Opcode = opMetaMG
		return c.parseMG(req)
	case 's':
		req.Opcode = opMetaMS
		return c.parseMS(req)
	case 'd':
		req.Opcode = opMetaMD
		return c.parseMD(req)
	case 'a':
		req.Opcode = opMetaMA
		return c.parseMA(req)
	case 'n':
		req.Opcode = opMetaMN
		req.Command = protocol.CmdNoop
		return nil
	case 'e':
		req.Opcode = opMetaME
		return c.parseME(req)
	}
	return c.replyError(req, msgError)
}

// keyTooLong applies the key limit to a meta command's key token: the
// token itself, before any base64 decoding, as memcached does; a longer
// token passes only under Limits.MaxBase64KeyLen with a b flag on the line.
func (c *ServerCodec) keyTooLong() bool {
	n := len(c.tok(1))
	if n <= c.lim.MaxKeyLen {
		return false
	}
	if n > c.lim.MaxBase64KeyLen {
		return true
	}
	for i := 2; i < c.ntok; i++ {
		if t := c.tok(i); len(t) == 1 && t[0] == 'b' {
			return false
		}
	}
	return true
}

// metaPrologue runs the checks mg, md and ma share before the flag pass:
// a key must be present, no longer than the limit (checked before base64
// decoding, as memcached does), and the line not too long.
func (c *ServerCodec) metaPrologue(req *protocol.Request, tooMany string) (bool, error) {
	if c.ntok < 2 {
		return false, c.replyError(req, msgError)
	}
	if c.keyTooLong() {
		return false, c.replyError(req, msgBadFormat)
	}
	if c.ntok > maxMetaTokens {
		return false, c.replyError(req, tooMany)
	}
	return true, nil
}

// parseMG parses mg: a get, a gat with T, a vivifying get with N.
func (c *ServerCodec) parseMG(req *protocol.Request) error {
	if ok, err := c.metaPrologue(req, msgMgTooManyFlags); !ok {
		return err
	}
	var mf metaFlags
	if msg := c.preparse(2, &mf); msg != "" {
		return c.replyError(req, msg)
	}
	if len(mf.opaque) > maxOpaqueLen {
		return c.replyError(req, msgOpaqueTooLong)
	}
	c.applyMeta(req, &mf)
	req.Command = protocol.CmdGet
	switch {
	case mf.hasT:
		// memcached applies N's TTL to an item it creates and T's to any
		// hit, in flag order: Exptime carries T, Mods.VivifyExptime N and
		// Mods the order (package item applies them).
		req.Command = protocol.CmdGat
		req.Exptime, req.HasExptime = int64(mf.exptime), true
	case mf.vivify:
		req.Exptime = int64(mf.vivExp)
	}
	req.Vivify = mf.vivify
	return nil
}

// parseMS parses ms <key> <datalen> <flags>* and reads the data block.
// After the length is known every error swallows the block, since the
// client sends it regardless; before, memcached cannot know its size and
// reads it as the next command.
func (c *ServerCodec) parseMS(req *protocol.Request) error {
	if c.ntok < 2 {
		return c.replyError(req, msgError)
	}
	if c.keyTooLong() || c.ntok == 2 {
		return c.replyError(req, msgBadFormat)
	}
	if c.ntok > maxMetaTokens {
		return c.replyError(req, msgTooManyFlags)
	}
	vlen, ok := safeStrtol(c.tok(2))
	if !ok || vlen < 0 || vlen > math.MaxInt32-2 {
		return c.replyError(req, msgBadFormat)
	}
	fail := func(msg string) error {
		c.replyError(req, msg)
		if err := c.swallow(int64(vlen) + 2); err != nil {
			return err
		}
		return protocol.ErrReplied
	}
	var mf metaFlags
	if msg := c.preparse(3, &mf); msg != "" {
		return fail(msg)
	}
	errMsg := ""
	if len(mf.opaque) > maxOpaqueLen {
		errMsg = msgOpaqueTooLong
	}
	cmd := protocol.CmdSet
	switch mf.mode {
	case 0, 'S':
	case 'E':
		cmd = protocol.CmdAdd
	case 'A':
		cmd = protocol.CmdAppend
	case 'P':
		cmd = protocol.CmdPrepend
	case 'R':
		cmd = protocol.CmdReplace
	default:
		errMsg = msgMsMode // checked after the opaque, so it wins
	}
	if errMsg != "" {
		return fail(errMsg)
	}
	c.applyMeta(req, &mf)
	if int(vlen) > c.lim.MaxItemSize {
		// memcached unlinks the key whatever the mode; see tooLarge.
		if err := c.swallow(int64(vlen) + 2); err != nil {
			return err
		}
		req.Quiet = false // meta errors are always answered
		return c.tooLarge(req)
	}
	if mf.hasCAS {
		switch cmd {
		case protocol.CmdSet, protocol.CmdReplace:
			// memcached: a compare value turns set and replace into cas.
			cmd = protocol.CmdCas
			req.CAS = mf.cas
			req.Invalidate = mf.invalid
		case protocol.CmdAppend, protocol.CmdPrepend:
			req.CAS = mf.cas // checked as a precondition
		case protocol.CmdAdd:
			// memcached's add ignores a compare value; so do we, rather
			// than let a handler treat add+CAS as compare-and-swap.
		}
	}
	req.Command = cmd
	req.Flags = mf.flags
	req.Exptime, req.HasExptime = int64(mf.exptime), true
	bad, err := c.readData(req, int(vlen))
	if err != nil {
		return err
	}
	if bad {
		return c.replyError(req, msgBadChunk)
	}
	return nil
}

// parseMD parses md.
func (c *ServerCodec) parseMD(req *protocol.Request) error {
	if ok, err := c.metaPrologue(req, msgTooManyFlags); !ok {
		return err
	}
	var mf metaFlags
	if msg := c.preparse(2, &mf); msg != "" {
		return c.replyError(req, msgInvalidOrDup)
	}
	if len(mf.opaque) > maxOpaqueLen {
		return c.replyError(req, msgOpaqueTooLong)
	}
	c.applyMeta(req, &mf)
	req.Command = protocol.CmdDelete
	if mf.hasCAS {
		req.CAS = mf.cas
	}
	req.Invalidate = mf.invalid
	if mf.hasT {
		req.Exptime, req.HasExptime = int64(mf.exptime), true
	}
	return nil
}

// parseMA parses ma.
func (c *ServerCodec) parseMA(req *protocol.Request) error {
	if ok, err := c.metaPrologue(req, msgTooManyFlags); !ok {
		return err
	}
	var mf metaFlags
	if msg := c.preparse(2, &mf); msg != "" {
		return c.replyError(req, msgInvalidOrDup)
	}
	cmd := protocol.CmdIncr
	switch mf.mode {
	case 0, 'I', '+':
	case 'D', '-':
		cmd = protocol.CmdDecr
	default:
		return c.replyError(req, msgMaMode)
	}
	if len(mf.opaque) > maxOpaqueLen {
		return c.replyError(req, msgOpaqueTooLong)
	}
	c.applyMeta(req, &mf)
	req.Command = cmd
	req.Delta = 1
	if mf.hasDelta {
		req.Delta = mf.delta
	}
	req.Initial = mf.initial
	req.Vivify = mf.vivify
	if mf.hasCAS {
		req.CAS = mf.cas
	}
	switch {
	case mf.hasT:
		req.Exptime, req.HasExptime = int64(mf.exptime), true
	case mf.vivify:
		req.Exptime = int64(mf.vivExp)
	}
	return nil
}

// parseME parses me <key> [b]: memcached's debug dump of one item. It is
// served as a get; the reply prints what the model knows.
func (c *ServerCodec) parseME(req *protocol.Request) error {
	if c.ntok < 2 || len(c.tok(1)) > c.lim.MaxKeyLen {
		return c.replyError(req, msgBadFormat)
	}
	key := c.tok(1)
	if c.ntok >= 3 && string(c.tok(2)) == "b" {
		var ok bool
		c.kbuf, ok = decodeKey(c.kbuf[:0], key)
		if !ok {
			return c.replyError(req, msgBadFormat)
		}
		key = c.kbuf
		req.Meta.Base64 = true
	}
	req.Command = protocol.CmdGet
	req.AddKey(key)
	req.Want = protocol.WantValue | protocol.WantFlags | protocol.WantCAS | protocol.WantTTL
	return nil
}
