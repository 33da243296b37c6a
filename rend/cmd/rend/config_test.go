package main

import (
	"github.com/moneta-cache/moneta/shared/config/configtest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOptionsFileThenFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rend.toml")
	os.WriteFile(path, []byte("listen = \"127.0.0.1:1\"\nl2 = \"unix:/tmp/mn.sock\"\nchunk_size = 2048\nbackend_timeout = \"3s\"\n"), 0o600)
	o, _, err := loadConfig([]string{"-config", path, "-chunk-size", "512", "-batch-listen", ""})
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:1" || o.L2 != "unix:/tmp/mn.sock" || o.ChunkSize != 512 || o.BatchListen != "" ||
		time.Duration(o.BackendTimeout) != 3*time.Second || o.L1 != "unix:./var/memcached.sock" || o.MaxItemSize != 20<<20 {
		t.Fatalf("options %+v", o)
	}
	os.WriteFile(path, []byte("chunk_sise = 1\n"), 0o600)
	if _, _, err := loadConfig([]string{"-config", path}); err == nil {
		t.Fatal("unknown key accepted")
	}
	if _, _, err := loadConfig([]string{"-chunk-size", "1"}); err == nil {
		t.Fatal("tiny chunk size accepted")
	}
	if _, v, err := loadConfig([]string{"-version"}); err != nil || !v {
		t.Fatal("-version")
	}
}

// TestDeployExample: deploy/rend.toml loads as shipped (all commented out)
// and, with every "# key = value" line uncommented, documents every key
// with its real default.
func TestDeployExample(t *testing.T) {
	configtest.Example(t, "../../../deploy/rend.toml", load, defaultConfig())
}

// TestOptionErrorsNameTheKey: a bad file or flag value stops start-up with
// an error that names the key.
func TestOptionErrorsNameTheKey(t *testing.T) {
	configtest.ErrorsNameTheKey(t, load, [][2]string{
		{"chunk_sise = 1\n", "chunk_sise"},
		{"chunk_size = \"big\"\n", "chunk_size"},
		{"chunk_size = 8\n", "chunk_size"},
		{"backend_timeout = \"3x\"\n", "backend_timeout"},
		{"backend_timeout = \"0s\"\n", "backend_timeout"},
		{"idle_timeout = \"-1s\"\n", "idle_timeout"},
		{"max_conns = -1\n", "max_conns"},
		{"backend_writes = \"fast\"\n", "backend_writes"},
		{"log_format = \"xml\"\n", "log_format"},
		{"log_level = \"loud\"\n", "log_level"},
		{"l2 = \"mnemonic\"\n", "l2"},
		{"[l1]\naddr = 1\n", "l1"},
	})
}

// TestAutoMaxProcs: half the CPUs, never zero; an explicit value is kept
// and a negative one names the key.
func TestAutoMaxProcs(t *testing.T) {
	for cpus, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 32: 16} {
		if got := autoMaxProcs(cpus); got != want {
			t.Errorf("autoMaxProcs(%d) = %d, want %d", cpus, got, want)
		}
	}
	if o, _, err := loadConfig([]string{"-gomaxprocs", "3"}); err != nil || o.GoMaxProcs != 3 {
		t.Fatalf("-gomaxprocs 3: %+v %v", o, err)
	}
	if _, _, err := loadConfig([]string{"-gomaxprocs", "-1"}); err == nil || !strings.Contains(err.Error(), "gomaxprocs") {
		t.Fatalf("-gomaxprocs -1: %v", err)
	}
}

// load is loadConfig as configtest calls it.
func load(args []string) (Config, error) {
	c, _, err := loadConfig(args)
	return c, err
}
