package server

import (
	"slices"
	"sync/atomic"

	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
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

// Fields are the counters' stats lines (memcached's names, in memcached's
// order) and Prometheus metrics; Collector and AppendStats generate theirs
// from this one table.
var Fields = metrics.Fields[*Stats]{
	{Stat: "max_connections", Metric: "connections_max", Kind: metrics.Gauge, Help: "The client connection limit.",
		Read: func(s *Stats) metrics.Value { return metrics.Int(s.MaxConns.Load()) }},
	{Stat: "curr_connections", Metric: "connections_current", Kind: metrics.Gauge, Help: "Open client connections.",
		Read: func(s *Stats) metrics.Value { return metrics.Int(s.CurrConns.Load()) }},
	{Stat: "total_connections", Metric: "connections_accepted_total", Help: "Client connections accepted (rejected ones included).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.TotalConns.Load()) }},
	{Stat: "rejected_connections", Metric: "connections_rejected_total", Help: "Client connections refused for exceeding max_conns.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.RejectedConns.Load()) }},
	{Stat: "bytes_read", Metric: "bytes_read_total", Help: "Bytes read from clients.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.BytesRead.Load()) }},
	{Stat: "bytes_written", Metric: "bytes_written_total", Help: "Bytes written to clients.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.BytesWritten.Load()) }},
	{Metric: "accept_errors_total", Help: "Failed accept calls (EMFILE and friends).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.AcceptErrors.Load()) }},
	{Metric: "connections_closed_total", Labels: prometheus.Labels{"reason": "idle_timeout"},
		Help: "Client connections the server closed, by reason.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.IdleTimeouts.Load()) }},
	{Metric: "connections_closed_total", Labels: prometheus.Labels{"reason": "read_timeout"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.ReadTimeouts.Load()) }},
	{Metric: "connections_closed_total", Labels: prometheus.Labels{"reason": "write_error"},
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.WriteErrors.Load()) }},
	{Metric: "parsed_requests_total", Help: "Requests parsed from clients (noop and quit included).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.Requests.Load()) }},
	{Metric: "protocol_errors_total", Help: "Malformed client requests answered by the codec.",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.ProtocolErrors.Load()) }},
	{Metric: "handler_errors_total", Help: "Requests whose handler returned an error, answered SERVER_ERROR (rend: a backend failed; mnemonic: the store failed).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.HandlerErrors.Load()) }},
	{Metric: "panics_total", Help: "Handler or codec panics (each closed its connection).",
		Read: func(s *Stats) metrics.Value { return metrics.Uint(s.Panics.Load()) }},
}

// AppendStats appends the counters memcached reports under the same names
// (max_connections, curr_connections, total_connections,
// rejected_connections, bytes_read, bytes_written) to dst.
func (s *Stats) AppendStats(dst []protocol.Stat) []protocol.Stat {
	return Fields.AppendStats(dst, "", s)
}

// Collector exports the counters as Prometheus metrics named <ns>_...,
// read at scrape time so serving pays nothing for them.
func Collector(ns string, st *Stats) prometheus.Collector {
	return metrics.NewCollector(ns, Fields, nil, func() *Stats { return st })
}

// insertStats puts the connection lines into a handler's answer to a
// general "stats": after its pointer_size line, where memcached lists its
// own connection fields, or at the end if it has none. This is the one
// place they are added, so handlers (rend's orchestrator, mnemonic's store,
// memstore) report process-wide connections without being told about the
// server.
func (s *Stats) insertStats(dst []protocol.Stat) []protocol.Stat {
	at := len(dst)
	for i := range dst {
		if dst[i].Name == "pointer_size" {
			at = i + 1
			break
		}
	}
	n := len(dst)
	dst = s.AppendStats(dst)
	// Rotate the new lines from the end to at.
	slices.Reverse(dst[at:n])
	slices.Reverse(dst[n:])
	slices.Reverse(dst[at:])
	return dst
}
