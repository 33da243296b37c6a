package server

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxConns        = 65536
	DefaultReadTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultReadBufferSize  = 16 << 10
	DefaultWriteBufferSize = 16 << 10
	DefaultMaxValueBytes   = 256 << 20
	DefaultGetGroupBytes   = 1 << 20
	// DefaultSocketMode is memcached's default for its -a option.
	DefaultSocketMode os.FileMode = 0o700

	// minBufferSize keeps a binary header (24 bytes) and a short text line
	// in one buffer; smaller buffers only cost syscalls.
	minBufferSize = 512
)

// Config tunes a Server. Build it in main (TOML + flags), then New applies
// EnsureDefaults and Validate.
type Config struct {
	// MaxConns bounds the open client connections. A connection accepted
	// beyond it is answered "SERVER_ERROR too many open connections" and
	// closed, as memcached does. The count is Stats.CurrConns, so servers
	// sharing one Stats share the budget (one process-wide limit, like
	// memcached's -c). Default 65536.
	MaxConns int

	// IdleTimeout closes a connection that waits this long for its next
	// request. Zero (the default, like memcached) or negative: never.
	IdleTimeout time.Duration
	// ReadTimeout bounds reading one request once its first byte has
	// arrived (a slow or stalled client). Zero: DefaultReadTimeout;
	// negative: no limit.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write of replies to the socket (a client
	// that stops reading). Zero: DefaultWriteTimeout; negative: no limit.
	WriteTimeout time.Duration
	// ShutdownTimeout caps how long Shutdown lets in-flight requests
	// finish, in addition to its context's deadline. Zero:
	// DefaultShutdownTimeout; negative: only the context decides.
	ShutdownTimeout time.Duration

	// ReadBufferSize and WriteBufferSize size the pooled buffers a
	// connection borrows while it is busy. Zero: 16 KiB each.
	ReadBufferSize  int
	WriteBufferSize int

	// Limits bound what the codecs accept (zero fields take defaults).
	Limits protocol.Limits

	// MaxValueBytes bounds the bytes of request values being read, over
	// every connection of the process (servers sharing Stats share it).
	// Buffers grow as bytes arrive, each growth charged to this budget; a
	// value that does not fit is swallowed and answered "SERVER_ERROR out
	// of memory storing object" (binary: status 0x82), and a set unlinks
	// the key's old item, as memcached does when it cannot allocate an
	// item. Zero: DefaultMaxValueBytes; negative: unlimited.
	MaxValueBytes int64

	// GetGroupBytes is what the hits of one handler call for a multi-get
	// should stay under: a long get line (or a pipeline of gets) is handed
	// to the handler in groups of keys sized from the bytes earlier hits
	// took, and each group's hits are written before the next group is
	// fetched. Zero: DefaultGetGroupBytes.
	GetGroupBytes int

	// SocketMode is the permission of a Unix socket created by
	// ListenAndServe. Zero: DefaultSocketMode (0700, memcached's default).
	SocketMode os.FileMode

	// Logger receives connection and handler errors. Nil: slog.Default().
	Logger *slog.Logger

	// Stats receives the server's counters. Nil: New allocates one. main
	// creates it when a handler must report the same numbers (the stats
	// command's curr_connections) or when several servers (rend's regular
	// and batch ports) should count together.
	Stats *Stats

	// Name labels this server in logs ("regular", "batch"). Optional.
	Name string

	// NetLoop is how client connections wait for requests:
	// NetLoopGoroutine (a goroutine per connection, parked in the
	// runtime's netpoller) or NetLoopEpoll (the default on Linux, where
	// it cost 20% less CPU per request at one request in flight: event
	// loops that
	// answer the single gets of all ready connections with one HandleGets
	// call, handing anything else to a goroutine; epoll_linux.go).
	NetLoop string

	// RuntimeSyscalls makes client sockets read and write through the
	// runtime's syscall path (the net package's Read and Write) instead
	// of raw syscalls (package rawio, the default: no P hand-off when a
	// long write outlasts a sysmon tick).
	RuntimeSyscalls bool
}

// NetLoop values.
const (
	NetLoopGoroutine = "goroutine"
	NetLoopEpoll     = "epoll"
)

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.WriteBufferSize == 0 {
		c.WriteBufferSize = DefaultWriteBufferSize
	}
	if c.SocketMode == 0 {
		c.SocketMode = DefaultSocketMode
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.NetLoop == "" {
		c.NetLoop = NetLoopGoroutine
		if loopSupported {
			c.NetLoop = NetLoopEpoll
		}
	}
	if c.GetGroupBytes <= 0 {
		c.GetGroupBytes = DefaultGetGroupBytes
	}
	c.Limits.EnsureDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.MaxConns < 1:
		return fmt.Errorf("server: max connections %d: must be at least 1", c.MaxConns)
	case c.ReadBufferSize < minBufferSize:
		return fmt.Errorf("server: read buffer size %d: must be at least %d", c.ReadBufferSize, minBufferSize)
	case c.WriteBufferSize < minBufferSize:
		return fmt.Errorf("server: write buffer size %d: must be at least %d", c.WriteBufferSize, minBufferSize)
	case c.SocketMode&^os.ModePerm != 0:
		return fmt.Errorf("server: socket mode %v: only permission bits allowed", c.SocketMode)
	case c.NetLoop != NetLoopGoroutine && c.NetLoop != NetLoopEpoll:
		return fmt.Errorf("server: net loop %q: want %q or %q", c.NetLoop, NetLoopGoroutine, NetLoopEpoll)
	case c.NetLoop == NetLoopEpoll && !loopSupported:
		return fmt.Errorf("server: net loop %q: Linux only", c.NetLoop)
	case c.Limits.MaxKeyLen < 1 || c.Limits.MaxItemSize < 1 || c.Limits.MaxKeys < 1 || c.Limits.MaxLineLen < 1:
		return fmt.Errorf("server: limits %+v: every limit must be positive", c.Limits)
	}
	return nil
}
