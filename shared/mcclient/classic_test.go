package mcclient

import (
	"context"
	"fmt"
	"testing"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// TestClassicGetsAgainstMemcached: a ClassicGets client answers every get
// exactly as the meta client does against real memcached (values, flags,
// CAS, key positions; misses, duplicates, binary keys, a key list longer
// than one gets line, pipelined in one Do), except that hits carry no
// expiry.
func TestClassicGetsAgainstMemcached(t *testing.T) {
	m := mctest.Start(t)
	meta := newClient(t, m.Addr)
	classic := newClient(t, m.Addr, func(c *Config) { c.ClassicGets = true })
	var keys []string
	for i := range 400 {
		k := fmt.Sprintf("classic:%03d", i)
		if i%3 != 0 { // every third key is a miss
			set(t, meta, k, fmt.Sprintf("value-%d", i), uint32(i), 0)
		}
		keys = append(keys, k)
	}
	set(t, meta, "bin key\x01", "binary", 5, 100)
	keys = append(keys, "classic:001", "bin key\x01", "classic:002", "nope")
	reqs := []*protocol.Request{rq(protocol.CmdGets, "", keys...), rq(protocol.CmdGet, "", "classic:004"),
		rq(protocol.CmdVersion, ""), rq(protocol.CmdGets, "", "classic:005")}
	run := func(c *Client) []*protocol.Response {
		resps := make([]*protocol.Response, len(reqs))
		for i := range resps {
			resps[i] = new(protocol.Response)
		}
		if err := c.Do(context.Background(), reqs, resps); err != nil {
			t.Fatal(err)
		}
		return resps
	}
	want, got := run(meta), run(classic)
	for i := range reqs {
		w, g := want[i], got[i]
		if w.Status != g.Status || len(w.Hits) != len(g.Hits) {
			t.Fatalf("request %d: status %v/%v, %d/%d hits", i, g.Status, w.Status, len(g.Hits), len(w.Hits))
		}
		for j := range w.Hits {
			wh, gh := w.Hits[j], g.Hits[j]
			if wh.Index != gh.Index || string(wh.Value) != string(gh.Value) || wh.Flags != gh.Flags || wh.CAS != gh.CAS {
				t.Fatalf("request %d hit %d: %+v, want %+v", i, j, gh, wh)
			}
		}
	}
	if n := len(got[0].Hits); n != 266+3 {
		t.Fatalf("%d hits in the long get", n)
	}
}
