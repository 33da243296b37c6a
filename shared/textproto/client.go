package textproto

import "strconv"

// Helpers for building text requests (load generators, tests). They append
// to dst and never allocate when dst has room.

// ValidTextKey reports whether k can be sent as a key on memcached's text
// protocol and read back unchanged: 1..maxLen bytes with no space, newline
// or NUL (memcached splits lines on ' ' only and parses C strings, so other
// control bytes such as a tab are part of the key). This is looser than
// protocol.ValidKey, which also rejects control characters; use that one
// for keys that must travel over every protocol.
func ValidTextKey(k []byte, maxLen int) bool {
	if len(k) == 0 || len(k) > maxLen {
		return false
	}
	for _, c := range k {
		if c == ' ' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// AppendGet appends "get <key> <key>...\r\n" (cmd "get", "gets", or any
// other read command name).
func AppendGet(dst []byte, cmd string, keys ...[]byte) []byte {
	dst = append(dst, cmd...)
	for _, k := range keys {
		dst = append(dst, ' ')
		dst = append(dst, k...)
	}
	return append(dst, "\r\n"...)
}

// AppendSet appends "set <key> <flags> <exptime> <len>\r\n<value>\r\n".
// cmd is "set", "add", "replace", "append" or "prepend".
func AppendSet(dst []byte, cmd string, key []byte, flags uint32, exptime int64, value []byte, noreply bool) []byte {
	dst = append(dst, cmd...)
	dst = append(dst, ' ')
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(flags), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, exptime, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(value)), 10)
	if noreply {
		dst = append(dst, " noreply"...)
	}
	dst = append(dst, "\r\n"...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// AppendMetaGet appends "mg <key> <flags>\r\n"; flags is the flag list as
// sent, for example "v f t".
func AppendMetaGet(dst []byte, key []byte, flags string) []byte {
	dst = append(dst, "mg "...)
	dst = append(dst, key...)
	if flags != "" {
		dst = append(dst, ' ')
		dst = append(dst, flags...)
	}
	return append(dst, "\r\n"...)
}
