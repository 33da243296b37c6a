package config

import (
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

type dur time.Duration

func (d dur) String() string { return time.Duration(d).String() }

type fieldOpts struct {
	Listen      string `toml:"listen"`
	Admin       string `toml:"admin"`
	MaxConns    int    `toml:"max_conns"`
	MaxItemSize int    `toml:"max_item_size"`
	IdleTimeout dur    `toml:"idle_timeout"`
	Shutdown    dur    `toml:"shutdown_timeout"`
	Sync        bool   `toml:"sync_writes"`
	LogLevel    string `toml:"log_level"`
}

func TestOverride(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("config", "", "")
	src := fieldOpts{Listen: "flag", MaxConns: 1}
	fs.StringVar(&src.Listen, "listen", src.Listen, "")
	fs.IntVar(&src.MaxConns, "max-conns", src.MaxConns, "")
	if err := fs.Parse([]string{"-config", "x.toml", "-max-conns", "7"}); err != nil {
		t.Fatal(err)
	}
	dst := fieldOpts{Listen: "file", MaxConns: 3}
	if err := Override(&dst, &src, Set(fs)); err != nil {
		t.Fatal(err)
	}
	if dst.Listen != "file" || dst.MaxConns != 7 {
		t.Fatalf("got %+v", dst)
	}
	err := Override(&dst, &src, map[string]bool{"bogus-flag": true})
	if err == nil || !strings.Contains(err.Error(), "-bogus-flag") {
		t.Fatalf("unknown flag not reported: %v", err)
	}
}

func TestSettings(t *testing.T) {
	o := fieldOpts{Listen: "unix:/x", MaxConns: 10, MaxItemSize: 1024,
		IdleTimeout: dur(90 * time.Second), Shutdown: dur(1500 * time.Millisecond), Sync: true, LogLevel: "info"}
	var got []string
	Settings(o, func(k, v string) { got = append(got, k+" "+v) })
	want := []string{"listen unix:/x", "admin NULL", "maxconns 10", "item_size_max 1024",
		"idle_timeout 90", "shutdown_timeout 1.5s", "sync_writes true", "log_level info"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestReload(t *testing.T) {
	cur := fieldOpts{Listen: "a", MaxConns: 1, LogLevel: "info", IdleTimeout: dur(time.Second)}
	next := cur
	next.Listen, next.MaxConns, next.LogLevel = "b", 2, "debug"
	var asked []string
	applied, restart := Reload(&cur, next, func(key string) bool {
		asked = append(asked, key)
		return key != "listen"
	})
	if want := []string{"listen", "max_conns", "log_level"}; !reflect.DeepEqual(asked, want) {
		t.Fatalf("asked %q, want %q", asked, want)
	}
	if want := []string{"max_conns=2", "log_level=debug"}; !reflect.DeepEqual(applied, want) {
		t.Fatalf("applied %q, want %q", applied, want)
	}
	if want := []string{"listen=b"}; !reflect.DeepEqual(restart, want) {
		t.Fatalf("restart %q, want %q", restart, want)
	}
	if cur.Listen != "a" || cur.MaxConns != 2 || cur.LogLevel != "debug" {
		t.Fatalf("cur %+v", cur)
	}
	applied, restart = Reload(&cur, cur, func(string) bool { t.Fatal("no change, yet asked"); return false })
	if len(applied) != 0 || len(restart) != 0 || applied == nil || restart == nil {
		t.Fatalf("no change: %q %q", applied, restart)
	}
}
