package orca

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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
			o, l1, l2 := memcachedL1L2(b, false)
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

// TestFillBatch: the fills of one lookup are one L1 write; an add of a key
// L1 already holds (a concurrent fill won) loses without replacing it,
// chunked (decided by the header read, no chunk written) or inline, while
// the others in the same batch land.
func TestFillBatch(t *testing.T) {
	r := newRig(t, true)
	l1 := &counting{Backend: r.l1}
	o, err := New(Config{Mode: L1L2, L1: l1, L2: r.l2, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"present-chunked", "cold-chunked", "present-inline", "cold-inline"}
	vals := []string{value(3 * testChunk), value(2*testChunk + 5), "in", "line"}
	for i, k := range keys {
		do(t, o, op{cmd: protocol.CmdSet, keys: []string{k}, value: vals[i]})
	}
	// L1 keeps an older copy of the present keys: the fill must lose to it.
	do(t, r.l1, op{cmd: protocol.CmdDelete, keys: []string{"cold-chunked"}})
	do(t, r.l1, op{cmd: protocol.CmdDelete, keys: []string{"cold-inline"}})
	hits := new(protocol.Response)
	var kb [][]byte
	for i, k := range keys {
		kb = append(kb, []byte(k))
		hits.AppendHit(i, []byte("new-"+vals[i]), 0, 99, 0)
	}
	fills, lost := o.Stats().L1Fills.Load(), o.Stats().L1FillsLost.Load()
	l1.calls.Store(0)
	var fb fillBuf
	o.fill(context.Background(), kb, hits.Hits, &fb)
	if n := l1.calls.Load(); n != 2 {
		t.Errorf("fill of 4 keys: %d L1 round trips, want 2 (header read, one write)", n)
	}
	if f, l := o.Stats().L1Fills.Load()-fills, o.Stats().L1FillsLost.Load()-lost; f != 2 || l != 2 {
		t.Errorf("fills %d lost %d, want 2 and 2", f, l)
	}
	for i, k := range keys {
		h, ok := get1(t, o, k)
		want := vals[i]
		if strings.HasPrefix(k, "cold") {
			want = "new-" + vals[i]
		}
		if !ok || string(h.Value) != want {
			t.Errorf("%s: %q %v, want %q", k, h.Value, ok, want)
		}
	}
}

// BenchmarkColdMultiGet is a 100-key multi-get that misses L1 and hits L2
// for every key, up to the end of its L1 fills (WaitFills): the fills of
// one lookup are one L1 write (StoreMany), not one round trip per key.
// Each iteration first deletes the keys from L1, outside the timer. Real
// memcached as L1 and L2; 1 KiB values (inline at the default chunk size).
func BenchmarkColdMultiGet(b *testing.B) {
	o, l1, _ := memcachedL1L2(b, true)
	ctx := context.Background()
	get := &protocol.Request{Command: protocol.CmdGet}
	var dels []*protocol.Request
	var dresps []*protocol.Response
	for i := range 100 {
		k := []byte("cold" + strconv.Itoa(i))
		set := &protocol.Request{Command: protocol.CmdSet, Value: make([]byte, 1024)}
		set.AddKey(k)
		if err := o.Handle(ctx, set, new(protocol.Response)); err != nil {
			b.Fatal(err)
		}
		get.AddKey(k)
		del := &protocol.Request{Command: protocol.CmdDelete}
		del.AddKey(k)
		dels, dresps = append(dels, del), append(dresps, new(protocol.Response))
	}
	resp := new(protocol.Response)
	for b.Loop() {
		b.StopTimer()
		if err := l1.Do(ctx, dels, dresps); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		resp.Reset()
		if err := o.Handle(ctx, get, resp); err != nil || len(resp.Hits) != 100 {
			b.Fatal(err, len(resp.Hits))
		}
		o.WaitFills()
	}
}

// memcachedL1L2 is an l1l2 Orca over two real memcached processes (the
// second standing in for mnemonic), with its two backend clients.
func memcachedL1L2(tb testing.TB, classicGets bool) (*Orca, *mcclient.Client, *mcclient.Client) {
	conn := func(addr string) *mcclient.Client {
		c, err := mcclient.New(mcclient.Config{Addr: addr, RequestTimeout: 5 * time.Second, ClassicGets: classicGets})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		return c
	}
	l1, l2 := conn(mctest.Start(tb).Addr), conn(mctest.Start(tb).Addr)
	o, err := New(Config{Mode: L1L2, L1: l1, L2: l2})
	if err != nil {
		tb.Fatal(err)
	}
	return o, l1, l2
}

// BenchmarkConcurrentMisses is gets that miss L1 and hit L2 from 16
// goroutines at once (a beyond-RAM workload's misses): each iteration
// deletes its key from L1, then gets it through orca, whose fill runs
// behind the reply. cpu-us/op is the test process's CPU per iteration
// (orca and its clients; the delete's round trip included), the number
// to compare between builds. Real memcached as L1 and L2, 1 KiB values.
func BenchmarkConcurrentMisses(b *testing.B) {
	o, l1, l2 := memcachedL1L2(b, true)
	ctx := context.Background()
	const keys = 4096
	var sets []*protocol.Request
	var sresps []*protocol.Response
	for i := range keys {
		set := &protocol.Request{Command: protocol.CmdSet, Value: make([]byte, 1024)}
		set.AddKey([]byte("miss" + strconv.Itoa(i)))
		sets, sresps = append(sets, set), append(sresps, new(protocol.Response))
	}
	if err := l2.Do(ctx, sets, sresps); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(8) // x GOMAXPROCS goroutines
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		get := &protocol.Request{Command: protocol.CmdGet}
		del := &protocol.Request{Command: protocol.CmdDelete}
		resp, dresp := new(protocol.Response), new(protocol.Response)
		for pb.Next() {
			k := []byte("miss" + strconv.Itoa(int(next.Add(1)%keys)))
			del.Keys, get.Keys = del.Keys[:0], get.Keys[:0]
			del.AddKey(k)
			get.AddKey(k)
			dresp.Reset()
			if err := l1.Handle(ctx, del, dresp); err != nil {
				b.Error(err)
				return
			}
			resp.Reset()
			if err := o.Handle(ctx, get, resp); err != nil || len(resp.Hits) != 1 {
				b.Error(err, len(resp.Hits))
				return
			}
		}
	})
	o.WaitFills()
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

// processCPU is the test process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
