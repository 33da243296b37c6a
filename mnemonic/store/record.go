package store

import "encoding/binary"

// headerLen is the size of a record's fixed header (see the package doc).
const headerLen = 24

// header is a decoded record header.
type header struct {
	cas    uint64
	stamp  uint64
	flags  uint32
	expiry uint32 // absolute unix seconds, 0 never
}

// appendRecord appends the record for h and data to dst.
func appendRecord(dst []byte, h header, data ...[]byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, h.cas)
	dst = binary.LittleEndian.AppendUint64(dst, h.stamp)
	dst = binary.LittleEndian.AppendUint32(dst, h.flags)
	dst = binary.LittleEndian.AppendUint32(dst, h.expiry)
	for _, d := range data {
		dst = append(dst, d...)
	}
	return dst
}

// decodeRecord splits rec into header and data. data aliases rec. ok is
// false for a record too short to hold a header, which only corruption
// produces; callers treat it as a miss.
func decodeRecord(rec []byte) (h header, data []byte, ok bool) {
	if len(rec) < headerLen {
		return header{}, nil, false
	}
	h.cas = binary.LittleEndian.Uint64(rec[0:])
	h.stamp = binary.LittleEndian.Uint64(rec[8:])
	h.flags = binary.LittleEndian.Uint32(rec[16:])
	h.expiry = binary.LittleEndian.Uint32(rec[20:])
	return h, rec[headerLen:], true
}

// clampExpiry fits an absolute unix time into the record's u32. Times past
// 2106 are stored as the largest value: far enough to mean "much later".
func clampExpiry(abs int64) uint32 {
	switch {
	case abs <= 0:
		return 0
	case abs > 0xffffffff:
		return 0xffffffff
	}
	return uint32(abs)
}
