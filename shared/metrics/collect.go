package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot exports counters a component already keeps (atomics in a Stats
// struct, a pool's Stats() snapshot) without touching its hot path: at each
// scrape it calls read once and turns the fields named with Counter and
// Gauge into samples. Build it in main, then register it.
//
//	s := metrics.NewSnapshot(func() *server.Stats { return st })
//	s.Counter("rend_bytes_read_total", "Bytes read from clients.", nil,
//		func(s *server.Stats) float64 { return float64(s.BytesRead.Load()) })
//	reg.MustRegister(s)
type Snapshot[T any] struct {
	read    func() T
	metrics []snapMetric[T]
}

type snapMetric[T any] struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	get  func(T) float64
}

// NewSnapshot returns an empty Snapshot reading its values through read.
func NewSnapshot[T any](read func() T) *Snapshot[T] {
	return &Snapshot[T]{read: read}
}

// Counter adds a monotonically increasing value (name should end in _total).
func (s *Snapshot[T]) Counter(name, help string, labels prometheus.Labels, get func(T) float64) *Snapshot[T] {
	return s.add(name, help, labels, prometheus.CounterValue, get)
}

// Gauge adds a value that goes up and down.
func (s *Snapshot[T]) Gauge(name, help string, labels prometheus.Labels, get func(T) float64) *Snapshot[T] {
	return s.add(name, help, labels, prometheus.GaugeValue, get)
}

func (s *Snapshot[T]) add(name, help string, labels prometheus.Labels, typ prometheus.ValueType, get func(T) float64) *Snapshot[T] {
	s.metrics = append(s.metrics, snapMetric[T]{prometheus.NewDesc(name, help, nil, labels), typ, get})
	return s
}

// Describe implements prometheus.Collector.
func (s *Snapshot[T]) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range s.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector: one read, every value from it.
func (s *Snapshot[T]) Collect(ch chan<- prometheus.Metric) {
	v := s.read()
	for _, m := range s.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.get(v))
	}
}
