// Package configtest holds the checks both daemons' configuration tests run
// against their shipped TOML example and their error messages.
package configtest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/config"
)

// Load is a daemon's configuration loader (flags, then -config) as the
// tests call it.
type Load[T any] func(args []string) (T, error)

// Example checks that the TOML file at example loads as shipped (every
// setting commented out) to defaults and, with every "# key = value" line
// uncommented, documents every key of T with its real default.
func Example[T comparable](t *testing.T, example string, load Load[T], defaults T) {
	t.Helper()
	c, err := load([]string{"-config", example})
	if err != nil {
		t.Fatal(err)
	}
	if c != defaults {
		t.Fatalf("as shipped: %+v, want the defaults %+v", c, defaults)
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
	for _, key := range config.Keys(defaults) {
		if !documented[key] {
			t.Errorf("%s does not document %s", filepath.Base(example), key)
		}
	}
	path := filepath.Join(t.TempDir(), filepath.Base(example))
	os.WriteFile(path, []byte(uncommented.String()), 0o600)
	if c, err = load([]string{"-config", path}); err != nil {
		t.Fatal(err)
	}
	if c != defaults {
		t.Fatalf("documented values %+v differ from the defaults %+v", c, defaults)
	}
}

// ErrorsNameTheKey checks that each bad file stops load with an error
// naming its key (cases: {file, key}), and that a bad -log-format flag is named as the flag.
func ErrorsNameTheKey[T any](t *testing.T, load Load[T], cases [][2]string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.toml")
	for _, tc := range cases {
		file, key := tc[0], tc[1]
		os.WriteFile(path, []byte(file), 0o600)
		_, err := load([]string{"-config", path})
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: error %v does not name %s", file, err, key)
		}
	}
	if _, err := load([]string{"-log-format", "xml"}); err == nil || !strings.Contains(err.Error(), "-log-format") {
		t.Errorf("flag: error %v does not name -log-format", err)
	}
}
