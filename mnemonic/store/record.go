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
	// bits and access are the meta state (package item's Bits and Access),
	// kept in the record's extension; a record without one has none.
	bits   uint8
	access uint32 // unix seconds
}

// extFlag in the stored stamp marks a record with the state extension
// (extLen bytes after the fixed header: bits, three zero bytes, access u32
// LE). Stamps are unix nanoseconds, below 2^63 until the year 2262, so the
// bit is free, and records written before the extension existed read as
// having none. A record carries the extension only while a bit is set or
// its last access is not its write (h.access != 0).
const (
	extFlag = 1 << 63
	extLen  = 8
)

// appendRecord appends the record for h and data to dst.
func appendRecord(dst []byte, h header, data ...[]byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, h.cas)
	stamp := h.stamp &^ extFlag
	ext := h.bits != 0 || h.access != 0
	if ext {
		stamp |= extFlag
	}
	dst = binary.LittleEndian.AppendUint64(dst, stamp)
	dst = binary.LittleEndian.AppendUint32(dst, h.flags)
	dst = binary.LittleEndian.AppendUint32(dst, h.expiry)
	if ext {
		dst = append(dst, h.bits, 0, 0, 0)
		dst = binary.LittleEndian.AppendUint32(dst, h.access)
	}
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
	if h.stamp&extFlag == 0 {
		return h, rec[headerLen:], true
	}
	h.stamp &^= extFlag
	if len(rec) < headerLen+extLen {
		return header{}, nil, false
	}
	h.bits = rec[headerLen]
	h.access = binary.LittleEndian.Uint32(rec[headerLen+4:])
	return h, rec[headerLen+extLen:], true
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
