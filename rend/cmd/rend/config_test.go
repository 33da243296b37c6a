package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOptionsFileThenFlags(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rend.toml")
	os.WriteFile(path, []byte("listen = \"127.0.0.1:1\"\nl2 = \"unix:/tmp/mn.sock\"\nchunk_size = 2048\nbackend_timeout = \"3s\"\n"), 0o600)
	o, _, err := loadOptions([]string{"-config", path, "-chunk-size", "512", "-batch-listen", ""})
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:1" || o.L2 != "unix:/tmp/mn.sock" || o.ChunkSize != 512 || o.BatchListen != "" ||
		time.Duration(o.BackendTimeout) != 3*time.Second || o.L1 != "unix:./var/memcached.sock" || o.MaxItemSize != 20<<20 {
		t.Fatalf("options %+v", o)
	}
	os.WriteFile(path, []byte("chunk_sise = 1\n"), 0o600)
	if _, _, err := loadOptions([]string{"-config", path}); err == nil {
		t.Fatal("unknown key accepted")
	}
	if _, _, err := loadOptions([]string{"-chunk-size", "1"}); err == nil {
		t.Fatal("tiny chunk size accepted")
	}
	if _, v, err := loadOptions([]string{"-version"}); err != nil || !v {
		t.Fatal("-version")
	}
}
