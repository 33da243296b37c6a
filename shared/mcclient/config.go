package mcclient

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
)

// Defaults for the zero fields of a Config.
const (
	DefaultConns           = 2
	DefaultMaxInFlight     = 1024
	DefaultDialTimeout     = time.Second
	DefaultRequestTimeout  = time.Second
	DefaultBackoffMin      = 10 * time.Millisecond
	DefaultBackoffMax      = 2 * time.Second
	DefaultMaxValueSize    = 64 << 20
	DefaultBreakerFailures = 3
	DefaultBreakerOpen     = time.Second
)

// Upper bounds that catch configuration mistakes (a byte count typed where a
// count was meant) before they turn into thousands of sockets or goroutines.
const (
	maxConns       = 1024
	maxMaxInFlight = 1 << 20
)

// Config configures a Client. Build it in main (TOML + flags), call
// EnsureDefaults, and pass it to New, which validates it.
type Config struct {
	// Addr is the server: "host:port" or "unix:/path" (see package addr).
	Addr string
	// Conns is the number of connections kept to the server.
	Conns int
	// WriteConns, if between 1 and Conns, sends every call that starts
	// with a command other than a read (get, gets, gat, gats, mg) on the
	// first WriteConns connections only (the least loaded of them); reads
	// use all of them. The server then finds the concurrent writes
	// together, several per socket read and reply: mnemonic commits a run
	// of sets as one WriteBatch per shard, and memcached serves a write run
	// in one worker thread's pass while its other threads keep the reads.
	// If none of those connections is up, a write uses any. 0: all.
	WriteConns int
	// MaxInFlight bounds the calls (a Handle, or a whole Do batch) queued or
	// awaiting a reply on one connection. Callers block, bounded by their
	// context and RequestTimeout, while every connection is full.
	MaxInFlight int
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
	// RequestTimeout bounds how long a call waits for its reply; it then fails
	// with ErrTimeout. A connection that answers nothing for this long while
	// requests are outstanding is dropped and replaced.
	RequestTimeout time.Duration
	// BackoffMin and BackoffMax bound the delay between reconnection
	// attempts; the delay doubles after each failure, with jitter.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// MaxValueSize is the largest value accepted in a reply, and the largest
	// value sent (a larger one is answered locally with StatusTooLarge). A
	// reply announcing more is skipped without allocating and fails its call.
	MaxValueSize int
	// MaxBase64KeyLen is the longest base64 key token the server takes
	// (keys with spaces or control bytes are sent base64-encoded). 0 means
	// 250, memcached's limit, which leaves such keys at most 186 bytes;
	// mnemonic takes base64.StdEncoding.EncodedLen(250) = 336, so every
	// key of up to 250 bytes reaches it. Longer keys are refused locally.
	MaxBase64KeyLen int
	// BreakerFailures is how many consecutive timed-out calls open the
	// circuit breaker (breaker.go); 0 means
	// DefaultBreakerFailures, a negative value turns the breaker off.
	BreakerFailures int
	// BreakerStall opens the breaker as soon as one connection has had
	// calls outstanding and answered none for this long (0: RequestTimeout).
	// It is also how long a half-open probe may take.
	BreakerStall time.Duration
	// BreakerOpen is how long the breaker stays open before it probes.
	BreakerOpen time.Duration
	// ClassicGets sends a get or gets of many keys (8 or more) as classic
	// multi-key "gets" lines instead of one meta mg per key: memcached
	// answers many keys in one command for less CPU, but classic replies
	// carry no TTL, so such hits have Exptime 0 (and no W/X/Z flags). For
	// callers that keep the expiry elsewhere (rend's L1 headers); gat and
	// shorter gets always use mg.
	ClassicGets bool
	// Writes says who writes each connection's requests to the socket
	// (the zero value, WriteCombine, is the default).
	Writes WriteMode
	// RuntimeSyscalls makes the connections read and write through the
	// runtime's syscall path (the net package's Read, syscall.Write)
	// instead of raw syscalls (package rawio, the default).
	RuntimeSyscalls bool
	// Logger receives connection events (connect, drop, reconnect). Nil
	// discards them.
	Logger *slog.Logger
}

// WriteMode is who writes a connection's requests to its socket.
type WriteMode uint8

const (
	// WriteCombine: callers append their commands to the connection's
	// buffer under a lock, and the first one to find nobody writing writes
	// for all who joined meanwhile. No goroutine hand-off per call; a
	// connection's writer goroutine only finishes writes the socket did not
	// take at once.
	WriteCombine WriteMode = iota
	// WriteHandoff: callers leave their commands in the buffer and a writer
	// goroutine per connection writes them (one wake-up per batch).
	WriteHandoff
)

// String is the mode's name, as ParseWriteMode takes it.
func (m WriteMode) String() string {
	switch m {
	case WriteCombine:
		return "combine"
	case WriteHandoff:
		return "handoff"
	}
	return fmt.Sprintf("WriteMode(%d)", uint8(m))
}

// ParseWriteMode reads "combine" or "handoff".
func ParseWriteMode(s string) (WriteMode, error) {
	switch s {
	case "combine":
		return WriteCombine, nil
	case "handoff":
		return WriteHandoff, nil
	}
	return 0, fmt.Errorf("mcclient: write mode %q: want combine or handoff", s)
}

// EnsureDefaults fills zero fields with the defaults.
func (c *Config) EnsureDefaults() {
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.MaxBase64KeyLen == 0 {
		c.MaxBase64KeyLen = maxKeyLen
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerStall == 0 {
		c.BreakerStall = c.RequestTimeout
	}
	if c.BreakerOpen == 0 {
		c.BreakerOpen = DefaultBreakerOpen
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field. Zero fields are accepted: they
// stand for the defaults EnsureDefaults fills in.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("mcclient: Addr is required")
	}
	if _, _, err := addr.Parse(c.Addr); err != nil {
		return fmt.Errorf("mcclient: %w", err)
	}
	switch {
	case c.Conns < 0 || c.Conns > maxConns:
		return fmt.Errorf("mcclient: Conns %d out of range 1..%d", c.Conns, maxConns)
	case c.WriteConns < 0:
		return fmt.Errorf("mcclient: negative WriteConns %d", c.WriteConns)
	case c.MaxInFlight < 0 || c.MaxInFlight > maxMaxInFlight:
		return fmt.Errorf("mcclient: MaxInFlight %d out of range 1..%d", c.MaxInFlight, maxMaxInFlight)
	case c.DialTimeout < 0:
		return fmt.Errorf("mcclient: negative DialTimeout %v", c.DialTimeout)
	case c.RequestTimeout < 0:
		return fmt.Errorf("mcclient: negative RequestTimeout %v", c.RequestTimeout)
	case c.BackoffMin < 0 || c.BackoffMax < 0:
		return fmt.Errorf("mcclient: negative backoff %v..%v", c.BackoffMin, c.BackoffMax)
	case c.BackoffMin > 0 && c.BackoffMax > 0 && c.BackoffMin > c.BackoffMax:
		return fmt.Errorf("mcclient: BackoffMin %v above BackoffMax %v", c.BackoffMin, c.BackoffMax)
	case c.BreakerStall < 0 || c.BreakerOpen < 0:
		return fmt.Errorf("mcclient: negative breaker time %v / %v", c.BreakerStall, c.BreakerOpen)
	case c.Writes > WriteHandoff:
		return fmt.Errorf("mcclient: unknown write mode %v", c.Writes)
	case c.MaxValueSize < 0:
		return fmt.Errorf("mcclient: negative MaxValueSize %d", c.MaxValueSize)
	}
	return nil
}
