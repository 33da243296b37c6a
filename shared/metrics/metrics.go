// Package metrics holds the Prometheus metrics both binaries export and the
// admin HTTP listener that serves them. Every labelled child is resolved when
// the metrics are created, so recording on the request path is an array
// index and an atomic add, with no label lookup and no allocation.
//
// Counters a component keeps itself (atomics in a stats struct, a pool's
// snapshot) are described once, in a Fields table (fields.go): the table
// generates both the component's memcached `stats` lines and its
// Prometheus collector, read when asked for, never on the request path.
//
// Each binary creates its own prometheus.Registry in main; nothing is
// registered globally.
package metrics

import (
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// LatencyBuckets spans 10 µs to ~2.6 s so p50 through p99.9 of both RAM hits
// (tens of µs) and SSD reads under compaction (ms) fall in distinct buckets.
var LatencyBuckets = prometheus.ExponentialBuckets(10e-6, 2, 19)

// Outcome is what a request ended as, for counting.
type Outcome uint8

const (
	OutcomeOK Outcome = iota
	OutcomeHit
	OutcomeMiss
	OutcomeNotStored
	OutcomeExists
	OutcomeNotFound
	OutcomeClientError
	OutcomeServerError
	OutcomeBackendError // transport failure to a backend
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "hit", "miss", "not_stored", "exists", "not_found", "client_error", "server_error", "backend_error"}

func (o Outcome) String() string { return outcomeNames[o] }

// OutcomeOf maps a response status to an outcome. Reads count hits and
// misses per key elsewhere; here a read with StatusOK is OutcomeOK.
func OutcomeOf(s protocol.Status) Outcome {
	switch s {
	case protocol.StatusOK:
		return OutcomeOK
	case protocol.StatusNotStored:
		return OutcomeNotStored
	case protocol.StatusExists:
		return OutcomeExists
	case protocol.StatusNotFound:
		return OutcomeNotFound
	case protocol.StatusNonNumeric, protocol.StatusClientError:
		return OutcomeClientError
	default:
		return OutcomeServerError
	}
}

// Commands counts requests per command and outcome, key-level hits and
// misses, and latency per command, for one layer ("client", "l1", "l2",
// "store", ...).
type Commands struct {
	outcomes [protocol.NumCommands][numOutcomes]prometheus.Counter
	hits     [protocol.NumCommands]prometheus.Counter
	misses   [protocol.NumCommands]prometheus.Counter
	latency  [protocol.NumCommands]prometheus.Observer
}

// NewCommands creates and registers the per-command metrics of one layer.
// Metric names: <ns>_requests_total{layer,command,outcome},
// <ns>_keys_total{layer,command,result=hit|miss}, <ns>_request_seconds{layer,command}.
func NewCommands(reg prometheus.Registerer, ns, layer string) *Commands {
	req := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "requests_total",
		Help:        "Requests by command and outcome.",
		ConstLabels: prometheus.Labels{"layer": layer},
	}, []string{"command", "outcome"})
	keys := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "keys_total",
		Help:        "Keys looked up by read commands, by result (hit or miss).",
		ConstLabels: prometheus.Labels{"layer": layer},
	}, []string{"command", "result"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "request_seconds",
		Help:        "Request latency by command.",
		ConstLabels: prometheus.Labels{"layer": layer},
		Buckets:     LatencyBuckets,
	}, []string{"command"})
	reg.MustRegister(req, keys, lat)
	c := &Commands{}
	for cmd := 1; cmd < protocol.NumCommands; cmd++ {
		name := protocol.Command(cmd).String()
		for o := Outcome(0); o < numOutcomes; o++ {
			c.outcomes[cmd][o] = req.WithLabelValues(name, o.String())
		}
		c.hits[cmd] = keys.WithLabelValues(name, "hit")
		c.misses[cmd] = keys.WithLabelValues(name, "miss")
		c.latency[cmd] = lat.WithLabelValues(name)
	}
	return c
}

