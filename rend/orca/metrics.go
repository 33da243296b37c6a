package orca

import (
	"context"
	"time"

	"github.com/moneta-cache/moneta/shared/metrics"
	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Instrument wraps be so that every call to it is counted and timed in c
// (the per-layer requests, key hits/misses and latency of /metrics). It
// records after the call returns, into counters resolved when c was made,
// so it adds no allocation and no lock to a backend call.
//
// The wrapped backend sees what memcached or mnemonic see, not what clients
// asked: on L1 a chunked hit is one header get plus one get of its chunks,
// and each of those is a request here (with keys counted per item). The
// requests of one pipelined Do are each timed from the start of the batch,
// since their replies arrive together.
func Instrument(be Backend, c *metrics.Commands) Backend {
	return &instrumented{be: be, cmds: c}
}

type instrumented struct {
	be   Backend
	cmds *metrics.Commands
}

func (b *instrumented) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	start := time.Now()
	err := b.be.Handle(ctx, req, resp)
	b.cmds.Request(req, resp, err, start)
	return err
}

func (b *instrumented) Do(ctx context.Context, reqs []*protocol.Request, resps []*protocol.Response) error {
	start := time.Now()
	err := b.be.Do(ctx, reqs, resps)
	for i, r := range reqs {
		b.cmds.Request(r, resps[i], err, start)
	}
	return err
}

func (b *instrumented) Healthy() bool { return b.be.Healthy() }

// pendingFields is the invalidation backlog's one line and gauge.
var pendingFields = metrics.Fields[*Pending]{
	{Stat: "l1_pending_invalidations", Metric: "l1_pending_invalidations", Kind: metrics.Gauge,
		Help: "Keys whose L1 copy awaits a background delete.",
		Read: func(p *Pending) metrics.Value { return metrics.Int(int64(p.Len())) }},
}

// Collector exports s (see Fields for the names, all prefixed ns_) and the
// backlog of p, if not nil, to Prometheus, read at scrape time: the request
// path keeps its plain atomic adds.
func Collector(ns string, s *Stats, p *Pending) prometheus.Collector {
	cs := metrics.Collectors{metrics.NewCollector(ns, Fields, nil, func() *Stats { return s })}
	if p != nil {
		cs = append(cs, metrics.NewCollector(ns, pendingFields, nil, func() *Pending { return p }))
	}
	return cs
}
