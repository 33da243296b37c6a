package server

import (
	"strconv"
	"sync/atomic"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Stats are a server's connection counters. All fields are atomics: read
// them at any time from any goroutine (the stats command, the metrics
// endpoint). One Stats may be shared by several Servers (Config.Stats) so
// that a process reports, and limits, its connections as a whole.
//
// Byte and request counts are added per flush of replies, not per
// syscall, so they lag a connection that is in the middle of a burst.
type Stats struct {
	// MaxConns is the configured limit (last Server created wins).
	MaxConns atomic.Int64
	// CurrConns is the number of open client connections.
	CurrConns atomic.Int64
	// TotalConns counts accepted connections, rejected ones included.
	TotalConns atomic.Uint64
	// RejectedConns counts connections refused for exceeding MaxConns.
	RejectedConns atomic.Uint64
	// AcceptErrors counts failed Accept calls (EMFILE and friends).
	AcceptErrors atomic.Uint64

	// BytesRead and BytesWritten count client socket traffic.
	BytesRead    atomic.Uint64
	BytesWritten atomic.Uint64
	// Requests counts parsed requests, noop and quit included.
	Requests atomic.Uint64
	// ProtocolErrors counts malformed requests the codec answered itself
	// (ERROR, CLIENT_ERROR) or that made it close the connection.
	ProtocolErrors atomic.Uint64
	// HandlerErrors counts requests whose Handler returned an error.
	HandlerErrors atomic.Uint64
	// Panics counts handler or codec panics (each closed its connection).
	Panics atomic.Uint64

	// IdleTimeouts, ReadTimeouts and WriteErrors count connections closed
	// for waiting too long between requests, stalling inside one, or
	// failing a write.
	IdleTimeouts atomic.Uint64
	ReadTimeouts atomic.Uint64
	WriteErrors  atomic.Uint64

	// budget is the value budget of the servers sharing these Stats: the
	// first Server created with them sets it, so a process has one.
	budget atomic.Pointer[protocol.Budget]
}

// ValueBytes reports the bytes of request values (and long get lines)
// being read now, process wide, the budget's size (0: unlimited), and how
// many requests it refused.
func (s *Stats) ValueBytes() (used, limit int64, refused uint64) {
	b := s.budget.Load()
	return b.Used(), b.Limit(), b.Refused()
}

// AppendStats appends the counters memcached reports under the same names
// (max_connections, curr_connections, total_connections,
// rejected_connections, bytes_read, bytes_written) to dst, for a Handler's
// answer to "stats". Its signature fits memstore.Options.ConnStats.
func (s *Stats) AppendStats(dst []protocol.Stat) []protocol.Stat {
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	return append(dst,
		protocol.Stat{Name: "max_connections", Value: i(s.MaxConns.Load())},
		protocol.Stat{Name: "curr_connections", Value: i(s.CurrConns.Load())},
		protocol.Stat{Name: "total_connections", Value: u(s.TotalConns.Load())},
		protocol.Stat{Name: "rejected_connections", Value: u(s.RejectedConns.Load())},
		protocol.Stat{Name: "bytes_read", Value: u(s.BytesRead.Load())},
		protocol.Stat{Name: "bytes_written", Value: u(s.BytesWritten.Load())},
	)
}
