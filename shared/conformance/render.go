package conformance

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
)

// Marker lines of a rendered reply.
const (
	closedMarker  = "[closed]"  // the server closed the connection
	timeoutMarker = "[timeout]" // the reply did not complete in time (never in a script)
)

// casNames maps CAS values seen in a script's replies to placeholder names
// ($cas1, $cas2...) in order of first appearance. The mapping is one to one:
// a value always gets the same name, and two values never share one.
type casNames struct {
	byValue map[uint64]string
	byName  map[string]uint64
}

func newCASNames() *casNames {
	return &casNames{byValue: map[uint64]string{}, byName: map[string]uint64{}}
}

// name returns the placeholder for v, assigning the next one if v is new.
func (c *casNames) name(v uint64) string {
	if n, ok := c.byValue[v]; ok {
		return n
	}
	n := "cas" + strconv.Itoa(len(c.byValue)+1)
	c.byValue[v] = n
	c.byName[n] = v
	return n
}

func (c *casNames) clone() *casNames {
	d := newCASNames()
	for v, n := range c.byValue {
		d.byValue[v] = n
		d.byName[n] = v
	}
	return d
}

// renderer turns reply bytes into the normalised lines a script compares.
type renderer struct {
	names *casNames
	shape bool
}

// render renders a reply received on a text or binary connection; closed
// appends the closed marker.
func (r *renderer) render(b []byte, bin, closed bool) []string {
	var lines []string
	if bin {
		lines = r.renderBinary(b)
	} else {
		lines = r.renderText(b)
	}
	if closed {
		lines = append(lines, closedMarker)
	}
	return lines
}

var crlf = []byte("\r\n")

