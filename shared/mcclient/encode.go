package mcclient

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// opKind is the shape of one meta or classic command on the wire, which is
// all the reader needs to parse its reply.
type opKind uint8

const (
	opGet       opKind = iota // mg v f c t
	opGat                     // mg v f c t T
	opTouch                   // mg T
	opStore                   // ms
	opDelete                  // md
	opArith                   // ma
	opFlush                   // flush_all
	opVersion                 // version
	opVerbosity               // verbosity
	opStats                   // stats
	opGets                    // gets k1 k2 ... (Config.ClassicGets): n keys from key
	opMemlimit                // cache_memlimit <MB>
)

// maxGetsLine bounds a classic gets line. memcached reads longer get lines
// too, but only through a slower path for lines it cannot take in its first
// 2 KiB read; a longer key list goes out as several lines.
const maxGetsLine = 2000

// classicMinKeys is the fewest keys a get must have to go out as classic
// gets lines (Config.ClassicGets). memcached 1.6 writes the reply to every
// classic get with a syscall of its own, while it answers a run of mg
// commands with one: single-key gets sent as classic lines cost L1 0.91
// sendmsg per get instead of 0.14 (50 conns, depth 1), +50% CPU. From 8
// keys on, a gets line costs at most one write per 8 keys and saves the
// per-command work of the other 7 (100-key multi-get: L1 CPU per key
// 2.9 -> 2.3 µs, rend's 2.9 -> 2.3 µs).
const classicMinKeys = 8

// op is one command of a call. The writer encodes it from the caller's
// Request; the reader parses its reply using only the op, because once the
// bytes are written the caller may give up and reuse its Request.
type op struct {
	kind opKind
	b64  bool  // send the key base64-encoded with the b flag
	req  int32 // index of the Request/Response in the call
	key  int32 // index of the key in Request.Keys (hits report it); opGets: the first
	n    int32 // opGets: number of keys on the line
	// exp is the absolute expiry reported for gat hits: memcached's t flag
	// shows the TTL before T is applied, so the sent exptime is the truth.
	exp int64
}

// Messages of replies produced locally, in memcached's words where memcached
// has words for the case.
const (
	msgBadFormat   = "bad command line format"
	msgTooLarge    = "object too large for cache"
	msgUnsupported = "unsupported command"
	msgBadArgs     = "bad command arguments"
	msgUnknownCmd  = "unknown command" // the server answered ERROR
	msgNonNumeric  = "cannot increment or decrement non-numeric value"
)

// maxKeyLen is memcached's key limit, which also applies to the base64 form.
const maxKeyLen = protocol.DefaultMaxKeyLen

// keyForm decides how k goes on the wire: as is, base64, or not at all.
func keyForm(k []byte, maxKey64 int) (b64, ok bool) {
	if protocol.ValidKey(k, maxKeyLen) {
		return false, true
	}
	if len(k) == 0 || len(k) > maxKeyLen || base64.StdEncoding.EncodedLen(len(k)) > maxKey64 {
		return false, false
	}
	return true, true
}

