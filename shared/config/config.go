// Package config loads moneta's TOML configuration files. Binaries build
// their Options struct from defaults, then the file (Load), then the flags
// the operator set explicitly (Override), and validate the result.
package config

import (
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load decodes the TOML file at path into dst, a pointer to a struct whose
// fields carry `toml:"name"` tags. Keys the struct does not know are an error
// naming them, so a typo never silently falls back to a default.
func Load(path string, dst any) error {
	md, err := toml.DecodeFile(path, dst)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return fmt.Errorf("config %s: unknown key(s): %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// Set returns the names of the flags the operator set on the command line,
// so main can apply just those over the file's values.
func Set(fs *flag.FlagSet) map[string]bool {
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// FlagToKey maps a flag name ("max-item-size") to its TOML key ("max_item_size").
func FlagToKey(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}
