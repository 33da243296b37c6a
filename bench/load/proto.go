package load

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/moneta-cache/moneta/shared/binproto"
)

// Op is one kind of request the generator sends.
type Op uint8

const (
	OpGet Op = iota
	OpSet
	OpGat
	OpDelete
	OpIncr
	numOps
)

var opNames = [numOps]string{"get", "set", "gat", "delete", "incr"}

func (o Op) String() string { return opNames[o] }

// errReply is a protocol-level error reply (ERROR, CLIENT_ERROR, SERVER_ERROR,
// binary error status): counted, the connection stays usable.
var errReply = errors.New("error reply")

// request is what a reader needs to parse and check one reply.
type request struct {
	op   Op
	keys [][]byte // owned by the pending slot
}

// wire encodes requests and decodes replies for one protocol. A reply
// reader returns the number of hits and misses; for each hit it calls check
// (nil when not verifying) with the key index and value, valid only during
// the call. scratch is the connection's reusable data buffer.
type wire interface {
	appendRequest(dst []byte, r *request, value []byte, exptime int) []byte
	readReply(br *bufio.Reader, r *request, scratch *[]byte, check func(i int, v []byte) bool) (hits, misses int, bad int, err error)
}

func newWire(proto string) (wire, error) {
	switch proto {
	case "text":
		return textWire{}, nil
	case "meta":
		return metaWire{}, nil
	case "binary":
		return binaryWire{}, nil
	}
	return nil, fmt.Errorf("unknown protocol %q (text, meta, binary)", proto)
}

func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("reply line too long")
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// readData reads n bytes of data plus the trailing \r\n into scratch.
func readData(br *bufio.Reader, n int, scratch *[]byte) ([]byte, error) {
	if cap(*scratch) < n+2 {
		*scratch = make([]byte, n+2)
	}
	b := (*scratch)[:n+2]
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, err
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, fmt.Errorf("data block not terminated by CRLF")
	}
	return b[:n], nil
}

func isErrorLine(line []byte) bool {
	return bytes.HasPrefix(line, []byte("ERROR")) || bytes.HasPrefix(line, []byte("CLIENT_ERROR")) ||
		bytes.HasPrefix(line, []byte("SERVER_ERROR"))
}

type textWire struct{}

func (textWire) appendRequest(dst []byte, r *request, value []byte, exptime int) []byte {
	switch r.op {
	case OpGet, OpGat:
		if r.op == OpGet {
			dst = append(dst, "get"...)
		} else {
			dst = append(dst, "gat "...)
			dst = strconv.AppendInt(dst, int64(exptime), 10)
		}
		for _, k := range r.keys {
			dst = append(dst, ' ')
			dst = append(dst, k...)
		}
		return append(dst, "\r\n"...)
	case OpSet:
		dst = append(dst, "set "...)
		dst = append(dst, r.keys[0]...)
		dst = append(dst, " 0 "...)
		dst = strconv.AppendInt(dst, int64(exptime), 10)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(len(value)), 10)
		dst = append(dst, "\r\n"...)
		dst = append(dst, value...)
		return append(dst, "\r\n"...)
	case OpDelete:
		dst = append(dst, "delete "...)
		dst = append(dst, r.keys[0]...)
		return append(dst, "\r\n"...)
	default: // OpIncr
		dst = append(dst, "incr "...)
		dst = append(dst, r.keys[0]...)
		return append(dst, " 1\r\n"...)
	}
}

func (textWire) readReply(br *bufio.Reader, r *request, scratch *[]byte, check func(int, []byte) bool) (hits, misses, bad int, err error) {
	switch r.op {
	case OpGet, OpGat:
		next := 0 // replies come in request order; a missing key is skipped
		for {
			line, err := readLine(br)
			if err != nil {
				return hits, misses, bad, err
			}
			if bytes.Equal(line, []byte("END")) {
				misses = len(r.keys) - hits
				return hits, misses, bad, nil
			}
			if isErrorLine(line) {
				return hits, 0, bad, errReply
			}
			f := bytes.Fields(line)
			if len(f) < 4 || !bytes.Equal(f[0], []byte("VALUE")) {
				return hits, misses, bad, fmt.Errorf("unexpected reply %q", line)
			}
			n, perr := strconv.Atoi(string(f[3]))
			if perr != nil || n < 0 {
				return hits, misses, bad, fmt.Errorf("bad VALUE line %q", line)
			}
			v, err := readData(br, n, scratch)
			if err != nil {
				return hits, misses, bad, err
			}
			for next < len(r.keys) && !bytes.Equal(r.keys[next], f[1]) {
				next++
			}
			hits++
			if check != nil && (next == len(r.keys) || !check(next, v)) {
				bad++
			}
		}
	default:
		line, err := readLine(br)
		if err != nil {
			return 0, 0, 0, err
		}
		switch {
		case bytes.Equal(line, []byte("NOT_FOUND")):
			return 0, 1, 0, nil
		case isErrorLine(line):
			return 0, 0, 0, errReply
		}
		return 0, 0, 0, nil
	}
}

type metaWire struct{}

