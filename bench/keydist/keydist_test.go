package keydist

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestScatterIsPermutation(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 10, 1000, 4097} {
		seen := make(map[uint64]bool)
		for i := uint64(0); i < n; i++ {
			x := Scatter(i, n)
			if x >= n || seen[x] {
				t.Fatalf("n=%d: Scatter(%d)=%d repeats or out of range", n, i, x)
			}
			seen[x] = true
		}
	}
}

func TestUniformCoversRange(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	d, _ := New("uniform", 100)
	counts := make([]int, 100)
	for i := 0; i < 100000; i++ {
		counts[d.Next(r)]++
	}
	for k, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("key %d drawn %d times of ~1000", k, c)
		}
	}
}

func TestSequential(t *testing.T) {
	d, _ := New("seq", 3)
	var got []uint64
	for i := 0; i < 7; i++ {
		got = append(got, d.Next(nil))
	}
	want := []uint64{0, 1, 2, 0, 1, 2, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("seq = %v", got)
		}
	}
}

// TestZipfFrequencies checks that rank k is drawn in proportion to
// 1/(k+1)^s for the head of the distribution, for a skew below and above 1.
func TestZipfFrequencies(t *testing.T) {
	for _, s := range []float64{0.99, 1.2} {
		const n, draws = 1000, 400000
		z := NewZipf(n, s)
		r := rand.New(rand.NewPCG(7, 9))
		counts := make([]float64, n)
		for i := 0; i < draws; i++ {
			counts[z.Rank(r)]++
		}
		var norm float64
		for k := 1; k <= n; k++ {
			norm += 1 / math.Pow(float64(k), s)
		}
		// Gray's method is exact for the two hottest ranks and an
		// approximation (within ~20%) for the next ones.
		for k := 0; k < 8; k++ {
			want := draws / math.Pow(float64(k+1), s) / norm
			tol := 0.05
			if k >= 2 {
				tol = 0.25
			}
			if d := math.Abs(counts[k]-want) / want; d > tol {
				t.Errorf("s=%v rank %d: %v draws, want ~%.0f", s, k, counts[k], want)
			}
		}
		if counts[0] < counts[10] || counts[10] < counts[500] {
			t.Errorf("s=%v: not decreasing: %v %v %v", s, counts[0], counts[10], counts[500])
		}
	}
}

func TestNewRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "zipf:1", "zipf:x", "zipf:-2", "gauss"} {
		if _, err := New(name, 10); err == nil {
			t.Errorf("New(%q) accepted", name)
		}
	}
	if _, err := New("zipf:0.8", 10); err != nil {
		t.Error(err)
	}
}
