package conformance

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
)

// Target is a server to run the suite against.
type Target struct {
	// Name identifies the target in messages.
	Name string
	// Addr is the server's address: "host:port" or "unix:/path".
	Addr string
	// Groups are the script groups the target supports (see AllGroups).
	// Empty means every group. An unknown name fails the test.
	Groups []string
	// Skip lists scripts the target is known to fail, as "group/script"
	// (file name without .txt), with the reason shown when skipping.
	Skip map[string]string
}

// embedded holds the scripts, so that callers in other modules and other
// working directories find them.
//
//go:embed testdata
var embedded embed.FS

// scripts returns the embedded scripts' file system, rooted at testdata.
func scripts() fs.FS {
	sub, err := fs.Sub(embedded, "testdata")
	if err != nil {
		panic(err) // cannot happen: the directory is embedded
	}
	return sub
}

// AllGroups returns the names of every script group, sorted.
func AllGroups() []string {
	groups, err := loadGroups(scripts())
	if err != nil {
		panic(err) // the embedded scripts are checked by this package's tests
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	slices.Sort(names)
	return names
}

// Run runs every script of each group tgt supports against tgt.Addr, as
// subtests <group>/<script>, one script at a time. Each script starts with a
// flush_all; a mismatch fails the script with a diff of the normalised
// replies.
func Run(t *testing.T, tgt Target) {
	t.Helper()
	run(t, tgt, scripts(), runOptions{})
}

// runOptions are the knobs of a run.
type runOptions struct {
	// rewrite records the replies as the new expectations and writes the
	// changed scripts under dir.
	rewrite bool
	dir     string
	// timeout bounds each exchange (the time a correct server needs is
	// milliseconds; this is only spent on failures).
	timeout time.Duration
}

const (
	defaultTimeout = 5 * time.Second
	// settle is how long a reply that does not (yet) match may stay idle
	// after the synchronisation reply before it is judged. It is spent on
	// mismatches and, in rewrite mode, on every step.
	settle = 30 * time.Millisecond
	// nosyncIdle ends the reply of a nosync step.
	nosyncIdle   = 200 * time.Millisecond
	pollInterval = 50 * time.Millisecond
	syncOpaque   = 0x5ec0ffee
)

// loadGroups parses every script of fsys: group directory -> scripts
// sorted by name.
func loadGroups(fsys fs.FS) (map[string][]*script, error) {
	groups := map[string][]*script{}
	dirs, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := fs.ReadDir(fsys, d.Name())
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if f.IsDir() || !strings.HasSuffix(f.Name(), ".txt") {
				continue
			}
			p := path.Join(d.Name(), f.Name())
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				return nil, err
			}
			s, err := parseScript(p, data)
			if err != nil {
				return nil, err
			}
			s.group = d.Name()
			s.name = strings.TrimSuffix(f.Name(), ".txt")
			groups[s.group] = append(groups[s.group], s)
		}
	}
	for _, list := range groups {
		slices.SortFunc(list, func(a, b *script) int { return strings.Compare(a.name, b.name) })
	}
	return groups, nil
}

func run(t *testing.T, tgt Target, fsys fs.FS, opts runOptions) {
	t.Helper()
	if opts.timeout <= 0 {
		opts.timeout = defaultTimeout
	}
	groups, err := loadGroups(fsys)
	if err != nil {
		t.Fatalf("conformance scripts: %v", err)
	}
	sel := slices.Clone(tgt.Groups)
	if len(sel) == 0 {
		for g := range groups {
			sel = append(sel, g)
		}
	}
	slices.Sort(sel)
	sel = slices.Compact(sel)
	for _, g := range sel {
		if _, ok := groups[g]; !ok {
			t.Fatalf("target %s: unknown conformance group %q", tgt.Name, g)
		}
	}
	if err := flushAll(tgt.Addr, opts.timeout); err != nil {
		t.Fatalf("target %s at %s: %v", tgt.Name, tgt.Addr, err)
	}
	for _, g := range sel {
		t.Run(g, func(t *testing.T) {
			for _, s := range groups[g] {
				t.Run(s.name, func(t *testing.T) {
					if reason, ok := tgt.Skip[g+"/"+s.name]; ok {
						t.Skipf("target %s: %s", tgt.Name, reason)
					}
					runScript(t, tgt.Addr, s, opts)
				})
			}
		})
	}
}

// flushAll empties the server through a connection of its own.
func flushAll(address string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := addr.Dial(ctx, address, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("flush_all\r\n")); err != nil {
		return fmt.Errorf("flush_all: %w", err)
	}
	buf := make([]byte, 0, 64)
	for !bytes.HasSuffix(buf, crlf) {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil || len(buf) == cap(buf) {
			return fmt.Errorf("flush_all: reply %q, %v", buf, err)
		}
	}
	if string(buf) != "OK\r\n" {
		return fmt.Errorf("flush_all: reply %q", buf)
	}
	return nil
}
