package load

import (
	"encoding/binary"
	"hash/fnv"
)

// Values written by the generator carry their own checksum so a reader can
// tell a correct value from a corrupted, truncated, shifted or misrouted
// one without remembering what was written:
//
//	[0:8)  version (big endian), unique per write
//	[8:16) check = fnv64a(key, version, length)
//	[16:)  filler derived from check, so every byte is covered
//
// Values shorter than MinVerifiable bytes cannot carry the header.
const MinVerifiable = 16

func checksum(key []byte, version uint64, n int) uint64 {
	h := fnv.New64a()
	h.Write(key)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], version)
	binary.BigEndian.PutUint64(b[8:], uint64(n))
	h.Write(b[:])
	return h.Sum64()
}

// FillValue writes a verifiable value for key and version into v.
func FillValue(v, key []byte, version uint64) {
	if len(v) < MinVerifiable {
		for i := range v {
			v[i] = 'x'
		}
		return
	}
	c := checksum(key, version, len(v))
	binary.BigEndian.PutUint64(v[0:8], version)
	binary.BigEndian.PutUint64(v[8:16], c)
	for i := 16; i < len(v); i++ {
		v[i] = byte(c>>(8*(i&7))) ^ byte(i)
	}
}

// CheckValue reports whether v is a value FillValue wrote for key.
func CheckValue(v, key []byte) bool {
	if len(v) < MinVerifiable {
		for _, b := range v {
			if b != 'x' {
				return false
			}
		}
		return true
	}
	version := binary.BigEndian.Uint64(v[0:8])
	c := checksum(key, version, len(v))
	if binary.BigEndian.Uint64(v[8:16]) != c {
		return false
	}
	for i := 16; i < len(v); i++ {
		if v[i] != byte(c>>(8*(i&7)))^byte(i) {
			return false
		}
	}
	return true
}