// Observe records one request. start is when it began.
func (c *Commands) Observe(cmd protocol.Command, o Outcome, start time.Time) {
	if int(cmd) >= protocol.NumCommands || cmd == protocol.CmdNone {
		return
	}
	c.outcomes[cmd][o].Inc()
	c.latency[cmd].Observe(time.Since(start).Seconds())
}

// Request records one request that a handler or backend answered: its
// outcome (for reads: hit if any key was found, else miss, and each key's
// result; a non-nil err: OutcomeBackendError, whatever the status) and its
// latency from start. It reads req and resp only while it runs.
func (c *Commands) Request(req *protocol.Request, resp *protocol.Response, err error, start time.Time) {
	o := OutcomeOf(resp.Status)
	switch {
	case err != nil:
		o = OutcomeBackendError
	case req.Command.IsRead() && resp.Status == protocol.StatusOK:
		c.Keys(req.Command, len(resp.Hits), len(req.Keys)-len(resp.Hits))
		o = OutcomeHit
		if len(resp.Hits) == 0 {
			o = OutcomeMiss
		}
	}
	c.Observe(req.Command, o, start)
}

// Batch records the requests of one batch (server.GetBatcher.HandleGets)
// as Request records each: their outcomes, key results and one latency
// sample each, the batch's latency from start, since one lookup answered
// them all. It reads the clock once and adds each run of requests with the
// same command and outcome to the counters at once, instead of per
// request: a binary multi-get is a batch of 64 getkq requests.
func (c *Commands) Batch(reqs []*protocol.Request, resps []*protocol.Response, errs []error, start time.Time) {
	secs := time.Since(start).Seconds()
	var (
		run          = protocol.CmdNone // the command of the open run
		out          Outcome
		n            int // requests in the open run
		hits, misses int // their keys
	)
	flush := func() {
		if n == 0 || run == protocol.CmdNone || int(run) >= protocol.NumCommands {
			return
		}
		c.outcomes[run][out].Add(float64(n))
		c.Keys(run, hits, misses)
	}
	for i, req := range reqs {
		o := OutcomeOf(resps[i].Status)
		h, m := 0, 0
		switch {
		case errs[i] != nil:
			o = OutcomeBackendError
		case req.Command.IsRead() && resps[i].Status == protocol.StatusOK:
			h, m = len(resps[i].Hits), len(req.Keys)-len(resps[i].Hits)
			o = OutcomeHit
			if h == 0 {
				o = OutcomeMiss
			}
		}
		if req.Command != run || o != out {
			flush()
			run, out, n, hits, misses = req.Command, o, 0, 0, 0
		}
		n++
		hits += h
		misses += m
		if int(run) < protocol.NumCommands && run != protocol.CmdNone {
			c.latency[run].Observe(secs)
		}
	}
	flush()
}

// Keys records the hits and misses of one read.
func (c *Commands) Keys(cmd protocol.Command, hits, misses int) {
	if int(cmd) >= protocol.NumCommands || cmd == protocol.CmdNone {
		return
	}
	if hits > 0 {
		c.hits[cmd].Add(float64(hits))
	}
	if misses > 0 {
		c.misses[cmd].Add(float64(misses))
	}
}

// Count returns the current value of a counter, for the memcached `stats`
// command, which answers from the same numbers as /metrics.
func Count(c prometheus.Counter) uint64 {
	var m dtoMetric
	if err := c.Write(&m.Metric); err != nil || m.Counter == nil {
		return 0
	}
	return uint64(m.Counter.GetValue())
}

// Requests returns the number of requests of cmd with outcome o.
func (c *Commands) Requests(cmd protocol.Command, o Outcome) uint64 {
	return Count(c.outcomes[cmd][o])
}

// KeyHits and KeyMisses return key-level read counts for cmd.
func (c *Commands) KeyHits(cmd protocol.Command) uint64   { return Count(c.hits[cmd]) }
func (c *Commands) KeyMisses(cmd protocol.Command) uint64 { return Count(c.misses[cmd]) }

// Total returns all requests of cmd, whatever their outcome.
func (c *Commands) Total(cmd protocol.Command) uint64 {
	var n uint64
	for o := Outcome(0); o < numOutcomes; o++ {
		n += Count(c.outcomes[cmd][o])
	}
	return n
}
