package binproto

import (
	"encoding/binary"
	"strconv"
)

// HeaderLen is the length of every packet header.
const HeaderLen = 24

// Magic bytes.
const (
	MagicRequest  = 0x80
	MagicResponse = 0x81
)

// NoVivify is the incr/decr expiration meaning "do not create a missing item".
const NoVivify = 0xffffffff

// Opcode is a binary command code.
type Opcode uint8

// Opcodes memcached 1.6 knows. Q forms are quiet.
const (
	OpGet        Opcode = 0x00
	OpSet        Opcode = 0x01
	OpAdd        Opcode = 0x02
	OpReplace    Opcode = 0x03
	OpDelete     Opcode = 0x04
	OpIncrement  Opcode = 0x05
	OpDecrement  Opcode = 0x06
	OpQuit       Opcode = 0x07
	OpFlush      Opcode = 0x08
	OpGetQ       Opcode = 0x09
	OpNoop       Opcode = 0x0a
	OpVersion    Opcode = 0x0b
	OpGetK       Opcode = 0x0c
	OpGetKQ      Opcode = 0x0d
	OpAppend     Opcode = 0x0e
	OpPrepend    Opcode = 0x0f
	OpStat       Opcode = 0x10
	OpSetQ       Opcode = 0x11
	OpAddQ       Opcode = 0x12
	OpReplaceQ   Opcode = 0x13
	OpDeleteQ    Opcode = 0x14
	OpIncrementQ Opcode = 0x15
	OpDecrementQ Opcode = 0x16
	OpQuitQ      Opcode = 0x17
	OpFlushQ     Opcode = 0x18
	OpAppendQ    Opcode = 0x19
	OpPrependQ   Opcode = 0x1a
	OpVerbosity  Opcode = 0x1b // unknown command in memcached 1.6.18
	OpTouch      Opcode = 0x1c
	OpGAT        Opcode = 0x1d
	OpGATQ       Opcode = 0x1e
	OpSASLList   Opcode = 0x20 // unknown command without SASL
	OpSASLAuth   Opcode = 0x21
	OpSASLStep   Opcode = 0x22
	OpGATK       Opcode = 0x23
	OpGATKQ      Opcode = 0x24
)

func (o Opcode) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpSet:
		return "set"
	case OpAdd:
		return "add"
	case OpReplace:
		return "replace"
	case OpDelete:
		return "delete"
	case OpIncrement:
		return "incr"
	case OpDecrement:
		return "decr"
	case OpQuit:
		return "quit"
	case OpFlush:
		return "flush"
	case OpGetQ:
		return "getq"
	case OpNoop:
		return "noop"
	case OpVersion:
		return "version"
	case OpGetK:
		return "getk"
	case OpGetKQ:
		return "getkq"
	case OpAppend:
		return "append"
	case OpPrepend:
		return "prepend"
	case OpStat:
		return "stat"
	case OpSetQ:
		return "setq"
	case OpAddQ:
		return "addq"
	case OpReplaceQ:
		return "replaceq"
	case OpDeleteQ:
		return "deleteq"
	case OpIncrementQ:
		return "incrq"
	case OpDecrementQ:
		return "decrq"
	case OpQuitQ:
		return "quitq"
	case OpFlushQ:
		return "flushq"
	case OpAppendQ:
		return "appendq"
	case OpPrependQ:
		return "prependq"
	case OpVerbosity:
		return "verbosity"
	case OpTouch:
		return "touch"
	case OpGAT:
		return "gat"
	case OpGATQ:
		return "gatq"
	case OpSASLList:
		return "sasl_list_mechs"
	case OpSASLAuth:
		return "sasl_auth"
	case OpSASLStep:
		return "sasl_step"
	case OpGATK:
		return "gatk"
	case OpGATKQ:
		return "gatkq"
	}
	return "op(0x" + strconv.FormatUint(uint64(o), 16) + ")"
}

// Status is a response status.
type Status uint16