// validArgs reports whether stats/verbosity arguments can be put on a
// command line: no control bytes, so a caller cannot smuggle in a command.
func validArgs(b []byte) bool {
	if len(b) > 1024 {
		return false
	}
	for _, c := range b {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// prepare resets every Response, answers locally what must not or need not
// go to the server, and appends the ops of the rest to ops. It runs on the
// caller's goroutine, so the writer's encoding cannot fail.
//
// With classic, a get or gets of at least classicMinKeys keys goes out as
// classic multi-key "gets" lines (opGets), split at maxGetsLine and around
// keys that need base64 (those go as mg): one command for many keys costs
// memcached less than one mg each, but classic replies carry no TTL, so
// those hits have Exptime 0.
func prepare(ops []op, reqs []*protocol.Request, resps []*protocol.Response, maxValue, maxKey64 int, now time.Time, classic bool) []op {
	for i, req := range reqs {
		resp := resps[i]
		resp.Reset()
		ri := int32(i)
		switch req.Command {
		case protocol.CmdGet, protocol.CmdGets, protocol.CmdGat, protocol.CmdGats:
			// memcached rejects a whole get line for one bad key; do the same
			// rather than send part of it.
			start := len(ops)
			kind, exp := opGet, int64(0)
			if req.Command == protocol.CmdGat || req.Command == protocol.CmdGats {
				kind, exp = opGat, gatExpiry(req.Exptime, now)
			}
			line := 0 // length of the open opGets line, 0 if none is open
			for ki, k := range req.Keys {
				b64, ok := keyForm(k, maxKey64)
				if !ok {
					ops = ops[:start]
					resp.ClientError(msgBadFormat)
					break
				}
				if classic && kind == opGet && !b64 && len(req.Keys) >= classicMinKeys {
					if line > 0 && line+1+len(k) <= maxGetsLine {
						ops[len(ops)-1].n++
						line += 1 + len(k)
						continue
					}
					ops = append(ops, op{kind: opGets, req: ri, key: int32(ki), n: 1})
					line = len("gets ") + len(k)
					continue
				}
				line = 0
				ops = append(ops, op{kind: kind, b64: b64, req: ri, key: int32(ki), exp: exp})
			}
			if len(req.Keys) == 0 {
				resp.ClientError(msgBadFormat)
			}
		case protocol.CmdTouch, protocol.CmdDelete, protocol.CmdIncr, protocol.CmdDecr,
			protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdAppend,
			protocol.CmdPrepend, protocol.CmdCas:
			b64, ok := keyForm(req.Key(), maxKey64)
			if !ok || len(req.Keys) != 1 {
				resp.ClientError(msgBadFormat)
				continue
			}
			var kind opKind
			switch req.Command {
			case protocol.CmdTouch:
				kind = opTouch
			case protocol.CmdDelete:
				kind = opDelete
			case protocol.CmdIncr, protocol.CmdDecr:
				kind = opArith
			default:
				if len(req.Value) > maxValue {
					resp.Status, resp.Message = protocol.StatusTooLarge, msgTooLarge
					continue
				}
				kind = opStore
			}
			ops = append(ops, op{kind: kind, b64: b64, req: ri})
		case protocol.CmdFlushAll:
			ops = append(ops, op{kind: opFlush, req: ri})
		case protocol.CmdVersion:
			ops = append(ops, op{kind: opVersion, req: ri})
		case protocol.CmdVerbosity, protocol.CmdStats:
			if !validArgs(req.Args) {
				resp.ClientError(msgBadArgs)
				continue
			}
			kind := opStats
			if req.Command == protocol.CmdVerbosity {
				kind = opVerbosity
			}
			ops = append(ops, op{kind: kind, req: ri})
		case protocol.CmdCacheMemlimit:
			if _, err := strconv.ParseUint(string(req.Args), 10, 32); err != nil {
				resp.ClientError(msgBadArgs)
				continue
			}
			ops = append(ops, op{kind: opMemlimit, req: ri})
		case protocol.CmdNoop:
			// Nothing to ask: the server would only say it is there.
		default:
			resp.ClientError(msgUnsupported)
		}
	}
	return ops
}

// gatExpiry is the absolute expiry a gat with exptime e gives an item. An
// already-expired exptime still returns the item once (memcached does), so
// report it as expiring now rather than 0, which would mean never.
func gatExpiry(e int64, now time.Time) int64 {
	abs, expired := protocol.AbsExpiry(e, now)
	if expired && abs == 0 {
		abs = now.Unix()
	}
	return abs
}

// appendOp appends the wire form of o (built from req) to dst.
func appendOp(dst []byte, o *op, req *protocol.Request) []byte {
	switch o.kind {
	case opGet, opGat, opTouch:
		dst = append(dst, "mg "...)
		dst = appendKey(dst, req.Keys[o.key], o.b64)
		switch {
		case o.kind == opTouch:
			dst = append(dst, " T"...)
			dst = strconv.AppendInt(dst, req.Exptime, 10)
		case req.Mods.Meta:
			if req.Mods.ClassicRead {
				dst = append(dst, " G"...) // mnemonic only: see Mods.ClassicRead
			}
			if req.Mods.PeerAccess > 0 {
				dst = append(dst, " A"...) // mnemonic only: see Mods.PeerAccess
				dst = strconv.AppendInt(dst, req.Mods.PeerAccess, 10)
			}
			dst = appendMetaReadMods(dst, req)
			dst = appendTTLMods(dst, req, " v f c", o.kind == opGat, req.Vivify, req.Mods.VivifyExptime, 0)
		default:
			dst = append(dst, " v f c t"...)
			if req.Mods.ClassicRead {
				dst = append(dst, " G"...) // mnemonic only: see Mods.ClassicRead
			}
			if req.Mods.NoBump {
				dst = append(dst, " u"...)
			}
			if req.Want&protocol.WantFetched != 0 {
				dst = append(dst, " h"...) // rend's L2 reads: see orca's fill
			}
			if o.kind == opGat {
				dst = append(dst, " T"...)
				dst = strconv.AppendInt(dst, req.Exptime, 10)
			}
		}
	case opGets:
		dst = append(dst, "gets"...)
		for _, k := range req.Keys[o.key : o.key+o.n] {
			dst = append(dst, ' ')
			dst = append(dst, k...)
		}
	case opStore:
		dst = append(dst, "ms "...)
		dst = appendKey(dst, req.Keys[0], o.b64)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(len(req.Value)), 10)
		dst = append(dst, " F"...)
		dst = strconv.AppendUint(dst, uint64(req.Flags), 10)
		dst = append(dst, " T"...)
		dst = strconv.AppendInt(dst, req.Exptime, 10)
		dst = append(dst, " M"...)
		dst = append(dst, storeMode(req.Command))
		dst = append(dst, " c"...)
		if req.Command == protocol.CmdCas || req.CAS != 0 {
			dst = append(dst, " C"...)
			dst = strconv.AppendUint(dst, req.CAS, 10)
		}
		if req.NewCAS != 0 {
			dst = append(dst, " E"...)
			dst = strconv.AppendUint(dst, req.NewCAS, 10)
		}
		if req.Invalidate {
			dst = append(dst, " I"...)
		}
		if o.b64 {
			dst = append(dst, " b"...)
		}
		dst = append(dst, "\r\n"...)
		dst = append(dst, req.Value...)
		return append(dst, "\r\n"...)
	case opDelete:
		dst = append(dst, "md "...)
		dst = appendKey(dst, req.Keys[0], o.b64)
		if req.CAS != 0 {
			dst = append(dst, " C"...)
			dst = strconv.AppendUint(dst, req.CAS, 10)
		}
		if req.Invalidate {
			dst = append(dst, " I"...)
			if req.HasExptime {
				dst = append(dst, " T"...)
				dst = strconv.AppendInt(dst, req.Exptime, 10)
			}
		}
	case opArith:
		dst = append(dst, "ma "...)
		dst = appendKey(dst, req.Keys[0], o.b64)
		dst = append(dst, " D"...)
		dst = strconv.AppendUint(dst, req.Delta, 10)
		if req.Command == protocol.CmdDecr {
			dst = append(dst, " MD"...)
		} else {
			dst = append(dst, " MI"...)
		}
		if req.Mods.Meta {
			// A client's ma: its N, T and t in its own order, so the reply's
			// t is the one the client must see.
			dst = appendTTLMods(dst, req, " v c", req.Mods.SetTTL, req.Vivify, req.Mods.VivifyExptime, req.Initial)
		} else {
			dst = append(dst, " v c t"...)
		}
		if req.CAS != 0 {
			dst = append(dst, " C"...)
			dst = strconv.AppendUint(dst, req.CAS, 10)
		}
		if req.Mods.PeerAccess > 0 {
			dst = append(dst, " A"...) // mnemonic only: see Mods.PeerAccess
			dst = strconv.AppendInt(dst, req.Mods.PeerAccess, 10)
		}
		if req.Vivify && !req.Mods.Meta {
			dst = append(dst, " N"...)
			dst = strconv.AppendInt(dst, req.Exptime, 10)
			dst = append(dst, " J"...)
			dst = strconv.AppendUint(dst, req.Initial, 10)
		}

	case opFlush:
		dst = append(dst, "flush_all"...)
		if req.Exptime != 0 {
			dst = append(dst, ' ')
			dst = strconv.AppendInt(dst, req.Exptime, 10)
		}
	case opVersion:
		dst = append(dst, "version"...)
	case opMemlimit:
		dst = append(dst, "cache_memlimit "...)
		dst = append(dst, req.Args...)
	case opVerbosity:
		dst = append(dst, "verbosity"...)
		if len(req.Args) > 0 {
			dst = append(dst, ' ')
			dst = append(dst, req.Args...)
		}
	case opStats:
		dst = append(dst, "stats"...)
		if len(req.Args) > 0 {
			dst = append(dst, ' ')
			dst = append(dst, req.Args...)
		}
	}
	if o.b64 {
		dst = append(dst, " b"...)
	}
	return append(dst, "\r\n"...)
}

// appendTTLMods appends flags, then t, T (setTTL) and N (vivify; with J
// for an ma) in the order the client sent them: memcached applies T and N
// and prints t in flag order, so the reply's t is what the client expects.
func appendTTLMods(dst []byte, req *protocol.Request, flags string, setTTL, vivify bool, vexp int64, initial uint64) []byte {
	m := &req.Mods
	dst = append(dst, flags...)
	var order [3]byte // 't', 'T', 'N'
	n := 0
	add := func(c byte) { order[n] = c; n++ }
	tAt := 0 // modifiers before t
	if setTTL && !m.TTLBeforeSet {
		tAt++
	}
	if vivify && !m.TTLBeforeVivify {
		tAt++
	}
	mods := [2]byte{'N', 'T'}
	if m.VivifyAfterSet {
		mods = [2]byte{'T', 'N'}
	}
	for _, c := range mods {
		if (c == 'T' && !setTTL) || (c == 'N' && !vivify) {
			continue
		}
		if n == tAt {
			add('t')
		}
		add(c)
	}
	if n == tAt {
		add('t')
	}
	for _, c := range order[:n] {
		switch c {
		case 't':
			dst = append(dst, " t"...)
		case 'T':
			dst = append(dst, " T"...)
			dst = strconv.AppendInt(dst, req.Exptime, 10)
		case 'N':
			dst = append(dst, " N"...)
			dst = strconv.AppendInt(dst, vexp, 10)
			if req.Command == protocol.CmdIncr || req.Command == protocol.CmdDecr {
				dst = append(dst, " J"...)
				dst = strconv.AppendUint(dst, initial, 10)
			}
		}
	}
	return dst
}

// appendMetaReadMods appends the meta modifiers of a client's mg that the
// server must apply (R, u) or answer (h, l); N goes with appendTTLMods.
func appendMetaReadMods(dst []byte, req *protocol.Request) []byte {
	m := &req.Mods
	if m.HasRecache {
		dst = append(dst, " R"...)
		dst = strconv.AppendInt(dst, m.Recache, 10)
	}
	if m.NoBump {
		dst = append(dst, " u"...)
	}
	if req.Want&protocol.WantFetched != 0 {
		dst = append(dst, " h"...)
	}
	if req.Want&protocol.WantAccess != 0 {
		dst = append(dst, " l"...)
	}
	return dst
}

func appendKey(dst, k []byte, b64 bool) []byte {
	if !b64 {
		return append(dst, k...)
	}
	return base64.StdEncoding.AppendEncode(dst, k)
}

// storeMode is the ms M token for a storage command. cas is a set with a
// compare value (the C flag), as in memcached's own cas handling.
func storeMode(c protocol.Command) byte {
	switch c {
	case protocol.CmdAdd:
		return 'E'
	case protocol.CmdReplace:
		return 'R'
	case protocol.CmdAppend:
		return 'A'
	case protocol.CmdPrepend:
		return 'P'
	}
	return 'S'
}
