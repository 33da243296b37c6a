package mcclient

import "github.com/moneta-cache/moneta/shared/metrics"

// PoolFields lists a pool's figures (a Stats snapshot): the stats lines a
// process shows per backend (under a prefix such as "l1_"), and the
// Prometheus series (under a label such as layer="l1"). Build the
// collector with metrics.NewCollector(ns, PoolFields, labels, c.Stats): one
// snapshot per scrape.
var PoolFields = metrics.Fields[PoolStats]{
	{Stat: "conns_up", Metric: "pool_conns_up", Kind: metrics.Gauge, Help: "Connections to the backend currently up.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(uint64(s.ConnsUp)) }},
	{Stat: "in_flight", Metric: "pool_in_flight", Kind: metrics.Gauge, Help: "Backend calls queued or awaiting replies.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(uint64(s.InFlight)) }},
	{Stat: "reconnects", Metric: "pool_reconnects_total", Help: "Backend connections re-established after a drop.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.Reconnects) }},
	{Stat: "breaker", Metric: "backend_breaker_state", Kind: metrics.Gauge,
		Help: "The backend's circuit breaker: 0 closed, 1 open (failing fast), 2 half-open (probing).",
		Read: func(s PoolStats) metrics.Value { return metrics.Text(s.Breaker, breakerNumber(s.Breaker)) }},
	{Stat: "breaker_opens", Metric: "backend_breaker_opens_total", Help: "Times the backend's circuit breaker opened.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.BreakerOpens) }},
	{Metric: "backend_up", Kind: metrics.Gauge, Help: "1 while at least one connection to the backend is up.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(uint64(min(s.ConnsUp, 1))) }},
	{Metric: "pool_conns", Kind: metrics.Gauge, Help: "Connections configured to the backend.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(uint64(s.Conns)) }},
	{Metric: "pool_requests_total", Help: "Requests sent to the backend.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.Requests) }},
	{Metric: "pool_errors_total", Help: "Backend calls that failed in transport (timeouts included).",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.Errors) }},
	{Metric: "pool_timeouts_total", Help: "Backend calls that timed out.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.Timeouts) }},
	{Metric: "pool_canceled_total", Help: "Backend calls whose context ended first.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.Canceled) }},
	{Metric: "pool_stalls_total", Help: "Backend connections dropped for answering nothing within the timeout.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.Stalls) }},
	{Metric: "pool_dial_errors_total", Help: "Failed connection attempts to the backend.",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.DialErrors) }},
	{Metric: "pool_flushes_total", Help: "Socket writes to the backend (requests/flushes shows pipelining).",
		Read: func(s PoolStats) metrics.Value { return metrics.Uint(s.Flushes) }},
}

// breakerNumber is the breaker state's number in backend_breaker_state.
func breakerNumber(state string) float64 {
	switch state {
	case BreakerOpen:
		return 1
	case BreakerHalfOpen:
		return 2
	}
	return 0
}
