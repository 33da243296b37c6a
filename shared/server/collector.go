package server

import (
	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the connection counters st keeps as Prometheus metrics
// named <ns>_..., read at scrape time so serving pays nothing for them.
// who names the process in help texts ("rend", "mnemonic"); handlerErrors
// says what a handler error means for it.
func Collector(ns, who, handlerErrors string, st *Stats) prometheus.Collector {
	s := metrics.NewSnapshot(func() *Stats { return st })
	n := func(name string) string { return ns + "_" + name }
	s.Gauge(n("connections_current"), "Open client connections.", nil, func(s *Stats) float64 { return float64(s.CurrConns.Load()) })
	s.Gauge(n("connections_max"), "The client connection limit.", nil, func(s *Stats) float64 { return float64(s.MaxConns.Load()) })
	s.Counter(n("connections_accepted_total"), "Client connections accepted (rejected ones included).", nil, func(s *Stats) float64 { return float64(s.TotalConns.Load()) })
	s.Counter(n("connections_rejected_total"), "Client connections refused for exceeding max_conns.", nil, func(s *Stats) float64 { return float64(s.RejectedConns.Load()) })
	s.Counter(n("accept_errors_total"), "Failed accept calls (EMFILE and friends).", nil, func(s *Stats) float64 { return float64(s.AcceptErrors.Load()) })
	closed := "Client connections closed by " + who + ", by reason."
	s.Counter(n("connections_closed_total"), closed, prometheus.Labels{"reason": "idle_timeout"}, func(s *Stats) float64 { return float64(s.IdleTimeouts.Load()) })
	s.Counter(n("connections_closed_total"), closed, prometheus.Labels{"reason": "read_timeout"}, func(s *Stats) float64 { return float64(s.ReadTimeouts.Load()) })
	s.Counter(n("connections_closed_total"), closed, prometheus.Labels{"reason": "write_error"}, func(s *Stats) float64 { return float64(s.WriteErrors.Load()) })
	s.Counter(n("bytes_read_total"), "Bytes read from clients.", nil, func(s *Stats) float64 { return float64(s.BytesRead.Load()) })
	s.Counter(n("bytes_written_total"), "Bytes written to clients.", nil, func(s *Stats) float64 { return float64(s.BytesWritten.Load()) })
	s.Counter(n("parsed_requests_total"), "Requests parsed from clients (noop and quit included).", nil, func(s *Stats) float64 { return float64(s.Requests.Load()) })
	s.Counter(n("protocol_errors_total"), "Malformed client requests answered by the codec.", nil, func(s *Stats) float64 { return float64(s.ProtocolErrors.Load()) })
	s.Counter(n("handler_errors_total"), handlerErrors, nil, func(s *Stats) float64 { return float64(s.HandlerErrors.Load()) })
	s.Counter(n("panics_total"), "Handler or codec panics (each closed its connection).", nil, func(s *Stats) float64 { return float64(s.Panics.Load()) })
	return s
}
