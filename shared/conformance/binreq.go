package conformance

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// opcodeByName is the inverse of opcodeNames.
func opcodeByName(name string) (byte, bool) {
	for op, n := range opcodeNames {
		if n == name {
			return op, true
		}
	}
	if strings.HasPrefix(name, "0x") {
		v, err := strconv.ParseUint(name[2:], 16, 8)
		if err == nil {
			return byte(v), true
		}
	}
	return 0, false
}

// splitFields splits a sendbin line into words at spaces outside double
// quotes. Backslash escapes inside quotes are kept for unescape.
func splitFields(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			cur.WriteByte(c)
			cur.WriteByte(line[i+1])
			i++
		case c == '"':
			inQuote = !inQuote
			cur.WriteByte(c)
			have = true
		case c == ' ' && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote")
	}
	if have {
		out = append(out, cur.String())
	}
	return out, nil
}

// fieldBytes unescapes a field value, removing its quotes if any.
func fieldBytes(v string, lookup lookupFunc) ([]byte, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	b, cont, err := unescape(nil, v, lookup)
	if err == nil && cont {
		err = fmt.Errorf("trailing backslash")
	}
	return b, err
}

// fieldNumber parses a numeric field: decimal, 0x hex, negative (two's
// complement at the field's width), or a $variable.
func fieldNumber(v string, lookup lookupFunc) (uint64, error) {
	b, err := fieldBytes(v, lookup)
	if err != nil {
		return 0, err
	}
	s := string(b)
	if u, err := strconv.ParseUint(s, 0, 64); err == nil {
		return u, nil
	}
	if i, err := strconv.ParseInt(s, 0, 64); err == nil {
		return uint64(i), nil
	}
	return 0, fmt.Errorf("bad number %q", v)
}

// buildBinLine encodes one sendbin line as a request packet.
func buildBinLine(line string, lookup lookupFunc) ([]byte, error) {
	words, err := splitFields(line)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, nil
	}
	op, ok := opcodeByName(words[0])
	if !ok {
		return nil, fmt.Errorf("unknown opcode %q", words[0])
	}
	var (
		key, value, extras          []byte
		haveExtras                  bool
		magic                       uint64 = magicRequest
		opaque, cas, vbucket, dtype uint64
		keyLen, extLen, bodyLen     = -1, -1, -1
		num                         = map[string]uint64{}
	)
	for _, w := range words[1:] {
		name, val, ok := strings.Cut(w, "=")
		if !ok {
			return nil, fmt.Errorf("field %q is not name=value", w)
		}
		switch name {
		case "key":
			key, err = fieldBytes(val, lookup)
		case "value":
			value, err = fieldBytes(val, lookup)
		case "extras":
			haveExtras = true
			extras, err = hex.DecodeString(val)
		default:
			var n uint64
			n, err = fieldNumber(val, lookup)
			switch name {
			case "magic":
				magic = n
			case "opaque":
				opaque = n
			case "cas":
				cas = n
			case "vbucket":
				vbucket = n
			case "datatype":
				dtype = n
			case "keylen":
				keyLen = int(n)
			case "extlen":
				extLen = int(n)
			case "bodylen":
				bodyLen = int(n)
			case "flags", "exp", "delta", "initial", "level":
				num[name] = n
			default:
				return nil, fmt.Errorf("unknown field %q", name)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("field %s: %v", name, err)
		}
	}
	if !haveExtras {
		extras, err = opcodeExtras(op, num)
		if err != nil {
			return nil, err
		}
	}
	if keyLen < 0 {
		keyLen = len(key)
	}
	if extLen < 0 {
		extLen = len(extras)
	}
	if bodyLen < 0 {
		bodyLen = len(extras) + len(key) + len(value)
	}
	pkt := make([]byte, binHeaderLen, binHeaderLen+len(extras)+len(key)+len(value))
	pkt[0] = byte(magic)
	pkt[1] = op
	binary.BigEndian.PutUint16(pkt[2:], uint16(keyLen))
	pkt[4] = byte(extLen)
	pkt[5] = byte(dtype)
	binary.BigEndian.PutUint16(pkt[6:], uint16(vbucket))
	binary.BigEndian.PutUint32(pkt[8:], uint32(bodyLen))
	binary.BigEndian.PutUint32(pkt[12:], uint32(opaque))
	binary.BigEndian.PutUint64(pkt[16:], cas)
	pkt = append(pkt, extras...)
	pkt = append(pkt, key...)
	pkt = append(pkt, value...)
	return pkt, nil
}

// opcodeExtras builds the extras an opcode carries from named fields.
func opcodeExtras(op byte, num map[string]uint64) ([]byte, error) {
	allowed := map[string]bool{}
	var ex []byte
	switch op {
	case 0x01, 0x02, 0x03, 0x11, 0x12, 0x13: // set add replace (+q)
		allowed["flags"], allowed["exp"] = true, true
		ex = binary.BigEndian.AppendUint32(ex, uint32(num["flags"]))
		ex = binary.BigEndian.AppendUint32(ex, uint32(num["exp"]))
	case 0x05, 0x06, 0x15, 0x16: // incr decr (+q)
		allowed["delta"], allowed["initial"], allowed["exp"] = true, true, true
		ex = binary.BigEndian.AppendUint64(ex, num["delta"])
		ex = binary.BigEndian.AppendUint64(ex, num["initial"])
		ex = binary.BigEndian.AppendUint32(ex, uint32(num["exp"]))
	case 0x1c, 0x1d, 0x1e, 0x23, 0x24: // touch gat gatq gatk gatkq
		allowed["exp"] = true
		ex = binary.BigEndian.AppendUint32(ex, uint32(num["exp"]))
	case 0x08, 0x18: // flush flushq: extras only when an exptime is given
		allowed["exp"] = true
		if v, ok := num["exp"]; ok {
			ex = binary.BigEndian.AppendUint32(ex, uint32(v))
		}
	case 0x1b: // verbosity
		allowed["level"] = true
		ex = binary.BigEndian.AppendUint32(ex, uint32(num["level"]))
	}
	for name := range num {
		if !allowed[name] {
			return nil, fmt.Errorf("field %s does not apply to %s", name, opcodeName(op))
		}
	}
	return ex, nil
}

// buildHexLine decodes one sendhex line: hex digits, "strings", $casN.
func buildHexLine(dst []byte, line string, lookup lookupFunc) ([]byte, error) {
	var digits []byte
	flush := func() error {
		if len(digits)%2 != 0 {
			return fmt.Errorf("odd number of hex digits")
		}
		b, err := hex.DecodeString(string(digits))
		if err != nil {
			return err
		}
		dst = append(dst, b...)
		digits = digits[:0]
		return nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '#':
			i = len(line)
		case c == ' ' || c == '\t' || c == '|':
		case c == '"':
			if err := flush(); err != nil {
				return dst, err
			}
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				return dst, fmt.Errorf("unterminated quote")
			}
			b, err := fieldBytes(line[i:j+1], lookup)
			if err != nil {
				return dst, err
			}
			dst = append(dst, b...)
			i = j
		case c == '$':
			if err := flush(); err != nil {
				return dst, err
			}
			name, delta, n, err := parseVar(line[i+1:])
			if err != nil || name == "" {
				return dst, fmt.Errorf("bad variable at %q", line[i:])
			}
			v, ok := lookup(name)
			if !ok {
				return dst, fmt.Errorf("unknown variable $%s", name)
			}
			dst = binary.BigEndian.AppendUint64(dst, v+uint64(delta))
			i += n
		default:
			digits = append(digits, c)
		}
	}
	return dst, flush()
}
