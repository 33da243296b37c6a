package item

import "strconv"

// ParseCounter reads a stored value as memcached's incr/decr does
// (safe_strtoull on the item data, which ends in "\r\n"): optional leading
// white space, an optional sign, at least one decimal digit without
// overflow, then white space or the end. So " 7", "7 ", "7 junk" and "+7"
// are 7, "7junk" and "" are not numbers. A minus sign is accepted only
// where the result is not negative as an int64: "-0" is 0, "-1" is not a
// number.
func ParseCounter(b []byte) (uint64, bool) {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	neg := false
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	var v uint64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		d := uint64(b[i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false // ERANGE
		}
		v = v*10 + d
		i++
	}
	if i == start {
		return 0, false
	}
	if neg {
		v = -v
		if int64(v) < 0 {
			return 0, false
		}
	}
	if i < len(b) && !isSpace(b[i]) {
		return 0, false
	}
	return v, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// Delta applies incr (wrapping at 2^64, as memcached's uint64_t does) or
// decr (stopping at 0) to v.
func Delta(v, delta uint64, incr bool) uint64 {
	switch {
	case incr:
		return v + delta
	case delta > v:
		return 0
	}
	return v - delta
}

// AppendCounter appends the stored form of counter v replacing old to dst:
// memcached rewrites a counter in place when its digits fit in the old
// value's length, padding the rest with spaces ("100" decr 95 reads back as
// "5  ", " 7" incr 1 as "8 "); a longer number becomes a new item of just
// its digits. incr and decr pad alike.
func AppendCounter(dst []byte, v uint64, old []byte) []byte {
	start := len(dst)
	dst = strconv.AppendUint(dst, v, 10)
	for len(dst)-start < len(old) {
		dst = append(dst, ' ')
	}
	return dst
}

// InPlace reports whether AppendCounter(v, old) rewrote old in place (the
// result has old's length), which keeps memcached's per-item state bits.
func InPlace(v uint64, old []byte) bool {
	n := 1
	for x := v; x >= 10; x /= 10 {
		n++
	}
	return n <= len(old)
}
