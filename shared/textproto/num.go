package textproto

import "math"

// memcached parses every number on a command line with C's strtol/strtoul
// family wrapped in its safe_strto* helpers (util.c). Their quirks are part
// of the wire behaviour clients see, so the functions below reproduce them
// rather than using strconv:
//
//   - leading C whitespace is skipped and a sign is accepted ("+5", "-0");
//   - the number may be followed by C whitespace and anything after it
//     ("5\tjunk" is 5): tokens are split on ' ' only, so a tab stays inside
//     the token;
//   - a value out of range of the C type is rejected (ERANGE), but
//     safe_strtol then truncates a long to int32 without a range check,
//     so "4294967297" reads as 1;
//   - the unsigned parsers accept "-N" only when the wrapped result is
//     still non-negative as a signed number ("-0" is 0; "-1" is rejected).
//
// A token's end is the C string's NUL (memcached overwrites the separator).

// isCSpace is C isspace in the "C" locale.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// scanC runs the scanning part of strtoull on tok: magnitude, sign, whether
// the magnitude overflowed uint64, and whether the C wrapper would accept
// what follows the digits.
func scanC(tok []byte) (mag uint64, neg, overflow, ok bool) {
	i := 0
	for i < len(tok) && isCSpace(tok[i]) {
		i++
	}
	if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
		neg = tok[i] == '-'
		i++
	}
	start := i
	for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
		d := uint64(tok[i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			overflow = true
		} else {
			mag = mag*10 + d
		}
		i++
	}
	if i == start {
		return 0, false, false, false // no digits: endptr == str
	}
	// safe_strto*: the number must end the token or be followed by space.
	ok = i == len(tok) || isCSpace(tok[i])
	return mag, neg, overflow, ok
}

// safeStrtol is memcached's safe_strtol: strtol, then an unchecked
// conversion of the long to int32.
func safeStrtol(tok []byte) (int32, bool) {
	mag, neg, overflow, ok := scanC(tok)
	if !ok || overflow {
		return 0, false
	}
	var l int64
	if neg {
		if mag > 1<<63 {
			return 0, false // ERANGE
		}
		l = -int64(mag) // mag == 1<<63 wraps to MinInt64, as intended
	} else {
		if mag > math.MaxInt64 {
			return 0, false
		}
		l = int64(mag)
	}
	return int32(l), true
}

// safeStrtoull is memcached's safe_strtoull.
func safeStrtoull(tok []byte) (uint64, bool) {
	mag, neg, overflow, ok := scanC(tok)
	if !ok || overflow {
		return 0, false
	}
	v := mag
	if neg {
		v = -mag // strtoull negates in the unsigned type
	}
	if int64(v) < 0 && neg {
		// "only check for negative signs in the uncommon case when the
		// unsigned number is so big that it's negative as a signed number"
		return 0, false
	}
	return v, true
}

// safeStrtoul is memcached's safe_strtoul: strtoul (64-bit unsigned long),
// the same sign rule, then truncation to uint32.
func safeStrtoul(tok []byte) (uint32, bool) {
	v, ok := safeStrtoull(tok)
	return uint32(v), ok
}
