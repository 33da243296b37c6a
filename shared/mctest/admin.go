package mctest

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Get fetches url (a daemon's admin endpoint) and returns the status code
// and the body. It fails tb only if the request cannot be made: the
// caller decides which codes are right.
func Get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// Scrape reads the Prometheus text of http://admin/metrics into
// "name{labels}" -> value, with the labels as Prometheus prints them
// (sorted by name). It fails tb on any status but 200 or a bad sample.
func Scrape(tb testing.TB, admin string) map[string]float64 {
	tb.Helper()
	code, body := Get(tb, "http://"+admin+"/metrics")
	if code != http.StatusOK {
		tb.Fatalf("/metrics: %d\n%.300s", code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		i := strings.LastIndexByte(l, ' ')
		if l == "" || l[0] == '#' || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			tb.Fatalf("/metrics line %q: %v", l, err)
		}
		out[l[:i]] = v
	}
	return out
}
