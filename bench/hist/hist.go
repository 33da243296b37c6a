// Package hist is a fixed-size log-linear latency histogram in the manner of
// HdrHistogram: each power of two is split into 128 linear sub-buckets, so any
// recorded value is reported within 1% of itself, from 1 ns to ~3 days, in
// 43 KiB. Record is a single atomic add: many connection goroutines share
// one histogram without a lock.
package hist

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	// Values below linear are counted exactly; above, each power of two is
	// split into 128 linear sub-buckets (under 0.8% relative error).
	linear     = 256
	subBuckets = 128
	maxShift   = 40 // values of 2^48 ns (~3 days) and more are clamped
	numBuckets = linear + maxShift*subBuckets
)

func index(v int64) int {
	if v < linear {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 8 // v>>shift is in [128, 256)
	if shift > maxShift {
		return numBuckets - 1
	}
	return linear + (shift-1)*subBuckets + int(v>>uint(shift)) - subBuckets
}

// Histogram counts durations. The zero value is ready to use.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

// lowest returns the smallest value that maps to bucket i.
func lowest(i int) int64 {
	if i < linear {
		return int64(i)
	}
	shift := (i-linear)/subBuckets + 1
	m := (i-linear)%subBuckets + subBuckets
	return int64(m) << uint(shift)
}

// Record adds one observation.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	h.counts[index(v)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max is the largest observation.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value at quantile q (0..1): the smallest bucket value
// with at least q of the observations at or below it.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(n)))
	if want == 0 {
		want = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= want {
			// Report the middle of the bucket: within half a bucket (<0.4%).
			lo, hi := lowest(i), lowest(i+1)
			v := lo + (hi-lo)/2
			if m := h.max.Load(); v > m {
				v = m
			}
			return time.Duration(v)
		}
	}
	return h.Max()
}

// Merge adds o's observations to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}

// Reset clears the histogram. It is not atomic with concurrent Records: a
// record racing with Reset may be lost or counted in the next period, which
// is fine for per-second progress lines.
func (h *Histogram) Reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.total.Store(0)
	h.max.Store(0)
}

// Summary is the usual set of percentiles.
type Summary struct {
	Count uint64        `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize computes the Summary.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count: h.Count(),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.Max(),
	}
}
