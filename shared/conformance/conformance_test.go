package conformance

import (
	"flag"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/server"
	"github.com/moneta-cache/moneta/shared/server/servertest"
)

// Test flags. They are package-level because the testing package gives tests
// no other way to see command-line flags.
var (
	flagAddr    = flag.String("addr", "", "run the suite against the server at this address instead of a fresh memcached")
	flagGroups  = flag.String("groups", "", "comma-separated groups to run (default: all)")
	flagRewrite = flag.Bool("rewrite", false, "regenerate the expected replies of every script from a fresh memcached")
)

// TestMemcached runs every group against a fresh real memcached: the
// reference must pass its own expectations. With -addr it runs against that
// server instead; with -rewrite it regenerates the expectations.
func TestMemcached(t *testing.T) {
	t.Parallel()
	var groups []string
	if *flagGroups != "" {
		groups = strings.Split(*flagGroups, ",")
	}
	if *flagRewrite {
		if *flagAddr != "" {
			t.Fatal("-rewrite always uses a fresh memcached; drop -addr")
		}
		mc := mctest.Start(t)
		run(t, Target{Name: "memcached", Addr: mc.Addr, Groups: groups}, scriptsOnDisk(), runOptions{rewrite: true, dir: "testdata"})
		return
	}
	tgt := Target{Name: "memcached", Addr: *flagAddr, Groups: groups}
	if tgt.Addr == "" {
		tgt.Addr = mctest.Start(t).Addr
	} else {
		tgt.Name = tgt.Addr
	}
	Run(t, tgt)
}

func scriptsOnDisk() fs.FS { return os.DirFS("testdata") }

// TestMemstore runs the suite against the in-memory reference handler
// served by the shared server (text, meta and binary codecs). memstore
// claims memcached's semantics throughout, so it takes every group; the
// scripts it is known to fail are skipped with the reason, for the owners of
// memstore and the codecs to pick up.
func TestMemstore(t *testing.T) {
	if *flagAddr != "" || *flagRewrite {
		t.Skip("-addr/-rewrite: only TestMemcached runs")
	}
	t.Parallel()
	// The server adds its connection lines to the store's stats.
	_, addr := servertest.StartConfig(t, "unix", server.Config{}, memstore.New(memstore.Options{}))
	Run(t, Target{Name: "memstore", Addr: addr, Skip: map[string]string{
		"quirks/binary-unknown-body": "binproto answers an unknown opcode with a body (memcached closes silently)",
		"stats/unknown-group":        `"stats nosuchgroup" answers CLIENT_ERROR bad command line format, memcached ERROR`,
		"ttl/meta":                   "ma with t returns t-1 for a vivified counter: protocol.Response carries no TTL for incr/decr",
	}})
}
