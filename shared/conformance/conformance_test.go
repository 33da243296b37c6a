package conformance

import (
	"flag"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/mctest"
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
