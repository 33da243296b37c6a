package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type opts struct {
	Listen  string        `toml:"listen"`
	Shards  int           `toml:"shards"`
	Timeout time.Duration `toml:"timeout"`
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte("listen = \"unix:/x\"\nshards = 8\ntimeout = \"250ms\"\n"), 0o600)
	var o opts
	if err := Load(p, &o); err != nil {
		t.Fatal(err)
	}
	if o.Listen != "unix:/x" || o.Shards != 8 || o.Timeout != 250*time.Millisecond {
		t.Fatalf("got %+v", o)
	}
	os.WriteFile(p, []byte("shrads = 8\n"), 0o600)
	err := Load(p, &o)
	if err == nil || !strings.Contains(err.Error(), "shrads") {
		t.Fatalf("unknown key not reported: %v", err)
	}
	os.WriteFile(p, []byte("shards = \"x\"\n"), 0o600)
	if err := Load(p, &o); err == nil {
		t.Fatal("bad type accepted")
	}
}
