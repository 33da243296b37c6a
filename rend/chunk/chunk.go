// Package chunk is the layout rend uses to store one client item in L1
// (a stock memcached) as a header item plus fixed-size chunk items.
//
// Why chunks: memcached's slab allocator wastes memory when value sizes drift
// between slab classes and refuses items above its item size limit (1 MiB by
// default). Storing every value as chunks of one fixed size keeps almost all
// of L1 in one slab class and lets rend accept values far larger than L1's
// limit.
//
// The header item lives under the client's own key. Its value is:
//
//	offset size field
//	0      2    magic "RC"
//	2      1    format version (1)
//	3      1    kind: 0 inline (value follows the header), 1 chunked, in
//	            the low 4 bits; the high 4 bits are the item's meta state
//	            (shared/item's Bits: stale, win token sent, fetched)
//	4      4    client flags            (big endian)
//	8      4    total value length      (big endian)
//	12     4    chunk size              (big endian; data bytes per chunk)
//	16     4    chunk count             (big endian; 0 when inline)
//	20     8    absolute expiry, unix s (big endian; 0 = never)
//	28     8    version (the CAS a client sees: L2's version)
//	36     16   token (random per write)
//	52     ...  inline value (kind 0 only; exactly "length" bytes)
//
// Format version 2 is version 1 with 8 more bytes after the token (the
// inline value follows them): the item's last access, unix seconds (big
// endian), for an L1-only header rewritten while keeping an older last
// access than the rewrite (Header.Access). Only such rewrites write it;
// every other header is version 1, so the hot path's headers are as
// before and headers written before version 2 existed still decode.
//
// Chunk i of a chunked item lives under the key AppendChunkKey(KeyBase(key,
// token), i), "~" + a 22-byte hash of key and token + "." + i in base 36, and
// its value is the 16-byte token followed by the data bytes
// [i*size, min((i+1)*size, length)).
//
// Consistency rules (see STYLE practice 10):
//   - A writer stores every chunk before the header, so a reader that finds a
//     header can expect the chunks it names to exist.
//   - Chunk keys are derived from the client key AND the write's token, so a
//     new write of the same key never overwrites the chunks of the version a
//     concurrent reader is assembling; two racing writers (for example two L1
//     fills with add) cannot mix their chunks either: the header that wins
//     names only its own chunks.
//   - A reader accepts an item only if the header decodes, and every chunk is
//     present, carries the header's token and has exactly the expected length.
//     Anything else is a miss, never partial or shifted data.
//
// Derived keys are 1 + 22 + 1 + up to 8 bytes long whatever the client key's
// length (a hash of key and token), so every valid client key (up to 250
// bytes) works within memcached's 250-byte key limit.
//
// Ownership: every Append function writes into the dst it is given and never
// keeps or aliases its arguments; Decode returns a Header whose Inline slice
// points into the buffer passed to it.
package chunk

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
)

// Layout constants.
const (
	// TokenSize is the length of the random token in a header and in every chunk.
	TokenSize = 16
	// HeaderSize is the encoded header length without an inline value
	// (format version 1; a version 2 header is accessSize longer).
	HeaderSize = 52
	accessSize = 8
	// MaxChunkKeyLen is the longest key ChunkKey produces.
	MaxChunkKeyLen = 1 + 22 + 1 + 8

	magic0, magic1 = 'R', 'C'
	formatVersion  = 1
	formatAccess   = 2 // version 1 plus Access (see the package doc)

	kindInline  = 0
	kindChunked = 1
)

// DefaultChunkSize is the data bytes per chunk. A full chunk item is then
// 48 (memcached 1.6's item header) + 8 (CAS) + 33 (key of at most 32 bytes,
// NUL) + 16 (token) + 1064 + 2 (CRLF) = 1171 bytes, which fits memcached's
// 1184-byte slab class (the "~1 KiB" class with the default growth factor
// 1.25) with 13 bytes to spare. It is that large, not 1024, so that values
// of up to 1028 bytes are inline (see Inline): a 1 KiB value is one item
// and one get, not a header and a chunk read in two round trips.
const DefaultChunkSize = 1064

