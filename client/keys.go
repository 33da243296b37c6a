package client

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// wireKey turns an application key into the key sent to the servers and
// hashed onto the ring: "prefix:key", or for a key too long for memcached
// with HashLongKeys on, "prefix:" + base64url(SHA-256(key)) (43 bytes).
//
// The prefix is kept on hashed keys so that an application's keys stay in
// its namespace; the hash covers the application key only, so changing the
// prefix does not change which long keys collide (none do, short of SHA-256).
// Spaces and control characters are refused even in long keys, so that a key
// is valid or not regardless of its length.
func (c *Client) wireKey(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty key", ErrMalformedKey)
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; b <= ' ' || b == 0x7f {
			return "", fmt.Errorf("%w: byte %#x at %d", ErrMalformedKey, b, i)
		}
	}
	pre := c.cfg.Prefix
	if pre != "" {
		pre += ":"
	}
	if len(pre)+len(key) <= MaxKeyLen {
		return pre + key, nil
	}
	if !c.cfg.HashLongKeys {
		return "", fmt.Errorf("%w: %d bytes with prefix, limit %d (set HashLongKeys to hash long keys)",
			ErrMalformedKey, len(pre)+len(key), MaxKeyLen)
	}
	sum := sha256.Sum256([]byte(key))
	return pre + base64.RawURLEncoding.EncodeToString(sum[:]), nil
}
