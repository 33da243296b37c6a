package hist

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestIndexRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 255, 256, 257, 1000, 123456, 1 << 30, 1<<47 + 12345} {
		i := index(v)
		lo, hi := lowest(i), lowest(i+1)
		if v < lo || v >= hi {
			t.Fatalf("v=%d in bucket %d [%d,%d)", v, i, lo, hi)
		}
		if v >= linear && float64(hi-lo)/float64(lo) > 0.008 {
			t.Fatalf("bucket %d too wide: [%d,%d)", i, lo, hi)
		}
	}
	// Buckets are contiguous and increasing.
	for i := 1; i < numBuckets-1; i++ {
		if lowest(i) <= lowest(i-1) {
			t.Fatalf("bucket %d starts at %d, not after %d", i, lowest(i), lowest(i-1))
		}
		if index(lowest(i)) != i || index(lowest(i+1)-1) != i {
			t.Fatalf("bucket %d bounds do not map back", i)
		}
	}
}

// TestQuantilesMatchExact compares with the exact percentiles of a sorted
// sample drawn from a long-tailed distribution.
func TestQuantilesMatchExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100000)
	for i := range vals {
		v := int64(r.ExpFloat64() * 200e3) // mean 200 µs
		if r.IntN(100) == 0 {
			v *= 50 // a tail
		}
		vals[i] = v
		h.Record(time.Duration(v))
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := int64(h.Quantile(q))
		if d := float64(got-exact) / float64(exact); d > 0.01 || d < -0.01 {
			t.Errorf("q%.3f: got %d, exact %d (%.2f%%)", q, got, exact, d*100)
		}
	}
	if h.Count() != uint64(len(vals)) || int64(h.Max()) != vals[len(vals)-1] {
		t.Errorf("count %d max %d", h.Count(), h.Max())
	}
}

func TestMergeAndReset(t *testing.T) {
	var a, b Histogram
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	b.Record(5 * time.Millisecond)
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != 5*time.Millisecond {
		t.Fatalf("merged count %d max %v", a.Count(), a.Max())
	}
	if q := a.Quantile(0.5); q < 2980*time.Microsecond || q > 3020*time.Microsecond {
		t.Fatalf("median %v", q)
	}
	a.Reset()
	if a.Count() != 0 || a.Quantile(0.99) != 0 {
		t.Fatal("reset left data")
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.Record(time.Duration(i & 0xfffff))
	}
}