// Token identifies one write of one key.
type Token [TokenSize]byte

// NewToken returns a random token. Random (not a counter) so that chunk keys
// are unpredictable and a token from an earlier rend process can never be
// reissued by a later one.
func NewToken() Token {
	var t Token
	rand.Read(t[:]) // crypto/rand.Read never fails (Go 1.24+).
	return t
}

// Header describes one item stored in L1.
type Header struct {
	Flags     uint32
	Length    int
	ChunkSize int
	// Chunks is 0 for an inline item.
	Chunks  int
	Exptime int64 // absolute unix seconds, 0 = never
	Version uint64
	// State is the item's meta state (shared/item.Bits, 4 bits), kept in
	// L1-only mode where the header is the record.
	State uint8
	// Access is, for a header rewritten in L1-only mode while the item's
	// last access stays older than the rewrite (md I, a first fetch by
	// touch or gat), that last access in unix seconds; 0 for every other
	// header. memcached starts the rewritten header item's own count over,
	// so until memcached counts a fetch of it this is the item's (see
	// rend/orca/l1only.go).
	Access int64
	Token  Token
	// Inline is the value of an inline item (Decode: points into the
	// decoded buffer; valid as long as that buffer).
	Inline []byte
}

// Inline reports whether a value of n bytes is stored inline (in the header
// item) for the given chunk size: it is when the whole header item is no
// larger than one chunk item, so small values cost one item and one get.
func Inline(n, chunkSize int) bool {
	return HeaderSize+n <= chunkSize+TokenSize
}

// Count is the number of chunks for a chunked value of n bytes.
func Count(n, chunkSize int) int {
	if n == 0 {
		return 0
	}
	return (n + chunkSize - 1) / chunkSize
}

// Span returns the [start, end) range of value bytes held by chunk i.
func (h *Header) Span(i int) (start, end int) {
	start = i * h.ChunkSize
	end = start + h.ChunkSize
	if end > h.Length {
		end = h.Length
	}
	return start, end
}

// NewHeader prepares the header for writing value (not retained) with a
// fresh token: inline if it fits, else chunked with chunkSize.
func NewHeader(value []byte, flags uint32, exptime int64, version uint64, chunkSize int) Header {
	h := Header{
		Flags:     flags,
		Length:    len(value),
		ChunkSize: chunkSize,
		Exptime:   exptime,
		Version:   version,
		Token:     NewToken(),
	}
	if Inline(len(value), chunkSize) {
		h.Inline = value
	} else {
		h.Chunks = Count(len(value), chunkSize)
	}
	return h
}

// AppendHeader appends the encoded header item value (with the inline value
// for an inline header) to dst.
func AppendHeader(dst []byte, h *Header) []byte {
	kind := byte(kindChunked)
	if h.Chunks == 0 {
		kind = kindInline
	}
	ver := byte(formatVersion)
	if h.Access != 0 {
		ver = formatAccess
	}
	dst = append(dst, magic0, magic1, ver, kind|h.State<<4)
	dst = binary.BigEndian.AppendUint32(dst, h.Flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.Length))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.ChunkSize))
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.Chunks))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.Exptime))
	dst = binary.BigEndian.AppendUint64(dst, h.Version)
	dst = append(dst, h.Token[:]...)
	if h.Access != 0 {
		dst = binary.BigEndian.AppendUint64(dst, uint64(h.Access))
	}
	if kind == kindInline {
		dst = append(dst, h.Inline...)
	}
	return dst
}

// AppendChunk appends the value of chunk i of value (the whole client
// value) to dst: token then data.
func AppendChunk(dst []byte, h *Header, value []byte, i int) []byte {
	start, end := h.Span(i)
	dst = append(dst, h.Token[:]...)
	return append(dst, value[start:end]...)
}

