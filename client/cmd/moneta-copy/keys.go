package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// A key source sends batches of keys on out until it runs dry, and returns
// the number of lines it skipped because they were not valid memcached keys.
// Each batch is a fresh slice the source does not touch again.
type keySource func(ctx context.Context, batch int, out chan<- [][]byte) (invalid int64, err error)

// linesSource reads one key per line from r (a file or stdin). Blank lines
// are ignored; a line that is not a valid key (spaces, control bytes, over
// 250 bytes) is counted and skipped.
func linesSource(r io.Reader) keySource {
	return func(ctx context.Context, batch int, out chan<- [][]byte) (int64, error) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		var invalid int64
		var b [][]byte
		for sc.Scan() {
			line := bytes.TrimRight(sc.Bytes(), "\r")
			if len(line) == 0 {
				continue
			}
			if !protocol.ValidKey(line, protocol.DefaultMaxKeyLen) {
				invalid++
				continue
			}
			b = append(b, bytes.Clone(line))
			if len(b) == batch {
				if !send(ctx, out, b) {
					return invalid, ctx.Err()
				}
				b = nil
			}
		}
		if err := sc.Err(); err != nil {
			return invalid, fmt.Errorf("reading keys: %w", err)
		}
		if len(b) > 0 && !send(ctx, out, b) {
			return invalid, ctx.Err()
		}
		return invalid, nil
	}
}

func send(ctx context.Context, out chan<- [][]byte, b [][]byte) bool {
	select {
	case out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// chunkKey matches the keys of rend's L1 chunk items ("~" + 22 base64url
// characters + "." + base-36 index, package rend/chunk): they are not client
// keys and must not be copied.
var chunkKey = regexp.MustCompile(`^~[A-Za-z0-9_-]{22}\.[0-9a-z]+$`)

// l1Source lists the keys in the source host's L1 memcached with
// "lru_crawler metadump all". That is the host's hot set only: keys that
// live only in mnemonic (L2) are not listed, so this warms a target's hot
// set but is not a full copy.
func l1Source(address string) keySource {
	return func(ctx context.Context, batch int, out chan<- [][]byte) (int64, error) {
		network, a, err := addr.Parse(address)
		if err != nil {
			return 0, fmt.Errorf("-keys-from-l1: %w", err)
		}
		var d net.Dialer
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := d.DialContext(dctx, network, a)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("-keys-from-l1: %w", err)
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		if _, err := io.WriteString(c, "lru_crawler metadump all\r\n"); err != nil {
			return 0, fmt.Errorf("-keys-from-l1: %w", err)
		}
		br := bufio.NewReaderSize(c, 64<<10)
		var invalid int64
		var b [][]byte
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return invalid, fmt.Errorf("-keys-from-l1: metadump: %w", err)
			}
			line = bytes.TrimRight(line, "\r\n")
			if bytes.Equal(line, []byte("END")) {
				break
			}
			if bytes.HasPrefix(line, []byte("BUSY")) || bytes.HasPrefix(line, []byte("ERROR")) ||
				bytes.HasPrefix(line, []byte("CLIENT_ERROR")) || bytes.HasPrefix(line, []byte("SERVER_ERROR")) {
				return invalid, fmt.Errorf("-keys-from-l1: memcached answered %q", line)
			}
			k, ok := metadumpKey(line)
			if !ok || chunkKey.Match(k) {
				if !ok {
					invalid++
				}
				continue
			}
			b = append(b, k)
			if len(b) == batch {
				if !send(ctx, out, b) {
					return invalid, ctx.Err()
				}
				b = nil
			}
		}
		if len(b) > 0 && !send(ctx, out, b) {
			return invalid, ctx.Err()
		}
		return invalid, nil
	}
}

// metadumpKey extracts and URI-decodes the key of one metadump line
// ("key=<uri-encoded> exp=... la=... ..."). It returns a fresh slice.
func metadumpKey(line []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(line, []byte("key="))
	if !ok {
		return nil, false
	}
	enc, _, _ := bytes.Cut(rest, []byte(" "))
	k, err := url.PathUnescape(string(enc))
	if err != nil || !protocol.ValidKey([]byte(k), protocol.DefaultMaxKeyLen) {
		return nil, false
	}
	return []byte(k), true
}
