package orca

import (
	"context"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mcclient"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// BenchmarkL2HitReply is the time until a get that misses L1 and hits L2
// is answered: with the fill inline (the reply waits for L1's add) and
// behind the reply (fillLater). Each iteration first deletes the key from
// L1 and waits for the previous fill, outside the timer.
func BenchmarkL2HitReply(b *testing.B) {
	for _, tc := range []struct {
		name   string
		behind bool
	}{{"inline", false}, {"behind", true}} {
		b.Run(tc.name, func(b *testing.B) {
			conn := func(addr string) *mcclient.Client {
				c, err := mcclient.New(mcclient.Config{Addr: addr, RequestTimeout: 5 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { c.Close() })
				return c
			}
			l1, l2 := conn(mctest.Start(b).Addr), conn(mctest.Start(b).Addr)
			o, err := New(Config{Mode: L1L2, L1: l1, L2: l2})
			if err != nil {
				b.Fatal(err)
			}
			if !tc.behind {
				o.fillSlots = make(chan struct{}) // no slot: every fill inline
			}
			ctx := context.Background()
			set := &protocol.Request{Command: protocol.CmdSet, Value: make([]byte, 1024)}
			set.AddKey([]byte("k"))
			l2.Handle(ctx, set, new(protocol.Response))
			get := &protocol.Request{Command: protocol.CmdGet}
			get.AddKey([]byte("k"))
			del := &protocol.Request{Command: protocol.CmdDelete}
			del.AddKey([]byte("k"))
			resp, dresp := new(protocol.Response), new(protocol.Response)
			for b.Loop() {
				b.StopTimer()
				o.WaitFills()
				l1.Handle(ctx, del, dresp)
				b.StartTimer()
				resp.Reset()
				if err := o.Handle(ctx, get, resp); err != nil || len(resp.Hits) != 1 {
					b.Fatal(err, len(resp.Hits))
				}
			}
			b.StopTimer()
			o.WaitFills()
			if o.Stats().L1Fills.Load() == 0 {
				b.Fatal("no fills")
			}
		})
	}
}
