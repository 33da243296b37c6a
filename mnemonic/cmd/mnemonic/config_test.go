package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestDeployExample: deploy/mnemonic.toml loads as shipped (all commented
// out) and, with every "# key = value" line uncommented, documents every
// key with its real default.
func TestDeployExample(t *testing.T) {
	const example = "../../../deploy/mnemonic.toml"
	c, _, err := loadConfig([]string{"-config", example})
	if err != nil {
		t.Fatal(err)
	}
	if c != defaultConfig() {
		t.Fatalf("as shipped: %+v, want the defaults %+v", c, defaultConfig())
	}
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`(?m)^# ([a-z0-9_]+ = .*)$`)
	documented := map[string]bool{}
	var uncommented strings.Builder
	for _, m := range setting.FindAllStringSubmatch(string(b), -1) {
		documented[strings.Fields(m[1])[0]] = true
		uncommented.WriteString(m[1] + "\n")
	}
	ty := reflect.TypeOf(Config{})
	for i := 0; i < ty.NumField(); i++ {
		if key := ty.Field(i).Tag.Get("toml"); !documented[key] {
			t.Errorf("deploy/mnemonic.toml does not document %s", key)
		}
	}
	path := filepath.Join(t.TempDir(), "mnemonic.toml")
	os.WriteFile(path, []byte(uncommented.String()), 0o600)
	if c, _, err = loadConfig([]string{"-config", path}); err != nil {
		t.Fatal(err)
	}
	if c != defaultConfig() {
		t.Fatalf("documented values %+v differ from the defaults %+v", c, defaultConfig())
	}
}

// TestConfigErrorsNameTheKey: a bad file or flag value stops start-up with
// an error that names the key.
func TestConfigErrorsNameTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mnemonic.toml")
	for _, tc := range []struct{ file, key string }{
		{"shardz = 1\n", "shardz"},
		{"shards = \"four\"\n", "shards"},
		{"shards = 300\n", "shards"},
		{"listen = \"nowhere\"\n", "listen"},
		{"admin = \"nowhere\"\n", "admin"},
		{"max_conns = -1\n", "max_conns"},
		{"idle_timeout = \"3x\"\n", "idle_timeout"},
		{"idle_timeout = \"-1s\"\n", "idle_timeout"},
		{"shutdown_timeout = \"-1s\"\n", "shutdown_timeout"},
		{"max_procs = -1\n", "max_procs"},
		{"gc_percent = -1\n", "gc_percent"},
		{"log_level = \"loud\"\n", "log_level"},
		{"log_format = \"xml\"\n", "log_format"},
		{"compression = \"gzip\"\n", "compression"},
		{"compaction_style = \"tiered\"\n", "compaction_style"},
		{"background_jobs = 100\n", "background_jobs"},
		{"write_buffer_bytes = 1\n", "write_buffer_bytes"},
		{"max_item_size = -1\n", "max_item_size"},
		{"max_disk_bytes = 1\n", "max_disk_bytes"},
		{"blob_files = true\n", "blob_files"},
		{"[data]\ndir = 1\n", "data"},
	} {
		os.WriteFile(path, []byte(tc.file), 0o600)
		_, _, err := loadConfig([]string{"-config", path})
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v does not name %s", tc.file, err, tc.key)
		}
	}
	if _, _, err := loadConfig([]string{"-log-format", "xml"}); err == nil || !strings.Contains(err.Error(), "-log-format") {
		t.Errorf("flag: error %v does not name -log-format", err)
	}
}
