package main

import (
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

type barGroup struct {
	label  string
	values []float64 // one per series, in series order
}

// barChart draws one bar per series within each group.
func barChart(path, title, ylabel string, series []string, groups []barGroup) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	w := vg.Points(14)
	labels := make([]string, len(groups))
	for i, g := range groups {
		labels[i] = g.label
	}
	for si, name := range series {
		vals := make(plotter.Values, len(groups))
		for gi, g := range groups {
			if si < len(g.values) {
				vals[gi] = g.values[si]
			}
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Color = plotutil.Color(si)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(si)-float64(len(series)-1)/2)
		p.Add(b)
		p.Legend.Add(name, b)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.NominalX(labels...)
	// Room on both sides for the outer bars of each group, and above the
	// tallest bar for the legend.
	p.X.Min, p.X.Max = -0.6, float64(len(groups))-0.4
	p.Y.Min = 0
	p.Y.Max *= 1.25
	return p.Save(7*vg.Inch, 4*vg.Inch, path)
}

// lineChart draws one line per series of (x, y) points.
func lineChart(path, title, xlabel, ylabel string, curves map[string][][2]float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	names := make([]string, 0, len(curves))
	for n := range curves {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		pts := make(plotter.XYs, len(curves[n]))
		for j, xy := range curves[n] {
			pts[j].X, pts[j].Y = xy[0], xy[1]
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		s.Color = plotutil.Color(i)
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		p.Legend.Add(n, l, s)
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p.Save(7*vg.Inch, 4*vg.Inch, path)
}
