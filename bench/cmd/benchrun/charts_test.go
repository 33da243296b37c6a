package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestChartsRender(t *testing.T) {
	dir := t.TempDir()
	bar := filepath.Join(dir, "bar.png")
	if err := barChart(bar, "t", "ops/s", []string{"a", "b"}, []barGroup{{"x", []float64{1, 2}}, {"y", []float64{3, 4}}}); err != nil {
		t.Fatal(err)
	}
	line := filepath.Join(dir, "line.png")
	if err := lineChart(line, "t", "x", "y", map[string][][2]float64{"a": {{1, 2}, {2, 3}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bar, line} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
			t.Fatalf("%s: not a PNG (%d bytes, %v)", p, len(b), err)
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Fatal(m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Fatal(m)
	}
	if m := median(nil); m != 0 {
		t.Fatal(m)
	}
}