func (metaWire) appendRequest(dst []byte, r *request, value []byte, exptime int) []byte {
	switch r.op {
	case OpGet, OpGat:
		for _, k := range r.keys {
			dst = append(dst, "mg "...)
			dst = append(dst, k...)
			dst = append(dst, " v"...)
			if r.op == OpGat {
				dst = append(dst, " T"...)
				dst = strconv.AppendInt(dst, int64(exptime), 10)
			}
			dst = append(dst, "\r\n"...)
		}
		return dst
	case OpSet:
		dst = append(dst, "ms "...)
		dst = append(dst, r.keys[0]...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(len(value)), 10)
		dst = append(dst, " T"...)
		dst = strconv.AppendInt(dst, int64(exptime), 10)
		dst = append(dst, "\r\n"...)
		dst = append(dst, value...)
		return append(dst, "\r\n"...)
	case OpDelete:
		dst = append(dst, "md "...)
		dst = append(dst, r.keys[0]...)
		return append(dst, "\r\n"...)
	default:
		dst = append(dst, "ma "...)
		dst = append(dst, r.keys[0]...)
		return append(dst, "\r\n"...)
	}
}

func (metaWire) readReply(br *bufio.Reader, r *request, scratch *[]byte, check func(int, []byte) bool) (hits, misses, bad int, err error) {
	n := 1
	if r.op == OpGet || r.op == OpGat {
		n = len(r.keys)
	}
	var replyErr error
	for i := 0; i < n; i++ {
		line, err := readLine(br)
		if err != nil {
			return hits, misses, bad, err
		}
		switch {
		case bytes.HasPrefix(line, []byte("VA ")):
			f := bytes.Fields(line)
			size, perr := strconv.Atoi(string(f[1]))
			if perr != nil || size < 0 {
				return hits, misses, bad, fmt.Errorf("bad VA line %q", line)
			}
			v, err := readData(br, size, scratch)
			if err != nil {
				return hits, misses, bad, err
			}
			hits++
			if check != nil && !check(i, v) {
				bad++
			}
		case bytes.Equal(line, []byte("EN")), bytes.HasPrefix(line, []byte("NF")):
			misses++
		case bytes.HasPrefix(line, []byte("HD")):
		case isErrorLine(line):
			replyErr = errReply
		default:
			return hits, misses, bad, fmt.Errorf("unexpected reply %q", line)
		}
	}
	return hits, misses, bad, replyErr
}

type binaryWire struct{}

func appendBinary(dst []byte, op binproto.Opcode, opaque uint32, extras, key, value []byte) []byte {
	dst = binproto.AppendHeader(dst, binproto.Header{
		Magic: binproto.MagicRequest, Opcode: op, KeyLen: uint16(len(key)),
		ExtLen: uint8(len(extras)), BodyLen: uint32(len(extras) + len(key) + len(value)), Opaque: opaque,
	})
	dst = append(dst, extras...)
	dst = append(dst, key...)
	return append(dst, value...)
}

func (binaryWire) appendRequest(dst []byte, r *request, value []byte, exptime int) []byte {
	var ext [20]byte
	switch r.op {
	case OpGet, OpGat:
		// A multi-get is a run of quiet getkq (hits only) closed by one getk
		// that always answers, so the reader knows where the reply ends.
		quiet, last := binproto.OpGetKQ, binproto.OpGetK
		var extras []byte
		if r.op == OpGat {
			quiet, last = binproto.OpGATKQ, binproto.OpGATK
			binary.BigEndian.PutUint32(ext[:4], uint32(exptime))
			extras = ext[:4]
		}
		for i, k := range r.keys {
			op := quiet
			if i == len(r.keys)-1 {
				op = last
			}
			dst = appendBinary(dst, op, uint32(i), extras, k, nil)
		}
		return dst
	case OpSet:
		binary.BigEndian.PutUint32(ext[4:8], uint32(exptime))
		return appendBinary(dst, binproto.OpSet, 0, ext[:8], r.keys[0], value)
	case OpDelete:
		return appendBinary(dst, binproto.OpDelete, 0, nil, r.keys[0], nil)
	default:
		binary.BigEndian.PutUint64(ext[0:8], 1)
		binary.BigEndian.PutUint32(ext[16:20], binproto.NoVivify)
		return appendBinary(dst, binproto.OpIncrement, 0, ext[:20], r.keys[0], nil)
	}
}

func (binaryWire) readReply(br *bufio.Reader, r *request, scratch *[]byte, check func(int, []byte) bool) (hits, misses, bad int, err error) {
	var hdr [binproto.HeaderLen]byte
	last := 0
	if r.op == OpGet || r.op == OpGat {
		last = len(r.keys) - 1
	}
	var replyErr error
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return hits, misses, bad, err
		}
		h := binproto.ParseHeader(hdr[:])
		if h.Magic != binproto.MagicResponse {
			return hits, misses, bad, fmt.Errorf("bad response magic 0x%x", h.Magic)
		}
		if cap(*scratch) < int(h.BodyLen) {
			*scratch = make([]byte, h.BodyLen)
		}
		body := (*scratch)[:h.BodyLen]
		if _, err := io.ReadFull(br, body); err != nil {
			return hits, misses, bad, err
		}
		switch h.Status {
		case binproto.StatusOK:
			if r.op == OpGet || r.op == OpGat {
				hits++
				v := body[int(h.ExtLen)+int(h.KeyLen):]
				if check != nil && !check(int(h.Opaque), v) {
					bad++
				}
			}
		case binproto.StatusKeyNotFound:
		default:
			replyErr = errReply
		}
		if int(h.Opaque) >= last {
			if r.op == OpGet || r.op == OpGat {
				misses = len(r.keys) - hits
			} else if h.Status == binproto.StatusKeyNotFound {
				misses = 1
			}
			return hits, misses, bad, replyErr
		}
	}
}
