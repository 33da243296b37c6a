package metrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

func TestSnapshotScrape(t *testing.T) {
	type stats struct{ n atomic.Uint64 }
	st := new(stats)
	reads := 0
	snap := NewSnapshot(func() *stats { reads++; return st }).
		Counter("x_things_total", "Things.", prometheus.Labels{"layer": "l1"}, func(s *stats) float64 { return float64(s.n.Load()) }).
		Gauge("x_level", "Level.", nil, func(s *stats) float64 { return 7 })
	reg := prometheus.NewRegistry()
	reg.MustRegister(snap)
	st.n.Add(3)
	srv := httptest.NewServer(AdminMux(reg, nil))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", http.StatusOK)
	for _, want := range []string{"# TYPE x_things_total counter", `x_things_total{layer="l1"} 3`, "# TYPE x_level gauge", "x_level 7"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if reads != 1 {
		t.Errorf("read %d times in one scrape, want 1", reads)
	}
}

func TestRequestOutcomes(t *testing.T) {
	// Several layers share metric names, told apart by their layer label.
	reg := prometheus.NewRegistry()
	c := NewCommands(reg, "x", "client")
	NewCommands(reg, "x", "l1")
	start := time.Now()
	get := &protocol.Request{Command: protocol.CmdGet, Keys: [][]byte{[]byte("a"), []byte("b")}}
	hit := &protocol.Response{Hits: []protocol.Hit{{Index: 1}}}
	c.Request(get, hit, nil, start)
	c.Request(get, &protocol.Response{}, nil, start)
	c.Request(get, &protocol.Response{Status: protocol.StatusServerError}, errors.New("down"), start)
	set := &protocol.Request{Command: protocol.CmdSet, Keys: [][]byte{[]byte("a")}}
	c.Request(set, &protocol.Response{Status: protocol.StatusNotStored}, nil, start)
	for _, tc := range []struct {
		cmd  protocol.Command
		o    Outcome
		want uint64
	}{
		{protocol.CmdGet, OutcomeHit, 1}, {protocol.CmdGet, OutcomeMiss, 1},
		{protocol.CmdGet, OutcomeBackendError, 1}, {protocol.CmdSet, OutcomeNotStored, 1},
	} {
		if got := c.Requests(tc.cmd, tc.o); got != tc.want {
			t.Errorf("%v %v = %d, want %d", tc.cmd, tc.o, got, tc.want)
		}
	}
	if h, m := c.KeyHits(protocol.CmdGet), c.KeyMisses(protocol.CmdGet); h != 1 || m != 3 {
		t.Errorf("keys: %d hits %d misses, want 1 and 3", h, m)
	}
	if n := testing.AllocsPerRun(1000, func() { c.Request(get, hit, nil, start) }); n != 0 {
		t.Errorf("Request allocates %v times", n)
	}
}
