package fleet

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"gopkg.in/yaml.v3"

	"github.com/moneta-cache/moneta/shared/mctest"
)

// ruleFile is the structure of a Prometheus rules file, with every field a
// rule may have; decoding with KnownFields rejects anything else.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert         string            `yaml:"alert"`
			Record        string            `yaml:"record"`
			Expr          string            `yaml:"expr"`
			For           string            `yaml:"for"`
			KeepFiringFor string            `yaml:"keep_firing_for"`
			Labels        map[string]string `yaml:"labels"`
			Annotations   map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// alertExprs checks deploy/prometheus-alerts.yml's structure (promtool's
// checks when promtool is installed, a structural check always) and returns
// its expressions.
func alertExprs(t *testing.T) []string {
	t.Helper()
	const file = "../prometheus-alerts.yml"
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed (Debian package prometheus): structural check only")
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var rf ruleFile
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var exprs []string
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Fatalf("%s: group %q without a name or rules", file, g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || r.Record != "":
				t.Errorf("%s: rule %q: alert rules only, with a name", file, r.Alert)
			case seen[r.Alert]:
				t.Errorf("%s: alert %s twice", file, r.Alert)
			case strings.TrimSpace(r.Expr) == "" || strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")"):
				t.Errorf("%s: %s: empty or unbalanced expr %q", file, r.Alert, r.Expr)
			case r.For != "" && !promDuration.MatchString(r.For):
				t.Errorf("%s: %s: for %q is not a Prometheus duration", file, r.Alert, r.For)
			case !map[string]bool{"critical": true, "warning": true, "info": true}[r.Labels["severity"]]:
				t.Errorf("%s: %s: severity %q", file, r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "":
				t.Errorf("%s: %s: no summary", file, r.Alert)
			}
			seen[r.Alert] = true
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("%s: only %d alerts", file, len(exprs))
	}
	return exprs
}

// dashboardExprs checks deploy/grafana-dashboard.json's structure and
// returns the queries of its panels.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	const file = "../grafana-dashboard.json"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		ID      int            `json:"id"`
		Type    string         `json:"type"`
		Title   string         `json:"title"`
		GridPos map[string]int `json:"gridPos"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("%s: title %q uid %q schemaVersion %d, %d panels", file, d.Title, d.UID, d.SchemaVersion, len(d.Panels))
	}
	var exprs []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if p.Title == "" || ids[p.ID] || p.GridPos["w"] == 0 || p.GridPos["h"] == 0 {
			t.Errorf("%s: panel %d %q: missing title, duplicate id or no size", file, p.ID, p.Title)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no queries", file, p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				t.Errorf("%s: panel %q: empty query", file, p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// series is one line of a Prometheus text exposition.
type series struct {
	name   string
	labels map[string]string
}

// scrape reads a /metrics page into its series.
func scrape(t *testing.T, admin string) []series {
	t.Helper()
	c := http.Client{Timeout: timeout}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []series
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s := series{labels: map[string]string{}}
		name, rest, hasLabels := strings.Cut(line, "{")
		if !hasLabels {
			name, _, _ = strings.Cut(line, " ")
		}
		s.name = name
		if hasLabels {
			body, _, _ := strings.Cut(rest, "}")
			for _, m := range labelPair.FindAllStringSubmatch(body, -1) {
				s.labels[m[1]] = m[2]
			}
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return out
}

var (
	labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
	// selector finds a metric name of ours with its optional matchers.
	selector = regexp.MustCompile(`\b((?:rend|mnemonic|process|go)_[a-zA-Z0-9_]+)(\{[^}]*\})?`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
)

// Every metric the dashboard's and the alert rules' queries name exists in
// the /metrics of a running rend (rend_*, go_*, process_*) or mnemonic
// (mnemonic_*), and each selector's = and =~ label matchers select at least
// one series there (so a misspelled label value fails too). Target labels
// Prometheus adds (job, instance) and Grafana variables are not checked.
func TestDashboardAndAlertMetricsExist(t *testing.T) {
	exprs := append(alertExprs(t), dashboardExprs(t)...)
	h := mctest.StartHost(t, bin.Binaries, 16)
	// A little traffic, so that nothing is missing for want of use.
	mc := memcache.New(h.Regular)
	mc.Timeout = timeout
	if err := mc.Set(&memcache.Item{Key: "m", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Get("m"); err != nil {
		t.Fatal(err)
	}
	var exposed []series
	mctest.Eventually(t, 10*time.Second, "both /metrics pages", func() bool {
		exposed = append(scrape(t, h.Admin), scrape(t, h.MnemonicAdmin)...)
		return len(exposed) > 0
	})
	byName := map[string][]series{}
	for _, s := range exposed {
		byName[s.name] = append(byName[s.name], s)
	}
	checked := map[string]bool{}
	for _, e := range exprs {
		for _, m := range selector.FindAllStringSubmatch(e, -1) {
			name, sel := m[1], m[2]
			all, ok := byName[name]
			if !ok {
				t.Errorf("%s (in %q) is not exported by rend or mnemonic", name, e)
				continue
			}
			checked[name] = true
			if !selects(t, all, sel) {
				t.Errorf("%s%s (in %q) selects no series of %d", name, sel, e, len(all))
			}
		}
	}
	if len(checked) < 30 {
		t.Fatalf("only %d distinct metrics checked: the name pattern missed the queries", len(checked))
	}
	t.Logf("%d queries name %d distinct metrics, all exported", len(exprs), len(checked))
}

// selects reports whether some series satisfies every = and =~ matcher of
// sel ("{a="x",b=~"y|z"}") on a label the series family has.
func selects(t *testing.T, all []series, sel string) bool {
	type m struct {
		label string
		re    *regexp.Regexp
	}
	var ms []m
	for _, mm := range matcher.FindAllStringSubmatch(sel, -1) {
		label, op, val := mm[1], mm[2], mm[3]
		if label == "job" || label == "instance" || strings.Contains(val, "$") || (op != "=" && op != "=~") {
			continue
		}
		if op == "=" {
			val = regexp.QuoteMeta(val)
		}
		re, err := regexp.Compile("^(?:" + val + ")$")
		if err != nil {
			t.Errorf("matcher %s: %v", mm[0], err)
			return false
		}
		ms = append(ms, m{label, re})
	}
	for _, s := range all {
		ok := true
		for _, x := range ms {
			if !x.re.MatchString(s.labels[x.label]) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
