package store

import (
	"time"

	mcitem "github.com/moneta-cache/moneta/shared/item"
)

// Side state: where a large item's meta state lives.
//
// A state change (an item's first fetch, a W token, a last access a minute
// on) used to rewrite the item's whole record, which for a 1 MiB value is
// a 1 MiB write per first read (BenchmarkStateWrite: +3.8 ms CPU per read,
// against about +11 µs for 1 KiB; about +0.5 ms with the side record,
// mostly the re-read under the key's lock). Items whose value is larger
// than sideStateMin keep that state in a small side record instead, so a
// state write costs the same whatever the value's size; smaller ones keep
// rewriting their record (one lookup per read, no second one).
//
// The side record lives in the same shard under sideKey(key): the key, NUL
// padding and the key's length, 252 bytes, longer than any client key
// (protocol.DefaultMaxKeyLen, 250), so it cannot collide with one. Its value
// is a record with the item's CAS, stamp and expiry and no data, so the
// expiry filter and flush_all drop it with its item. It counts only while
// its CAS is the item's: a new version makes it stale without a write.
// Within one version the state only grows (bits are set, never cleared,
// while the CAS stays; the access time only moves on), so a reader merges
// record and side record with OR and max. Left over when its item is
// overwritten by a small value or deleted, it goes with the item's expiry
// or when FIFO compaction drops its file.
const sideStateMin = 4 << 10

const sideKeyLen = 252

// sideKey appends key's side record key to dst.
func sideKey(dst, key []byte) []byte {
	dst = append(dst, key...)
	for len(dst) < sideKeyLen-1 {
		dst = append(dst, 0)
	}
	return append(dst, byte(len(key)))
}

// hasSideState reports whether an item whose value is n bytes keeps its
// state in a side record.
func hasSideState(n int) bool { return n > sideStateMin }

// mergeSide folds key's side record, if any and of the same version, into
// m (an item of more than sideStateMin bytes). A failed lookup leaves m as
// the record says: the state is best effort, the value is not.
func (s *Store) mergeSide(sh *shard, key []byte, m *mcitem.Item, now time.Time) {
	var kb [sideKeyLen]byte
	side, ok, err := s.lookup(sh, sideKey(kb[:0], key), now)
	if err != nil || !ok {
		return
	}
	defer side.release()
	if side.h.cas != m.CAS || side.h.access == 0 {
		return
	}
	m.Bits |= mcitem.Bits(side.h.bits)
	m.Access = max(m.Access, int64(side.h.access))
}

// putSide writes the state of n (a state-only outcome of a large item
// whose record has stamp) as key's side record.
func (s *Store) putSide(sh *shard, key []byte, n *mcitem.Item, stamp uint64) error {
	var kb [sideKeyLen]byte
	h := header{cas: n.CAS, stamp: stamp, expiry: clampExpiry(n.Exptime), bits: uint8(n.Bits),
		access: uint32(max(n.Access, 1))}
	return s.put(sh, sideKey(kb[:0], key), h, nil)
}
