package metrics

import (
	"math"
	"strconv"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Kind says how Prometheus treats a field.
type Kind uint8

const (
	// Counter only goes up; its Metric name ends in _total.
	Counter Kind = iota
	// Gauge goes up and down.
	Gauge
)

// Field describes one number a component keeps (an atomic in its stats
// struct, a field of a snapshot): the line the memcached `stats` command
// shows, the Prometheus metric /metrics exports, and how to read it. A
// component lists its numbers once, in a Fields table, and both its `stats`
// lines (Fields.AppendStats) and its Prometheus collector (NewCollector)
// come from that table, so the two cannot drift apart.
//
// The table is read only when stats are asked for or scraped: the
// component keeps incrementing plain atomics on its request path.
type Field[T any] struct {
	// Stat is the name of the stats line (memcached's where memcached has
	// the number); "" leaves the field out of `stats`.
	Stat string
	// Metric is the Prometheus name after the namespace and "_"; "" leaves
	// the field out of /metrics. Several fields may export one Metric,
	// told apart by their Labels.
	Metric string
	// Labels are the constant labels of this field's series.
	Labels prometheus.Labels
	// Help is the metric's help text. A field that shares an earlier
	// field's Metric may leave it empty: it takes the earlier one's (the
	// registry refuses one name with two help texts).
	Help string
	Kind Kind
	// Read returns the field's current value from a T.
	Read func(T) Value
}

// Fields is a component's table of fields, in the order of its stats lines.
// Tables are built once (package variables) and never changed.
type Fields[T any] []Field[T]

// AppendStats appends one stats line per field that has a Stat name, in
// table order, named prefix+Stat ("l1_" for one of several pools,
// "shard_0_" for one of several shards; "" for none). It reads v once per
// field.
func (fs Fields[T]) AppendStats(dst []protocol.Stat, prefix string, v T) []protocol.Stat {
	for i := range fs {
		f := &fs[i]
		if f.Stat == "" {
			continue
		}
		name := f.Stat
		if prefix != "" {
			name = prefix + name
		}
		dst = append(dst, protocol.Stat{Name: name, Value: f.Read(v).String()})
	}
	return dst
}

// Nest turns the table of a part (an embedded struct, a nested snapshot)
// into rows of the whole's table: get finds the part in the whole.
//
//	metrics.Nest(l1.CounterFields, func(s *Stats) *l1.Counters { return &s.Counters })
func Nest[T, U any](fs Fields[U], get func(T) U) Fields[T] {
	out := make(Fields[T], len(fs))
	for i, f := range fs {
		read := f.Read
		out[i] = Field[T]{Stat: f.Stat, Metric: f.Metric, Labels: f.Labels, Help: f.Help, Kind: f.Kind,
			Read: func(v T) Value { return read(get(v)) }}
	}
	return out
}

// Value is one reading of a field: the number Prometheus exports and the
// text of its stats line. Integers stay exact in the stats line (a float64
// would round counters past 2^53).
type Value struct {
	kind valueKind
	bits uint64 // the uint, int (two's complement), float or bool
	// text and num are the stats text and the exported number of a Text.
	text string
	num  float64
}

type valueKind uint8

const (
	kindUint valueKind = iota
	kindInt
	kindFloat
	kindBool
	kindText
)

// Uint is a counter or a size.
func Uint(v uint64) Value { return Value{kind: kindUint, bits: v} }

// Int is a signed quantity (a limit, free bytes).
func Int(v int64) Value { return Value{kind: kindInt, bits: uint64(v)} }

// Float is a measure with a fraction (seconds); the stats line shows three
// decimals.
func Float(v float64) Value { return Value{kind: kindFloat, bits: math.Float64bits(v)} }

// Bool is a state: "true" or "false" in stats, 1 or 0 in /metrics.
func Bool(b bool) Value {
	v := Value{kind: kindBool}
	if b {
		v.bits = 1
	}
	return v
}

// Text is a state named by a word in stats ("closed", "open") and exported
// as the number n that the metric's help text maps it to.
func Text(s string, n float64) Value { return Value{kind: kindText, text: s, num: n} }

// Number is the value Prometheus exports.
func (v Value) Number() float64 {
	switch v.kind {
	case kindUint, kindBool:
		return float64(v.bits)
	case kindInt:
		return float64(int64(v.bits))
	case kindFloat:
		return math.Float64frombits(v.bits)
	default:
		return v.num
	}
}

// String is the value as its stats line shows it.
func (v Value) String() string {
	switch v.kind {
	case kindUint:
		return strconv.FormatUint(v.bits, 10)
	case kindInt:
		return strconv.FormatInt(int64(v.bits), 10)
	case kindFloat:
		return strconv.FormatFloat(math.Float64frombits(v.bits), 'f', 3, 64)
	case kindBool:
		return strconv.FormatBool(v.bits != 0)
	default:
		return v.text
	}
}

// collected is one exported field of a collector.
type collected[T any] struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	read func(T) Value
}

