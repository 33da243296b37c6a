package binproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// Client-side encoding. Every Append function appends one complete request
// packet to dst and returns the extended slice; none of them keeps dst, key
// or value, and none allocates when dst has room.

// AppendRequest appends a request packet. From h it uses Opcode, DataType,
// Status (the vbucket id), Opaque and CAS; the magic and the three lengths
// are computed from extras, key and value.
func AppendRequest(dst []byte, h Header, extras, key, value []byte) []byte {
	h.Magic = MagicRequest
	h.ExtLen = uint8(len(extras))
	h.KeyLen = uint16(len(key))
	h.BodyLen = uint32(len(extras) + len(key) + len(value))
	dst = AppendHeader(dst, h)
	dst = append(dst, extras...)
	dst = append(dst, key...)
	return append(dst, value...)
}

// appendReq appends a header for op with computed lengths; the caller then
// appends exactly ext bytes of extras, the key and vlen bytes of value.
func appendReq(dst []byte, op Opcode, ext int, key []byte, vlen int, cas uint64, opaque uint32) []byte {
	return AppendHeader(dst, Header{
		Magic:   MagicRequest,
		Opcode:  op,
		KeyLen:  uint16(len(key)),
		ExtLen:  uint8(ext),
		BodyLen: uint32(ext + len(key) + vlen),
		Opaque:  opaque,
		CAS:     cas,
	})
}

// AppendKeyOnly appends a packet with just a key: get, getq, getk, getkq,
// and delete/deleteq (where cas, if not 0, must match).
func AppendKeyOnly(dst []byte, op Opcode, key []byte, cas uint64, opaque uint32) []byte {
	dst = appendReq(dst, op, 0, key, 0, cas, opaque)
	return append(dst, key...)
}

// AppendGet appends a get family request (get, getq, getk, getkq).
func AppendGet(dst []byte, op Opcode, key []byte, opaque uint32) []byte {
	return AppendKeyOnly(dst, op, key, 0, opaque)
}

// AppendStore appends set, add, replace or a Q form. A non-zero cas makes
// memcached compare it, whichever of the three op is.
func AppendStore(dst []byte, op Opcode, key, value []byte, flags, exptime uint32, cas uint64, opaque uint32) []byte {
	dst = appendReq(dst, op, 8, key, len(value), cas, opaque)
	dst = binary.BigEndian.AppendUint32(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, exptime)
	dst = append(dst, key...)
	return append(dst, value...)
}

// AppendConcat appends append, prepend or a Q form.
func AppendConcat(dst []byte, op Opcode, key, value []byte, cas uint64, opaque uint32) []byte {
	dst = appendReq(dst, op, 0, key, len(value), cas, opaque)
	dst = append(dst, key...)
	return append(dst, value...)
}

// AppendCounter appends incr, decr or a Q form. exptime NoVivify means a
// missing item is not created with initial.
func AppendCounter(dst []byte, op Opcode, key []byte, delta, initial uint64, exptime uint32, cas uint64, opaque uint32) []byte {
	dst = appendReq(dst, op, 20, key, 0, cas, opaque)
	dst = binary.BigEndian.AppendUint64(dst, delta)
	dst = binary.BigEndian.AppendUint64(dst, initial)
	dst = binary.BigEndian.AppendUint32(dst, exptime)
	return append(dst, key...)
}

// AppendTouch appends touch, gat, gatq, gatk or gatkq.
func AppendTouch(dst []byte, op Opcode, key []byte, exptime uint32, opaque uint32) []byte {
	dst = appendReq(dst, op, 4, key, 0, 0, opaque)
	dst = binary.BigEndian.AppendUint32(dst, exptime)
	return append(dst, key...)
}

// AppendFlush appends flush or flushq; a non-zero delay is sent as extras.
func AppendFlush(dst []byte, op Opcode, delay uint32, opaque uint32) []byte {
	if delay == 0 {
		return appendReq(dst, op, 0, nil, 0, 0, opaque)
	}
	dst = appendReq(dst, op, 4, nil, 0, 0, opaque)
	return binary.BigEndian.AppendUint32(dst, delay)
}

// AppendStat appends a stat request for group (nil: the general stats).
func AppendStat(dst []byte, group []byte, opaque uint32) []byte {
	return AppendKeyOnly(dst, OpStat, group, 0, opaque)
}

// AppendSimple appends a request without body: noop, version, quit, quitq.
func AppendSimple(dst []byte, op Opcode, opaque uint32) []byte {
	return appendReq(dst, op, 0, nil, 0, 0, opaque)
}

// Response is a decoded response packet.
//
// Ownership: Extras, Key and Value are consecutive sub-slices of Body, which
// is the buf given to ReadResponse (resliced) when its capacity is enough and
// a new slice otherwise. They are valid until the caller reuses that memory;
// pass resp.Body[:0] as the next buf to read without allocating.
type Response struct {
	Header
	Extras []byte
	Key    []byte
	Value  []byte
	Body   []byte
}

// Flags returns the client flags of a get family hit (0 without extras).
func (r *Response) Flags() uint32 {
	if len(r.Extras) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(r.Extras)
}

// Counter returns the value of a successful incr/decr reply.
func (r *Response) Counter() (uint64, bool) {
	if r.Status != StatusOK || len(r.Value) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(r.Value), true
}

// DefaultMaxResponseBody bounds the body ReadResponse accepts: larger than
// any item memcached can store, small enough that a corrupt length cannot
// exhaust memory.
const DefaultMaxResponseBody = 64 << 20

// Errors from ReadResponse. After any of them the stream is out of sync and
// the connection should be closed.
var (
	ErrBadMagic     = errors.New("binproto: response magic is not 0x81")
	ErrMalformed    = errors.New("binproto: response extras and key exceed its body")
	ErrBodyTooLarge = errors.New("binproto: response body exceeds limit")
)

// ReadResponse reads one response packet, with bodies up to
// DefaultMaxResponseBody. See Response for who owns the returned slices.
func ReadResponse(r *bufio.Reader, buf []byte) (Response, error) {
	return ReadResponseLimit(r, buf, DefaultMaxResponseBody)
}

// ReadResponseLimit is ReadResponse with an explicit body limit.
func ReadResponseLimit(r *bufio.Reader, buf []byte, maxBody int) (Response, error) {
	var resp Response
	// The header is read into buf too (a local array would escape through
	// the io.Reader call and cost an allocation per packet).
	if cap(buf) < HeaderLen {
		buf = make([]byte, 0, 512)
	}
	if _, err := io.ReadFull(r, buf[:HeaderLen]); err != nil {
		return resp, err
	}
	resp.Header = ParseHeader(buf[:HeaderLen])
	if resp.Magic != MagicResponse {
		return resp, ErrBadMagic
	}
	n := int64(resp.BodyLen)
	if n > int64(maxBody) {
		return resp, ErrBodyTooLarge
	}
	if int64(resp.ExtLen)+int64(resp.KeyLen) > n {
		return resp, ErrMalformed
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	body := buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return resp, unexpected(err)
	}
	e, k := int(resp.ExtLen), int(resp.ExtLen)+int(resp.KeyLen)
	resp.Body = body
	resp.Extras = body[:e:e]
	resp.Key = body[e:k:k]
	resp.Value = body[k:]
	return resp, nil
}
