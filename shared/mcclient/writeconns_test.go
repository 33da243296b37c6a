package mcclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// sentPerSlot is how many calls each connection has been handed so far.
func sentPerSlot(c *Client) []uint64 {
	n := make([]uint64, len(c.slots))
	for i, s := range c.slots {
		if p := s.pipe.Load(); p != nil {
			n[i] = p.sent.Load()
		}
	}
	return n
}

// TestWriteConnsCarryWrites: with WriteConns 1 every set and delete, from
// many goroutines at once, goes on the first connection; gets still spread
// over all of them and read what the sets wrote.
func TestWriteConnsCarryWrites(t *testing.T) {
	c := newClient(t, mctest.Start(t).Addr, func(cfg *Config) { cfg.Conns, cfg.WriteConns = 3, 1 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := fmt.Sprintf("k%d-%d", g, i)
				if err := c.Handle(context.Background(), rq(protocol.CmdSet, "v"+k, k), &protocol.Response{}); err != nil {
					t.Errorf("set %s: %v", k, err)
				}
				if err := c.Handle(context.Background(), rq(protocol.CmdDelete, "", "gone"+k), &protocol.Response{}); err != nil {
					t.Errorf("delete %s: %v", k, err)
				}
			}
		})
	}
	wg.Wait()
	sent := sentPerSlot(c)
	if sent[0] != 800 || sent[1] != 0 || sent[2] != 0 {
		t.Fatalf("calls per connection after 400 sets and 400 deletes: %v, want all on the first", sent)
	}
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := fmt.Sprintf("k%d-%d", g, i)
				resp := &protocol.Response{}
				if err := c.Handle(context.Background(), rq(protocol.CmdGet, "", k), resp); err != nil {
					t.Errorf("get %s: %v", k, err)
				} else if len(resp.Hits) != 1 || string(resp.Hits[0].Value) != "v"+k {
					t.Errorf("get %s: %+v", k, resp.Hits)
				}
			}
		})
	}
	wg.Wait()
	if got := sentPerSlot(c); got[1] == 0 && got[2] == 0 {
		t.Errorf("calls per connection after 400 gets: %v, want gets on the others too", got)
	}
}

// TestWriteConnsFallBack: when the write connection is down, a set goes on
// another connection instead of failing.
func TestWriteConnsFallBack(t *testing.T) {
	c := newClient(t, mctest.Start(t).Addr, func(cfg *Config) { cfg.Conns, cfg.WriteConns = 2, 1 })
	p := c.slots[0].pipe.Load()
	p.fail(errors.New("test: first connection dropped"))
	<-p.dead
	for i := range 20 {
		wantStatus(t, do(t, c, rq(protocol.CmdSet, "v", fmt.Sprintf("f%d", i))), protocol.StatusOK)
	}
}

func TestWriteConnsValidate(t *testing.T) {
	cfg := Config{Addr: "unix:/tmp/x.sock", WriteConns: -1}
	if err := cfg.Validate(); err == nil {
		t.Fatal("WriteConns -1 accepted")
	}
}
