package l1

import (
	"crypto/sha256"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// L1 names. memcached reads at most 250 bytes of key token, base64 (b flag)
// for keys with spaces or control bytes, so a binary-protocol key of more
// than 186 such bytes (whose base64 is 252 bytes or more) cannot be sent to it as is. Such a key lives in L1
// under
//
//	hashPrefix + sha256(key)   (34 bytes; sent base64)
//
// and so does every key that itself starts with hashPrefix. That keeps the
// mapping one-to-one: a key kept as is never starts with the prefix, a hashed
// one always does, and two hashed keys meet only on a SHA-256 collision, so
// the header needs no copy of the full key. Chunk keys are derived from the
// client key anyway (chunk.KeyBase). L2 (mnemonic) takes such keys whole.
const hashPrefix = "\x00#"

// maxPlainB64 is the longest key memcached takes base64-encoded (248 bytes).
const maxPlainB64 = 186

// hashedName reports whether key needs a hashed L1 name. The common case
// (a key of at most 186 bytes) costs two byte compares.
func hashedName(key []byte) bool {
	if len(key) >= 2 && key[0] == hashPrefix[0] && key[1] == hashPrefix[1] {
		return true
	}
	return len(key) > maxPlainB64 && !protocol.ValidKey(key, protocol.DefaultMaxKeyLen)
}

// AddKey appends key's L1 name to r's keys (copied into r's arena).
func AddKey(r *protocol.Request, key []byte) {
	if !hashedName(key) {
		r.AddKey(key)
		return
	}
	var b [len(hashPrefix) + sha256.Size]byte
	sum := sha256.Sum256(key)
	r.AddKey(append(append(b[:0], hashPrefix...), sum[:]...))
}
