package main

import (
	"github.com/moneta-cache/moneta/shared/config/configtest"
	"testing"
)

// TestDeployExample: deploy/mnemonic.toml loads as shipped (all commented
// out) and, with every "# key = value" line uncommented, documents every
// key with its real default.
func TestDeployExample(t *testing.T) {
	configtest.Example(t, "../../../deploy/mnemonic.toml", load, defaultConfig())
}

// TestConfigErrorsNameTheKey: a bad file or flag value stops start-up with
// an error that names the key.
func TestConfigErrorsNameTheKey(t *testing.T) {
	configtest.ErrorsNameTheKey(t, load, [][2]string{
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
	})
}

// load is loadConfig as configtest calls it.
func load(args []string) (Config, error) {
	c, _, err := loadConfig(args)
	return c, err
}
