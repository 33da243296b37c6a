package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/linxGnu/grocksdb"
)

// WAL recovery.
//
// Mode: kPointInTimeRecovery (RocksDB's default, set explicitly so the choice
// is visible). A shard replays its WAL up to the first record it cannot read
// and stops there, so what it holds is exactly the state after some prefix of
// the writes: a write after a lost one is never applied (with
// kSkipAnyCorruptedRecords a lost delete or overwrite could resurrect an
// older value while later writes land). kTolerateCorruptedTailRecords and
// kAbsoluteConsistency refuse to open the shard when a record in the middle
// is damaged, which takes the whole L2 down until an operator deletes the WAL
// by hand; for a cache, whose data can be written again, starting on the
// consistent prefix is the better failure. A kill -9 alone never damages an
// acknowledged record (the WAL append had returned, the bytes are in the page
// cache); what it can leave is a torn final record that was never
// acknowledged. Damage in the middle comes from the disk or power loss
// without sync_writes.
//
// RocksDB does not say how much it skipped, so before opening a shard mnemonic
// reads its WAL files itself (the log format: 32 KiB blocks of records with a
// 7-byte header, CRC32C over type and payload; each logical record a
// WriteBatch that starts with its sequence number and entry count), and after
// opening compares with the shard's last sequence number: every record past
// it was dropped. The result is logged (ERROR when a complete record was
// dropped, since that may be an acknowledged write) and counted.
const walRecoveryMode = grocksdb.PointInTimeRecovery

const (
	walBlockSize  = 32 << 10
	walHeaderSize = 7
	// Physical record types of the (non-recyclable) log format.
	walZeroType   = 0 // preallocated, never written: the end of the data
	walFullType   = 1
	walFirstType  = 2
	walMiddleType = 3
	walLastType   = 4
	// batchHeaderSize is a WriteBatch's sequence (8) and count (4).
	batchHeaderSize = 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walScan is what one WAL file holds, as far as it can be read.
type walScan struct {
	file string
	size int64
	// batches are the complete, checksummed logical records in order.
	batches []walBatch
	// corrupt counts physical records whose checksum or framing failed.
	corrupt int
	// torn is set when the file ends inside a record: a write cut short by
	// the crash (never acknowledged).
	torn bool
}

// walBatch is one WriteBatch: its first sequence number and entry count.
type walBatch struct {
	seq   uint64
	count uint32
	bytes int
}

// scanWAL reads one WAL file. Damaged records are counted and skipped: when
// a header's length is plausible the scan resumes after it, otherwise at the
// next block.
func scanWAL(path string) (walScan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return walScan{}, err
	}
	sc := walScan{file: filepath.Base(path), size: int64(len(b))}
	var frag []byte // the logical record being assembled
	inFrag := false
	for off := 0; off < len(b); {
		left := walBlockSize - off%walBlockSize
		if left < walHeaderSize {
			off += left // block trailer padding
			continue
		}
		if len(b)-off < walHeaderSize {
			sc.torn = !allZero(b[off:])
			break
		}
		h := b[off : off+walHeaderSize]
		n := int(binary.LittleEndian.Uint16(h[4:]))
		typ := h[6]
		if typ == walZeroType && n == 0 && binary.LittleEndian.Uint32(h) == 0 {
			break // preallocated space: the end of what was written
		}
		if walHeaderSize+n > left {
			// A length past the block: the header is damaged.
			sc.corrupt++
			inFrag, frag = false, frag[:0]
			off += left
			continue
		}
		if off+walHeaderSize+n > len(b) {
			sc.torn = true
			break
		}
		payload := b[off+walHeaderSize : off+walHeaderSize+n]
		off += walHeaderSize + n
		crc := crc32.Update(crc32.Update(0, castagnoli, h[6:7]), castagnoli, payload)
		if unmaskCRC(binary.LittleEndian.Uint32(h)) != crc {
			sc.corrupt++
			inFrag, frag = false, frag[:0]
			continue
		}
		switch typ {
		case walFullType:
			sc.addBatch(payload)
			inFrag = false
		case walFirstType:
			frag, inFrag = append(frag[:0], payload...), true
		case walMiddleType, walLastType:
			if !inFrag {
				sc.corrupt++
				continue
			}
			frag = append(frag, payload...)
			if typ == walLastType {
				sc.addBatch(frag)
				inFrag = false
			}
		default:
			sc.corrupt++
		}
	}
	if inFrag {
		sc.torn = true
	}
	return sc, nil
}

func (sc *walScan) addBatch(rec []byte) {
	if len(rec) < batchHeaderSize {
		sc.corrupt++
		return
	}
	sc.batches = append(sc.batches, walBatch{seq: binary.LittleEndian.Uint64(rec),
		count: binary.LittleEndian.Uint32(rec[8:]), bytes: len(rec)})
}

// unmaskCRC undoes the rotation RocksDB applies to stored checksums.
func unmaskCRC(m uint32) uint32 {
	r := m - 0xa282ead8
	return r>>17 | r<<15
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// scanShardWALs reads every WAL file of a shard directory, oldest first.
func scanShardWALs(dir string) ([]walScan, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // zero-padded numbers: lexical order is age order
	var out []walScan
	for _, n := range names {
		sc, err := scanWAL(filepath.Join(dir, n))
		if errors.Is(err, io.EOF) || errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// walLoss is what a shard's recovery did not replay.
type walLoss struct {
	batches int    // complete records past the recovered sequence number
	writes  uint64 // their entries (keys written or deleted)
	bytes   int64
	corrupt int  // records that could not be read at all
	torn    bool // a final record cut short (never acknowledged)
	files   []string
}

// lost compares the WAL read before opening with the sequence number the
// shard recovered to.
func lost(scans []walScan, latest uint64) walLoss {
	var l walLoss
	for _, sc := range scans {
		hit := false
		for _, b := range sc.batches {
			if b.count > 0 && b.seq+uint64(b.count)-1 > latest {
				l.batches++
				l.writes += uint64(b.count)
				l.bytes += int64(b.bytes)
				hit = true
			}
		}
		if sc.corrupt > 0 {
			l.corrupt += sc.corrupt
			hit = true
		}
		if sc.torn {
			l.torn = true
			hit = true
		}
		if hit {
			l.files = append(l.files, sc.file)
		}
	}
	return l
}

// reportRecovery logs and counts what opening sh dropped from its WAL.
func (s *Store) reportRecovery(sh *shard, scans []walScan, db *grocksdb.DB) {
	l := lost(scans, db.GetLatestSequenceNumber())
	switch {
	case l.batches > 0 || l.corrupt > 0:
		s.stats.walDroppedRecords.Add(uint64(l.batches + l.corrupt))
		s.stats.walDroppedWrites.Add(l.writes)
		s.log.Error("WAL recovery dropped records: acknowledged writes may be lost (recovered to the last readable point, kPointInTimeRecovery)",
			"shard", sh.idx, "dir", sh.dir, "files", l.files, "dropped_records", l.batches+l.corrupt,
			"unreadable_records", l.corrupt, "dropped_writes_readable", l.writes, "dropped_bytes", l.bytes,
			"recovered_to_seq", db.GetLatestSequenceNumber())
	case l.torn:
		s.stats.walTornTails.Add(1)
		s.log.Warn("WAL ended in a partly written record (a write cut by the crash, never acknowledged); dropped",
			"shard", sh.idx, "dir", sh.dir, "files", l.files)
	}
}
