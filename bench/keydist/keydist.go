// Package keydist draws key indexes in [0, n) from the distributions a cache
// benchmark needs: uniform, zipfian (any skew, including the common 0.99 that
// math/rand's Zipf cannot take) and sequential.
package keydist

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
)

// Dist draws key indexes. Implementations are safe for use by one goroutine
// per *rand.Rand; Sequential is safe for concurrent use.
type Dist interface {
	Next(r *rand.Rand) uint64
}

// New parses a distribution name: "uniform", "seq", "zipf" (skew 0.99) or
// "zipf:S" with 0 < S < 10, S != 1.
func New(name string, n uint64) (Dist, error) {
	if n == 0 {
		return nil, fmt.Errorf("key count must be positive")
	}
	switch {
	case name == "uniform":
		return Uniform{N: n}, nil
	case name == "seq" || name == "sequential":
		return &Sequential{N: n}, nil
	case name == "zipf":
		return NewZipf(n, 0.99), nil
	case len(name) > 5 && name[:5] == "zipf:":
		var s float64
		if _, err := fmt.Sscanf(name[5:], "%g", &s); err != nil || s <= 0 || s >= 10 || s == 1 {
			return nil, fmt.Errorf("zipf skew %q: want a number in (0,10), not 1", name[5:])
		}
		return NewZipf(n, s), nil
	}
	return nil, fmt.Errorf("unknown key distribution %q (uniform, seq, zipf, zipf:S)", name)
}

// Uniform draws every index with equal probability.
type Uniform struct{ N uint64 }

func (u Uniform) Next(r *rand.Rand) uint64 { return r.Uint64N(u.N) }

// Sequential walks 0, 1, ..., N-1, 0, ... shared by all callers, so a
// preload by many connections writes every key exactly once per lap.
type Sequential struct {
	N    uint64
	next atomic.Uint64
}

func (s *Sequential) Next(*rand.Rand) uint64 { return (s.next.Add(1) - 1) % s.N }

// Zipf draws rank k (0 = hottest) with probability proportional to
// 1/(k+1)^s, using the rejection-free method of Gray et al. ("Quickly
// generating billion-record synthetic databases"), as YCSB does: exact for
// the two hottest ranks, an approximation of the tail shape after them. Ranks are
// scattered over the key space by a fixed permutation so the hot keys are
// not all neighbours (which would put them on one shard of a hashed store
// only by accident of the hash).
type Zipf struct {
	n                 uint64
	theta, alpha, eta float64
	zetaN             float64
	half              float64 // 1 + 0.5^theta
}

// NewZipf prepares a zipfian distribution over n keys with skew s.
func NewZipf(n uint64, s float64) *Zipf {
	zeta := func(m uint64) float64 {
		var sum float64
		for i := uint64(1); i <= m; i++ {
			sum += 1 / math.Pow(float64(i), s)
		}
		return sum
	}
	z := &Zipf{n: n, theta: s}
	z.zetaN = zeta(n)
	zeta2 := zeta(2)
	z.alpha = 1 / (1 - s)
	z.eta = (1 - math.Pow(2/float64(n), 1-s)) / (1 - zeta2/z.zetaN)
	z.half = 1 + math.Pow(0.5, s)
	return z
}

// Rank draws a rank, 0 being the most popular.
func (z *Zipf) Rank(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * z.zetaN
	if uz < 1 {
		return 0
	}
	if uz < z.half {
		return 1
	}
	k := uint64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if k >= z.n {
		k = z.n - 1
	}
	return k
}

// Next draws a key index: the rank scattered by a bijection on [0, n).
func (z *Zipf) Next(r *rand.Rand) uint64 { return Scatter(z.Rank(r), z.n) }

// Scatter maps i in [0, n) to a distinct index in [0, n): multiplication by
// a large odd constant modulo the next power of two, cycle-walked back into
// range.
func Scatter(i, n uint64) uint64 {
	if n <= 1 {
		return 0
	}
	mask := uint64(1)<<bitsFor(n) - 1
	x := i
	for {
		x = (x*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & mask
		if x < n {
			return x
		}
	}
}

func bitsFor(n uint64) uint {
	b := uint(0)
	for (uint64(1) << b) < n {
		b++
	}
	return b
}
