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

// embedOpts is a daemon's configuration as the mains write it: its own
// keys around an embedded Daemon, whose keys read as its own.
type embedOpts struct {
	Listen string `toml:"listen"`
	Daemon
	Shards int `toml:"shards"`
}

func TestEmbeddedDaemon(t *testing.T) {
	o := embedOpts{Listen: "l", Daemon: DefaultDaemon(), Shards: 2}
	if got, want := Keys(o), []string{"listen", "max_conns", "max_value_bytes", "idle_timeout", "shutdown_timeout", "log_level", "log_format", "net_loop", "socket_io", "shards"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("keys %q, want %q", got, want)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	src := o
	src.Daemon.BindFlags(fs)
	if err := fs.Parse([]string{"-max-conns", "9", "-log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	dst := o
	if err := Override(&dst, &src, Set(fs)); err != nil {
		t.Fatal(err)
	}
	if dst.MaxConns != 9 || dst.LogLevel != "debug" || dst.Listen != "l" {
		t.Fatalf("override: %+v", dst)
	}
	var settings []string
	Settings(dst, func(k, v string) { settings = append(settings, k+" "+v) })
	if settings[1] != "maxconns 9" || settings[5] != "log_level debug" || settings[9] != "shards 2" {
		t.Fatalf("settings %q", settings)
	}
	next := dst
	next.MaxConns, next.Shards = 10, 3
	applied, restart := Reload(&dst, next, func(key string) bool { return key == "max_conns" })
	if !reflect.DeepEqual(applied, []string{"max_conns=10"}) || !reflect.DeepEqual(restart, []string{"shards=3"}) || dst.MaxConns != 10 {
		t.Fatalf("reload: applied %q restart %q, cur %+v", applied, restart, dst)
	}
	if field[int](next, "max_conns") != 10 {
		t.Fatal("field does not find an embedded key")
	}
	bad := o
	bad.MaxConns, bad.LogFormat = -1, "xml"
	if errs := bad.Check(); len(errs) < 2 {
		t.Fatalf("Check: %v", errs)
	}
}