// renderText splits a text reply into lines, keeping the data blocks of
// VALUE and VA lines whole so that their contents are never normalised.
func (r *renderer) renderText(b []byte) []string {
	var lines []string
	for len(b) > 0 {
		i := bytes.Index(b, crlf)
		if i < 0 {
			lines = append(lines, escape(b, false)+`\`)
			break
		}
		line := b[:i]
		b = b[i+2:]
		out, dataLen := r.textLine(line)
		lines = append(lines, out)
		if dataLen >= 0 && len(b) >= dataLen+2 && b[dataLen] == '\r' && b[dataLen+1] == '\n' {
			lines = append(lines, escapeLine(b[:dataLen]))
			b = b[dataLen+2:]
		}
	}
	return lines
}

// textLine normalises one reply line and returns the length of the data
// block that follows it, or -1.
func (r *renderer) textLine(line []byte) (string, int) {
	f := strings.Split(string(line), " ")
	switch f[0] {
	case "VALUE":
		if len(f) != 4 && len(f) != 5 {
			break
		}
		n, err := strconv.Atoi(f[3])
		if err != nil || n < 0 {
			break
		}
		if len(f) == 5 {
			if cas, err := strconv.ParseUint(f[4], 10, 64); err == nil {
				return joinTokens(f[:4], "$"+r.names.name(cas)), n
			}
		}
		return escapeLine(line), n
	case "VA":
		if len(f) < 2 {
			break
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 {
			break
		}
		return joinTokens(f[:2], r.metaFlags(f[2:])...), n
	case "HD", "EN", "NF", "NS", "EX":
		return joinTokens(f[:1], r.metaFlags(f[1:])...), -1
	case "VERSION":
		if len(f) >= 2 {
			return "VERSION $version", -1
		}
	case "STAT":
		if r.shape && len(f) >= 3 {
			return joinTokens(f[:2], "$"), -1
		}
	}
	return escapeLine(line), -1
}

// metaFlags normalises meta return flags: c (CAS), t (TTL) and l (seconds
// since the last access).
func (r *renderer) metaFlags(flags []string) []string {
	out := make([]string, len(flags))
	for i, fl := range flags {
		out[i] = escape([]byte(fl), false)
		if len(fl) < 2 {
			continue
		}
		v, err := strconv.ParseUint(fl[1:], 10, 64)
		if err != nil {
			continue
		}
		switch fl[0] {
		case 'c':
			out[i] = "c$" + r.names.name(v)
		case 't':
			out[i] = "t~" + strconv.FormatUint((v+5)/10*10, 10)
		case 'l':
			out[i] = "l~0" // accessed this second or the one before
			if v >= 2 {
				out[i] = "l~2+"
			}
		}
	}
	return out
}

// joinTokens escapes raw tokens and joins them with already rendered ones.
func joinTokens(raw []string, rendered ...string) string {
	parts := make([]string, 0, len(raw)+len(rendered))
	for _, t := range raw {
		parts = append(parts, escape([]byte(t), false))
	}
	parts = append(parts, rendered...)
	s := strings.Join(parts, " ")
	if strings.HasSuffix(s, " ") {
		s = s[:len(s)-1] + `\x20`
	}
	if s == separator || s == closedMarker {
		return escapeLine([]byte(s))
	}
	return s
}

// Binary protocol constants.
const (
	binHeaderLen = 24
	magicRequest = 0x80
	magicReply   = 0x81
)

// opcode names, memcached's short forms.
var opcodeNames = map[byte]string{
	0x00: "get", 0x01: "set", 0x02: "add", 0x03: "replace", 0x04: "delete",
	0x05: "incr", 0x06: "decr", 0x07: "quit", 0x08: "flush", 0x09: "getq",
	0x0a: "noop", 0x0b: "version", 0x0c: "getk", 0x0d: "getkq", 0x0e: "append",
	0x0f: "prepend", 0x10: "stat", 0x11: "setq", 0x12: "addq", 0x13: "replaceq",
	0x14: "deleteq", 0x15: "incrq", 0x16: "decrq", 0x17: "quitq", 0x18: "flushq",
	0x19: "appendq", 0x1a: "prependq", 0x1b: "verbosity", 0x1c: "touch",
	0x1d: "gat", 0x1e: "gatq", 0x23: "gatk", 0x24: "gatkq",
}

var statusNames = map[uint16]string{
	0x01: "KEY_ENOENT", 0x02: "KEY_EEXISTS", 0x03: "E2BIG", 0x04: "EINVAL",
	0x05: "NOT_STORED", 0x06: "DELTA_BADVAL", 0x07: "NOT_MY_VBUCKET",
	0x20: "AUTH_ERROR", 0x21: "AUTH_CONTINUE", 0x81: "UNKNOWN_COMMAND",
	0x82: "ENOMEM", 0x83: "NOT_SUPPORTED", 0x84: "EINTERNAL", 0x85: "EBUSY",
	0x86: "ETMPFAIL",
}

func opcodeName(op byte) string {
	if n, ok := opcodeNames[op]; ok {
		return n
	}
	return "0x" + hex.EncodeToString([]byte{op})
}

// isGetFamily reports whether op's reply extras are the item flags.
func isGetFamily(op byte) bool {
	switch op {
	case 0x00, 0x09, 0x0c, 0x0d, 0x1d, 0x1e, 0x23, 0x24:
		return true
	}
	return false
}

func isIncrDecr(op byte) bool {
	switch op {
	case 0x05, 0x06, 0x15, 0x16:
		return true
	}
	return false
}

// binHeader is a decoded binary header.
type binHeader struct {
	magic, op, extLen, dataType byte
	keyLen, status              uint16
	bodyLen, opaque             uint32
	cas                         uint64
}

func parseBinHeader(b []byte) binHeader {
	return binHeader{
		magic: b[0], op: b[1], keyLen: binary.BigEndian.Uint16(b[2:]),
		extLen: b[4], dataType: b[5], status: binary.BigEndian.Uint16(b[6:]),
		bodyLen: binary.BigEndian.Uint32(b[8:]), opaque: binary.BigEndian.Uint32(b[12:]),
		cas: binary.BigEndian.Uint64(b[16:]),
	}
}

// renderBinary renders reply packets one per line.
func (r *renderer) renderBinary(b []byte) []string {
	var lines []string
	for len(b) > 0 {
		if b[0] != magicReply {
			lines = append(lines, `raw="`+escape(b, true)+`"`)
			break
		}
		if len(b) < binHeaderLen {
			lines = append(lines, `partial="`+escape(b, true)+`"`)
			break
		}
		h := parseBinHeader(b)
		total := binHeaderLen + int(h.bodyLen)
		if int(h.bodyLen) < int(h.extLen)+int(h.keyLen) {
			lines = append(lines, `raw="`+escape(b, true)+`"`)
			break
		}
		if len(b) < total {
			lines = append(lines, `partial="`+escape(b, true)+`"`)
			break
		}
		lines = append(lines, r.binPacket(h, b[binHeaderLen:total]))
		b = b[total:]
	}
	return lines
}

func (r *renderer) binPacket(h binHeader, body []byte) string {
	extras := body[:h.extLen]
	key := body[h.extLen : int(h.extLen)+int(h.keyLen)]
	value := body[int(h.extLen)+int(h.keyLen):]
	var sb strings.Builder
	sb.WriteString(opcodeName(h.op))
	if h.status != 0 {
		sb.WriteString(" status=")
		if n, ok := statusNames[h.status]; ok {
			sb.WriteString(n)
		} else {
			sb.WriteString("0x" + hex.EncodeToString([]byte{byte(h.status >> 8), byte(h.status)}))
		}
	}
	if h.opaque != 0 {
		sb.WriteString(" opaque=" + strconv.FormatUint(uint64(h.opaque), 10))
	}
	if h.cas != 0 {
		sb.WriteString(" cas=$" + r.names.name(h.cas))
	}
	if h.dataType != 0 {
		sb.WriteString(" datatype=" + strconv.Itoa(int(h.dataType)))
	}
	if len(extras) > 0 {
		if isGetFamily(h.op) && len(extras) == 4 {
			sb.WriteString(" flags=" + strconv.FormatUint(uint64(binary.BigEndian.Uint32(extras)), 10))
		} else {
			sb.WriteString(" extras=" + hex.EncodeToString(extras))
		}
	}
	if len(key) > 0 {
		sb.WriteString(` key="` + escape(key, true) + `"`)
	}
	switch {
	case len(value) == 0:
	case h.op == 0x0b && h.status == 0:
		sb.WriteString(" value=$version")
	case h.op == 0x10 && h.status == 0 && r.shape:
		sb.WriteString(" value=$")
	case isIncrDecr(h.op) && h.status == 0 && len(value) == 8:
		sb.WriteString(" num=" + strconv.FormatUint(binary.BigEndian.Uint64(value), 10))
	default:
		sb.WriteString(` value="` + escape(value, true) + `"`)
	}
	return sb.String()
}

// matches compares a rendered reply with an expectation. In shape mode every
// expected line must occur in got and the last lines must agree.
func matches(want, got []string, shape bool) bool {
	if !shape {
		if len(want) != len(got) {
			return false
		}
		for i := range want {
			if want[i] != got[i] {
				return false
			}
		}
		return true
	}
	if len(want) == 0 || len(got) == 0 || want[len(want)-1] != got[len(got)-1] {
		return false
	}
	have := make(map[string]bool, len(got))
	for _, l := range got {
		have[l] = true
	}
	for _, l := range want {
		if !have[l] {
			return false
		}
	}
	return true
}
