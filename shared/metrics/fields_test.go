package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

type testPart struct{ errs atomic.Uint64 }

type testStats struct {
	hits, misses atomic.Uint64
	level        atomic.Int64
	part         testPart
}

var testPartFields = Fields[*testPart]{
	{Stat: "part_errors", Metric: "errors_total", Labels: prometheus.Labels{"layer": "part"}, Help: "Errors.",
		Read: func(p *testPart) Value { return Uint(p.errs.Load()) }},
}

// testFields covers each kind of row: stats and metric, one metric with
// two label sets (the second without help), stats only, metric only, and a
// nested part.
var testFields = append(Fields[*testStats]{
	{Stat: "hits", Metric: "lookups_total", Labels: prometheus.Labels{"result": "hit"}, Help: "Lookups.",
		Read: func(s *testStats) Value { return Uint(s.hits.Load()) }},
	{Stat: "misses", Metric: "lookups_total", Labels: prometheus.Labels{"result": "miss"},
		Read: func(s *testStats) Value { return Uint(s.misses.Load()) }},
	{Stat: "level", Metric: "level", Kind: Gauge, Help: "Level.",
		Read: func(s *testStats) Value { return Int(s.level.Load()) }},
	{Stat: "only_stats", Read: func(*testStats) Value { return Text("closed", 0) }},
	{Metric: "only_metric", Kind: Gauge, Help: "Only /metrics.", Read: func(*testStats) Value { return Bool(true) }},
}, Nest(testPartFields, func(s *testStats) *testPart { return &s.part })...)

func TestFieldsAppendStats(t *testing.T) {
	st := new(testStats)
	st.hits.Add(3)
	st.level.Store(-2)
	st.part.errs.Add(1)
	got := testFields.AppendStats([]protocol.Stat{{Name: "pid", Value: "1"}}, "", st)
	var want []protocol.Stat
	for _, kv := range [][2]string{{"pid", "1"}, {"hits", "3"}, {"misses", "0"}, {"level", "-2"}, {"only_stats", "closed"}, {"part_errors", "1"}} {
		want = append(want, protocol.Stat{Name: kv[0], Value: kv[1]})
	}
	if len(got) != len(want) {
		t.Fatalf("lines %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %v, want %v", i, got[i], want[i])
		}
	}
	if got := testFields.AppendStats(nil, "l1_", st); got[0].Name != "l1_hits" {
		t.Errorf("prefixed name %q", got[0].Name)
	}
	// Reading the table costs what formatting the values costs, nothing
	// more (numbers 0..99 format without allocating).
	st.level.Store(2)
	dst := make([]protocol.Stat, 0, 16)
	if n := testing.AllocsPerRun(100, func() { testFields.AppendStats(dst, "", st) }); n != 0 {
		t.Errorf("AppendStats allocates %v times", n)
	}
}

func TestValueFormats(t *testing.T) {
	for _, tc := range []struct {
		v    Value
		text string
		num  float64
	}{
		{Uint(1 << 60), "1152921504606846976", 1 << 60},
		{Int(-5), "-5", -5},
		{Float(1.25), "1.250", 1.25},
		{Bool(true), "true", 1},
		{Bool(false), "false", 0},
		{Text("half_open", 2), "half_open", 2},
	} {
		if tc.v.String() != tc.text || tc.v.Number() != tc.num {
			t.Errorf("%#v: %q %v, want %q %v", tc.v, tc.v.String(), tc.v.Number(), tc.text, tc.num)
		}
	}
}

func TestFieldsCollector(t *testing.T) {
	st := new(testStats)
	st.hits.Add(3)
	st.part.errs.Add(2)
	reads := 0
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector("x", testFields, prometheus.Labels{"port": "a"}, func() *testStats { reads++; return st }))
	srv := httptest.NewServer(AdminMux(reg, nil))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", http.StatusOK)
	for _, want := range []string{
		"# HELP x_lookups_total Lookups.", "# TYPE x_lookups_total counter",
		`x_lookups_total{port="a",result="hit"} 3`, `x_lookups_total{port="a",result="miss"} 0`,
		"# TYPE x_level gauge", `x_level{port="a"} 0`, `x_only_metric{port="a"} 1`,
		`x_errors_total{layer="part",port="a"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "only_stats") {
		t.Errorf("a stats-only field was exported:\n%s", body)
	}
	if reads != 1 {
		t.Errorf("read %d times in one scrape, want 1", reads)
	}
}

func TestListCollector(t *testing.T) {
	type shard struct{ keys uint64 }
	fs := Fields[shard]{{Stat: "keys", Metric: "keys", Kind: Gauge, Help: "Keys.",
		Read: func(s shard) Value { return Uint(s.keys) }}}
	var list []shard
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collectors{NewListCollector("x", fs, "shard", func() []shard { return list })})
	srv := httptest.NewServer(AdminMux(reg, nil))
	defer srv.Close()
	if body := get(t, srv.URL+"/metrics", http.StatusOK); strings.Contains(body, "x_keys") {
		t.Errorf("an empty list exported series:\n%s", body)
	}
	list = []shard{{5}, {7}}
	body := get(t, srv.URL+"/metrics", http.StatusOK)
	for _, want := range []string{`x_keys{shard="0"} 5`, `x_keys{shard="1"} 7`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