// Statuses. memcached 1.6.18 sends the first seven, UnknownCommand and
// OutOfMemory (and AuthError when flush_all is disabled).
const (
	StatusOK             Status = 0x0000
	StatusKeyNotFound    Status = 0x0001
	StatusKeyExists      Status = 0x0002
	StatusValueTooLarge  Status = 0x0003
	StatusInvalidArgs    Status = 0x0004
	StatusItemNotStored  Status = 0x0005
	StatusNonNumeric     Status = 0x0006
	StatusAuthError      Status = 0x0020
	StatusAuthContinue   Status = 0x0021
	StatusUnknownCommand Status = 0x0081
	StatusOutOfMemory    Status = 0x0082
	StatusNotSupported   Status = 0x0083
	StatusInternalError  Status = 0x0084
	StatusBusy           Status = 0x0085
	StatusTempFailure    Status = 0x0086
)

// Text is the body memcached sends with an error status.
func (s Status) Text() string {
	switch s {
	case StatusKeyNotFound:
		return "Not found"
	case StatusKeyExists:
		return "Data exists for key."
	case StatusValueTooLarge:
		return "Too large."
	case StatusInvalidArgs:
		return "Invalid arguments"
	case StatusItemNotStored:
		return "Not stored."
	case StatusNonNumeric:
		return "Non-numeric server-side value for incr or decr"
	case StatusAuthError:
		return "Auth failure."
	case StatusUnknownCommand:
		return "Unknown command"
	case StatusOutOfMemory:
		return "Out of memory"
	}
	return ""
}

func (s Status) String() string {
	if t := s.Text(); t != "" {
		return t
	}
	if s == StatusOK {
		return "OK"
	}
	return "status(0x" + strconv.FormatUint(uint64(s), 16) + ")"
}

// Header is a packet header. In requests Status holds the vbucket id.
type Header struct {
	Magic    uint8
	Opcode   Opcode
	KeyLen   uint16
	ExtLen   uint8
	DataType uint8
	Status   Status
	BodyLen  uint32
	Opaque   uint32
	CAS      uint64
}

// ParseHeader decodes the first HeaderLen bytes of b. It panics if b is
// shorter, like the encoding/binary accessors it uses.
func ParseHeader(b []byte) Header {
	_ = b[HeaderLen-1]
	return Header{
		Magic:    b[0],
		Opcode:   Opcode(b[1]),
		KeyLen:   binary.BigEndian.Uint16(b[2:4]),
		ExtLen:   b[4],
		DataType: b[5],
		Status:   Status(binary.BigEndian.Uint16(b[6:8])),
		BodyLen:  binary.BigEndian.Uint32(b[8:12]),
		Opaque:   binary.BigEndian.Uint32(b[12:16]),
		CAS:      binary.BigEndian.Uint64(b[16:24]),
	}
}

// AppendHeader appends h as it is, lengths included.
func AppendHeader(dst []byte, h Header) []byte {
	dst = append(dst, h.Magic, byte(h.Opcode))
	dst = binary.BigEndian.AppendUint16(dst, h.KeyLen)
	dst = append(dst, h.ExtLen, h.DataType)
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Status))
	dst = binary.BigEndian.AppendUint32(dst, h.BodyLen)
	dst = binary.BigEndian.AppendUint32(dst, h.Opaque)
	return binary.BigEndian.AppendUint64(dst, h.CAS)
}

// putHeader writes h into b[:HeaderLen] without allocating.
func putHeader(b *[HeaderLen]byte, h Header) {
	b[0] = h.Magic
	b[1] = byte(h.Opcode)
	binary.BigEndian.PutUint16(b[2:4], h.KeyLen)
	b[4] = h.ExtLen
	b[5] = h.DataType
	binary.BigEndian.PutUint16(b[6:8], uint16(h.Status))
	binary.BigEndian.PutUint32(b[8:12], h.BodyLen)
	binary.BigEndian.PutUint32(b[12:16], h.Opaque)
	binary.BigEndian.PutUint64(b[16:24], h.CAS)
}
