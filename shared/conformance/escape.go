package conformance

import (
	"fmt"
	"strconv"
	"strings"
)

// maxRepeat bounds the N of a \{X*N} escape, so a typo cannot ask for
// gigabytes.
const maxRepeat = 64 << 20

// runMin is the shortest run of equal bytes rendered as \{X*N}.
const runMin = 32

// lookupFunc resolves a script variable ("cas1", "now").
type lookupFunc func(name string) (uint64, bool)

// unescape turns one line of script text into bytes, appending to dst. It
// reports cont when the line ends with a lone backslash (no line ending
// wanted). lookup may be nil when variables are not allowed.
func unescape(dst []byte, s string, lookup lookupFunc) (out []byte, cont bool, err error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '$' && i+1 < len(s) && isNameStart(s[i+1]):
			name, delta, n, err := parseVar(s[i+1:])
			if err != nil {
				return dst, false, err
			}
			if lookup == nil {
				return dst, false, fmt.Errorf("variable $%s not allowed here", name)
			}
			v, ok := lookup(name)
			if !ok {
				return dst, false, fmt.Errorf("unknown variable $%s", name)
			}
			dst = strconv.AppendUint(dst, v+uint64(delta), 10)
			i += n
		case c != '\\':
			dst = append(dst, c)
		case i+1 == len(s):
			return dst, true, nil
		default:
			i++
			switch e := s[i]; e {
			case '\\', '$', '"':
				dst = append(dst, e)
			case 'r':
				dst = append(dst, '\r')
			case 'n':
				dst = append(dst, '\n')
			case 't':
				dst = append(dst, '\t')
			case '0':
				dst = append(dst, 0)
			case 'x':
				if i+3 > len(s) {
					return dst, false, fmt.Errorf("short \\x escape")
				}
				b, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return dst, false, fmt.Errorf("bad \\x escape %q", s[i-1:i+3])
				}
				dst = append(dst, byte(b))
				i += 2
			case '{':
				end := strings.IndexByte(s[i:], '}')
				if end < 0 {
					return dst, false, fmt.Errorf("unterminated \\{ escape")
				}
				inner := s[i+1 : i+end]
				star := strings.LastIndexByte(inner, '*')
				if star < 0 {
					return dst, false, fmt.Errorf("\\{%s} lacks *N", inner)
				}
				n, err := strconv.Atoi(inner[star+1:])
				if err != nil || n < 0 || n > maxRepeat {
					return dst, false, fmt.Errorf("bad repeat count in \\{%s}", inner)
				}
				unit, cont, err := unescape(nil, inner[:star], nil)
				if err != nil || cont || len(unit) == 0 {
					return dst, false, fmt.Errorf("bad repeated text in \\{%s}", inner)
				}
				for ; n > 0; n-- {
					dst = append(dst, unit...)
				}
				i += end
			default:
				return dst, false, fmt.Errorf("unknown escape \\%c", e)
			}
		}
	}
	return dst, false, nil
}

func isNameStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isNameChar(c byte) bool {
	return isNameStart(c) || '0' <= c && c <= '9'
}

// parseVar parses "name[+N|-N]" at the start of s (after the '$') and
// returns how many bytes it used.
func parseVar(s string) (name string, delta int64, n int, err error) {
	for n < len(s) && isNameChar(s[n]) {
		n++
	}
	name = s[:n]
	if n < len(s) && (s[n] == '+' || s[n] == '-') && n+1 < len(s) && '0' <= s[n+1] && s[n+1] <= '9' {
		j := n + 1
		for j < len(s) && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		d, perr := strconv.ParseInt(s[n+1:j], 10, 64)
		if perr != nil {
			return name, 0, 0, fmt.Errorf("bad offset after $%s", name)
		}
		if s[n] == '-' {
			d = -d
		}
		delta = d
		n = j
	}
	return name, delta, n, nil
}

// escapeByte appends the script form of one byte. quoted also escapes '"'
// (inside a quoted string).
func escapeByte(dst []byte, c byte, quoted bool) []byte {
	switch {
	case c == '\\':
		return append(dst, '\\', '\\')
	case c == '$':
		return append(dst, '\\', '$')
	case c == '"' && quoted:
		return append(dst, '\\', '"')
	case c == '\r':
		return append(dst, '\\', 'r')
	case c == '\n':
		return append(dst, '\\', 'n')
	case c == '\t':
		return append(dst, '\\', 't')
	case c == 0:
		return append(dst, '\\', '0')
	case c < 0x20 || c >= 0x7f:
		const hex = "0123456789abcdef"
		return append(dst, '\\', 'x', hex[c>>4], hex[c&15])
	}
	return append(dst, c)
}

// escape renders b in script form: printable ASCII as is, everything else
// escaped, runs of runMin or more equal bytes as \{X*N}. Unless quoted, a
// trailing space is written \x20 so that editors cannot strip it.
func escape(b []byte, quoted bool) string {
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		j := i + 1
		for j < len(b) && b[j] == b[i] {
			j++
		}
		if j-i >= runMin {
			out = append(out, '\\', '{')
			switch b[i] {
			case '*', '}', '"':
				out = append(out, '\\', 'x')
				out = strconv.AppendUint(out, uint64(b[i])>>4, 16)
				out = strconv.AppendUint(out, uint64(b[i])&15, 16)
			default:
				out = escapeByte(out, b[i], quoted)
			}
			out = append(out, '*')
			out = strconv.AppendInt(out, int64(j-i), 10)
			out = append(out, '}')
			i = j
			continue
		}
		for ; i < j; i++ {
			if !quoted && i == len(b)-1 && (b[i] == ' ') {
				out = append(out, `\x20`...)
				continue
			}
			out = escapeByte(out, b[i], quoted)
		}
	}
	return string(out)
}

// escapeLine renders one reply line. Lines that would read as part of the
// script syntax ("----", "[closed]", empty-looking) are disambiguated.
func escapeLine(b []byte) string {
	s := escape(b, false)
	switch {
	case s == separator:
		return `\x2d---`
	case s == closedMarker:
		return `\x5bclosed]`
	case s == timeoutMarker:
		return `\x5btimeout]`
	}
	return s
}