// describe builds the descriptors of the fields of fs that have a Metric:
// ns_Metric, the field's labels plus labels, and variable if not empty.
func describe[T any](ns string, fs Fields[T], labels prometheus.Labels, variable []string) []collected[T] {
	help := map[string]string{}
	var out []collected[T]
	for _, f := range fs {
		if f.Metric == "" {
			continue
		}
		name := ns + "_" + f.Metric
		h := f.Help
		if h == "" {
			h = help[name]
		} else if _, ok := help[name]; !ok {
			help[name] = h
		}
		cl := prometheus.Labels{}
		for k, v := range labels {
			cl[k] = v
		}
		for k, v := range f.Labels {
			cl[k] = v
		}
		typ := prometheus.CounterValue
		if f.Kind == Gauge {
			typ = prometheus.GaugeValue
		}
		out = append(out, collected[T]{prometheus.NewDesc(name, h, variable, cl), typ, f.Read})
	}
	return out
}

// Collector exports a table's fields to Prometheus.
type Collector[T any] struct {
	fields []collected[T]
	read   func() T
}

// NewCollector exports the fields of fs that have a Metric, as ns_Metric
// with the field's labels plus labels (nil: none). It calls read once per
// scrape and takes every value from that one reading, so exporting costs
// the request path nothing. Build it in main, then register it.
func NewCollector[T any](ns string, fs Fields[T], labels prometheus.Labels, read func() T) *Collector[T] {
	return &Collector[T]{fields: describe(ns, fs, labels, nil), read: read}
}

// Describe implements prometheus.Collector.
func (c *Collector[T]) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.fields {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector.
func (c *Collector[T]) Collect(ch chan<- prometheus.Metric) {
	v := c.read()
	for _, f := range c.fields {
		ch <- prometheus.MustNewConstMetric(f.desc, f.typ, f.read(v).Number())
	}
}

// ListCollector exports a table's fields for each of a list of T.
type ListCollector[T any] struct {
	fields []collected[T]
	read   func() []T
}

// NewListCollector is NewCollector over a list (one T per shard, say): each
// element's series carry label=its index. A nil list (a component shutting
// down) exports nothing rather than stale figures.
func NewListCollector[T any](ns string, fs Fields[T], label string, read func() []T) *ListCollector[T] {
	return &ListCollector[T]{fields: describe(ns, fs, nil, []string{label}), read: read}
}

// Describe implements prometheus.Collector.
func (c *ListCollector[T]) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.fields {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector.
func (c *ListCollector[T]) Collect(ch chan<- prometheus.Metric) {
	for i, v := range c.read() {
		idx := strconv.Itoa(i)
		for _, f := range c.fields {
			ch <- prometheus.MustNewConstMetric(f.desc, f.typ, f.read(v).Number(), idx)
		}
	}
}

// Collectors is several collectors registered as one.
type Collectors []prometheus.Collector

// Describe implements prometheus.Collector.
func (cs Collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (cs Collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