// Decoding errors. Every one of them means "treat as a miss".
var (
	ErrNotHeader = errors.New("chunk: not a rend header")
	ErrCorrupt   = errors.New("chunk: header fields inconsistent")
	ErrTooLarge  = errors.New("chunk: length above the configured maximum")
	ErrToken     = errors.New("chunk: token mismatch")
	ErrLength    = errors.New("chunk: chunk length mismatch")
)

// Decode parses a header item value. maxLength bounds the length field so a
// corrupt header can never make the reader allocate more than the configured
// item size. The returned Header's Inline aliases b.
func Decode(b []byte, maxLength int) (Header, error) {
	var h Header
	if len(b) < HeaderSize || b[0] != magic0 || b[1] != magic1 || (b[2] != formatVersion && b[2] != formatAccess) {
		return h, ErrNotHeader
	}
	kind := b[3] & 0x0f
	h.State = b[3] >> 4
	h.Flags = binary.BigEndian.Uint32(b[4:])
	length := binary.BigEndian.Uint32(b[8:])
	size := binary.BigEndian.Uint32(b[12:])
	count := binary.BigEndian.Uint32(b[16:])
	h.Exptime = int64(binary.BigEndian.Uint64(b[20:]))
	h.Version = binary.BigEndian.Uint64(b[28:])
	copy(h.Token[:], b[36:HeaderSize])
	if uint64(length) > uint64(maxLength) {
		return h, ErrTooLarge
	}
	h.Length = int(length)
	h.ChunkSize = int(size)
	h.Chunks = int(count)
	rest := b[HeaderSize:]
	if b[2] == formatAccess {
		if len(rest) < accessSize {
			return h, ErrCorrupt
		}
		h.Access = int64(binary.BigEndian.Uint64(rest))
		rest = rest[accessSize:]
		if h.Access <= 0 {
			return h, ErrCorrupt
		}
	}
	switch kind {
	case kindInline:
		if count != 0 || len(rest) != h.Length {
			return h, ErrCorrupt
		}
		h.Inline = rest
	case kindChunked:
		// The count must be exactly what length and size imply: a header
		// whose count disagrees would otherwise return truncated or
		// zero-padded data as a hit (one of Rend's defects).
		if size == 0 || len(rest) != 0 || count == 0 || h.Chunks != Count(h.Length, h.ChunkSize) {
			return h, ErrCorrupt
		}
	default:
		return h, ErrNotHeader
	}
	if h.Exptime < 0 {
		return h, ErrCorrupt
	}
	return h, nil
}

// CheckChunk verifies the value of chunk i against h and returns its data
// (aliasing b).
func CheckChunk(h *Header, i int, b []byte) ([]byte, error) {
	if len(b) < TokenSize || [TokenSize]byte(b[:TokenSize]) != h.Token {
		return nil, ErrToken
	}
	start, end := h.Span(i)
	data := b[TokenSize:]
	if len(data) != end-start {
		return nil, ErrLength
	}
	return data, nil
}

// Base is the per-(key, token) part of every chunk key, computed once per
// item so deriving each chunk key costs no hashing.
type Base [22]byte

// KeyBase derives the chunk key base of key and token: the first 128 bits of
// SHA-256(key || token), base64url without padding. Hashing the key keeps
// chunk keys short for any client key; hashing the token gives each write
// its own chunk keys (see the package doc for why).
func KeyBase(key []byte, t *Token) Base {
	s := sha256.New()
	s.Write(key)
	s.Write(t[:])
	var sum [sha256.Size]byte
	s.Sum(sum[:0])
	var b Base
	base64.RawURLEncoding.Encode(b[:], sum[:16])
	return b
}

// AppendChunkKey appends the key of chunk i to dst: "~" base "." i.
func AppendChunkKey(dst []byte, b *Base, i int) []byte {
	dst = append(dst, '~')
	dst = append(dst, b[:]...)
	dst = append(dst, '.')
	return strconv.AppendUint(dst, uint64(i), 36)
}
