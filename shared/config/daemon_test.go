package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type daemonOpts struct {
	Listen   string   `toml:"listen"`
	MaxConns int      `toml:"max_conns"`
	Idle     Duration `toml:"idle_timeout"`
	LogLevel string   `toml:"log_level"`
}

func daemonDefaults() daemonOpts { return daemonOpts{Listen: "a", LogLevel: "info"} }

func bindDaemon(fs *flag.FlagSet, o *daemonOpts) {
	fs.StringVar(&o.Listen, "listen", o.Listen, "")
	fs.IntVar(&o.MaxConns, "max-conns", o.MaxConns, "")
	fs.Var(&o.Idle, "idle-timeout", "")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "")
}

// TestParse: defaults, then the file, then only the flags set.
func TestParse(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.toml")
	os.WriteFile(p, []byte("listen = \"file\"\nmax_conns = 7\nidle_timeout = \"3s\"\n"), 0o600)
	o, ver, err := Parse("d", []string{"-config", p, "-max-conns", "9"}, daemonDefaults, bindDaemon)
	if err != nil || ver {
		t.Fatal(err, ver)
	}
	if o.Listen != "file" || o.MaxConns != 9 || o.Idle != Duration(3*time.Second) || o.LogLevel != "info" {
		t.Fatalf("got %+v", o)
	}
	if _, ver, err := Parse("d", []string{"-version"}, daemonDefaults, bindDaemon); !ver || err != nil {
		t.Fatal("version", ver, err)
	}
	if _, _, err := Parse("d", []string{"extra"}, daemonDefaults, bindDaemon); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Fatal(err)
	}
}

// TestNeedAndCheckLog: the error names key and flag; nil when the rule holds.
func TestNeedAndCheckLog(t *testing.T) {
	err := errors.Join(Need(true, "a", 1, "x"), Need(false, "max_conns", -1, "want 0 or more"))
	if err == nil || err.Error() != "max_conns (-max-conns) -1: want 0 or more" {
		t.Fatalf("got %v", err)
	}
	if errs := CheckLog("loud", "xml"); len(errs) != 2 {
		t.Fatalf("got %v", errs)
	}
}

// TestReloader: log_level and the limits are applied and recorded in cur;
// other keys are left for a restart; a load error changes nothing.
func TestReloader(t *testing.T) {
	var buf bytes.Buffer
	log, level := NewLogger(&buf, "text", "info")
	var gotConns int
	var gotIdle time.Duration
	r := Reloader{Log: log, Level: level, Prefix: "d: ", SetLimits: func(n int, idle time.Duration) { gotConns, gotIdle = n, idle }}
	cur := daemonDefaults()
	next := daemonOpts{Listen: "b", Idle: Duration(time.Second), LogLevel: "warn"}
	r.Apply(&cur, next, nil, 100)
	if level.Level().String() != "WARN" || gotConns != 100 || gotIdle != time.Second {
		t.Fatalf("level %v conns %d idle %v", level.Level(), gotConns, gotIdle)
	}
	if cur.Listen != "a" || cur.LogLevel != "warn" || cur.Idle != Duration(time.Second) {
		t.Fatalf("cur %+v", cur)
	}
	if !strings.Contains(buf.String(), `d: SIGHUP: configuration reloaded`) || !strings.Contains(buf.String(), `needs_restart="[listen=b]"`) {
		t.Fatalf("log %q", buf.String())
	}
	r.Apply(&cur, daemonOpts{}, errors.New("bad file"), 100)
	if !strings.Contains(buf.String(), "d: SIGHUP: configuration not reloaded") || cur.LogLevel != "warn" {
		t.Fatalf("log %q cur %+v", buf.String(), cur)
	}
}
