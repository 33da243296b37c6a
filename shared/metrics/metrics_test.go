package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

func TestCommandsScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := NewCommands(reg, "rend", "client")
	start := time.Now()
	c.Observe(protocol.CmdGet, OutcomeOK, start)
	c.Keys(protocol.CmdGet, 2, 1)
	c.Observe(protocol.CmdSet, OutcomeServerError, start)
	if got := c.KeyHits(protocol.CmdGet); got != 2 {
		t.Fatalf("hits = %d", got)
	}
	if got := c.Total(protocol.CmdSet); got != 1 {
		t.Fatalf("set total = %d", got)
	}
	srv := httptest.NewServer(AdminMux(reg, func() (bool, map[string]string) {
		return false, map[string]string{"l2": "down"}
	}))
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", http.StatusOK)
	for _, want := range []string{
		`rend_requests_total{command="get",layer="client",outcome="ok"} 1`,
		`rend_keys_total{command="get",layer="client",result="miss"} 1`,
		`rend_request_seconds_count{command="set",layer="client"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if b := get(t, srv.URL+"/healthz", http.StatusServiceUnavailable); !strings.Contains(b, `"l2":"down"`) {
		t.Errorf("/healthz = %s", b)
	}
	if b := get(t, srv.URL+"/metrics.json", http.StatusOK); !strings.Contains(b, "rend_requests_total") {
		t.Errorf("/metrics.json = %.200s", b)
	}
	get(t, srv.URL+"/debug/pprof/", http.StatusOK)
}

func get(t *testing.T, url string, code int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, code)
	}
	return string(b)
}

func TestObserveDoesNotAllocate(t *testing.T) {
	c := NewCommands(prometheus.NewRegistry(), "x", "l1")
	start := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		c.Observe(protocol.CmdGet, OutcomeOK, start)
		c.Keys(protocol.CmdGet, 1, 0)
	}); n != 0 {
		t.Fatalf("Observe allocates %v times", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	c := NewCommands(prometheus.NewRegistry(), "x", "l1")
	start := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.Observe(protocol.CmdGet, OutcomeOK, start)
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

// TestBatchCountsLikeRequest: a batch counts exactly what Request counts
// for each of its requests, runs of one command and outcome included.
func TestBatchCountsLikeRequest(t *testing.T) {
	get := &protocol.Request{Command: protocol.CmdGet, Keys: [][]byte{[]byte("a"), []byte("b")}}
	gets := &protocol.Request{Command: protocol.CmdGets, Keys: [][]byte{[]byte("c")}}
	hit := func() *protocol.Response { return &protocol.Response{Hits: []protocol.Hit{{Index: 1}}} }
	reqs := []*protocol.Request{get, get, get, gets, get, gets, get}
	resps := []*protocol.Response{hit(), hit(), {}, {}, hit(), {Status: protocol.StatusServerError}, hit()}
	errs := []error{nil, nil, nil, nil, nil, errors.New("down"), nil}
	start := time.Now()
	one, batch := NewCommands(prometheus.NewRegistry(), "x", "l1"), NewCommands(prometheus.NewRegistry(), "x", "l1")
	for i := range reqs {
		one.Request(reqs[i], resps[i], errs[i], start)
	}
	batch.Batch(reqs, resps, errs, start)
	for _, cmd := range []protocol.Command{protocol.CmdGet, protocol.CmdGets} {
		for o := Outcome(0); o < numOutcomes; o++ {
			if a, b := one.Requests(cmd, o), batch.Requests(cmd, o); a != b {
				t.Errorf("%v %v: batch %d, one by one %d", cmd, o, b, a)
			}
		}
		if a, b := one.KeyHits(cmd), batch.KeyHits(cmd); a != b {
			t.Errorf("%v key hits: batch %d, one by one %d", cmd, b, a)
		}
		if a, b := one.KeyMisses(cmd), batch.KeyMisses(cmd); a != b {
			t.Errorf("%v key misses: batch %d, one by one %d", cmd, b, a)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { batch.Batch(reqs, resps, errs, start) }); n != 0 {
		t.Errorf("Batch allocates %v times", n)
	}
}
