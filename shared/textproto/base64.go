package textproto

import "encoding/base64"

// Meta commands carry binary keys base64-encoded (flag b). memcached's
// decoder is lenient in ways a client can observe, so decodeKey follows its
// rules instead of encoding/base64's strict ones:
//
//   - bytes outside the alphabet (and '=' counts as inside) are skipped;
//   - the count of alphabet bytes must be a non-zero multiple of four;
//   - decoding stops after the first quantum that holds padding; one or
//     two '=' drop one or two bytes, more is an error;
//   - an empty result is an error.
//
// Encoding is standard padded base64, as memcached prints it.

// b64val maps an alphabet byte to its 6-bit value; '=' is 0 (padding is
// counted separately). ok is false for bytes memcached skips.
func b64val(c byte) (v byte, ok bool) {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A', true
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26, true
	case c >= '0' && c <= '9':
		return c - '0' + 52, true
	case c == '+':
		return 62, true
	case c == '/':
		return 63, true
	case c == '=':
		return 0, true
	}
	return 0, false
}

// decodeKey appends the decoding of src to dst. ok is false where memcached's
// base64_decode returns 0.
func decodeKey(dst, src []byte) (out []byte, ok bool) {
	n := 0
	for _, c := range src {
		if _, in := b64val(c); in {
			n++
		}
	}
	if n == 0 || n%4 != 0 {
		return dst, false
	}
	start := len(dst)
	var block [4]byte
	count, pad := 0, 0
	for _, c := range src {
		v, in := b64val(c)
		if !in {
			continue
		}
		if c == '=' {
			pad++
		}
		block[count] = v
		count++
		if count < 4 {
			continue
		}
		dst = append(dst,
			block[0]<<2|block[1]>>4,
			block[1]<<4|block[2]>>2,
			block[2]<<6|block[3])
		count = 0
		if pad > 0 {
			if pad > 2 {
				return dst[:start], false
			}
			dst = dst[:len(dst)-pad]
			break
		}
	}
	if len(dst) == start {
		return dst, false
	}
	return dst, true
}

// appendKey appends key as memcached echoes it in a k return flag: raw, or
// base64 followed by " b" when the request used b.
func appendKey(dst, key []byte, b64 bool) []byte {
	if !b64 {
		return append(dst, key...)
	}
	dst = base64.StdEncoding.AppendEncode(dst, key)
	return append(dst, " b"...)
}
