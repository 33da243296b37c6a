package server

import "github.com/moneta-cache/moneta/shared/protocol"

// Multi-get replies are streamed. A get line may name 100,000 keys, or one
// 4 MiB item a hundred times; asking the handler for all of it at once
// would make it copy every hit into one Response before a byte is written.
// The text codec therefore returns a long get line as a run of requests of
// at most groupKeys keys each (repeated keys once per group), the server
// answers and writes each before reading the next, and get batching stops
// reading ahead once the batch holds groupKeys keys. groupKeys adapts to
// the hits: after each handler call it is set so that the next call's hits
// should stay under Config.GetGroupBytes (shrinking at once, growing by at
// most a factor of two per call), between 1 and maxGroupKeys.

// groupStreamer is implemented by codecs that return long get lines in
// groups (textproto.ServerCodec).
type groupStreamer interface {
	// SetGroupKeys bounds the keys of the next get request returned.
	SetGroupKeys(n int)
	// Pending reports that the rest of a get line is held by the codec:
	// the next ReadRequest returns it without reading the connection.
	Pending() bool
}

const (
	// maxGroupKeys bounds the keys of one handler call for gets.
	maxGroupKeys = 1024
	// initialGroupKeys is where a process starts, before any hit has
	// been seen: a typical multi-get is one call, and a first call of
	// large items holds at most this many of them.
	initialGroupKeys = 128
)

// adaptGroup sizes the next multi-get group from the last handler call:
// keys were asked for, and the hits took bytes.
func (c *conn) adaptGroup(keys, bytes int) {
	if keys <= 0 {
		return
	}
	target := c.srv.cfg.GetGroupBytes
	next := maxGroupKeys
	if per := bytes / keys; per > 0 {
		next = max(1, min(target/per, maxGroupKeys))
	}
	if next > 2*c.groupKeys {
		next = 2 * c.groupKeys
	}
	if next != c.groupKeys {
		c.groupKeys = next
		c.srv.groupKeys.Store(int64(next))
	}
}

// hitBytes is what the hits of resp hold.
func hitBytes(resp *protocol.Response) int {
	n := 0
	for i := range resp.Hits {
		n += len(resp.Hits[i].Value)
	}
	return n
}

// pending reports that the codec holds the rest of a get line.
func (c *conn) pending() bool {
	return c.gs != nil && c.gs.Pending()
}

// limitKeys bounds the keys of the next get the codec returns.
func (c *conn) limitKeys(n int) {
	if c.gs != nil {
		c.gs.SetGroupKeys(n)
	}
}
