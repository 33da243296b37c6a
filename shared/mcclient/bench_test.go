package mcclient

import (
	"context"
	"testing"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// The benchmarks run against a real memcached on a Unix socket, so ns/op
// includes its work and two socket hops; allocs/op is the client's alone
// (memcached is another process).

func benchClient(b *testing.B, mod ...func(*Config)) *Client {
	m := mctest.Start(b, "-t", "2")
	return newClient(b, m.Addr, mod...)
}

func benchGet(b *testing.B, parallel bool) {
	c := benchClient(b)
	set(b, c, "bench", string(make([]byte, 100)), 0, 0)
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		req := rq(protocol.CmdGet, "", "bench")
		resp := &protocol.Response{}
		for b.Loop() {
			if err := c.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) != 1 {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		req := rq(protocol.CmdGet, "", "bench")
		resp := &protocol.Response{}
		for pb.Next() {
			if err := c.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) != 1 {
				b.Error(err)
				return
			}
		}
	})
	reportBatching(b, c)
}

func benchSet(b *testing.B, parallel bool) {
	c := benchClient(b)
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		req := rq(protocol.CmdSet, string(make([]byte, 100)), "bench")
		resp := &protocol.Response{}
		for b.Loop() {
			if err := c.Handle(context.Background(), req, resp); err != nil || resp.Status != protocol.StatusOK {
				b.Fatal(err, resp.Status)
			}
		}
		return
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		req := rq(protocol.CmdSet, string(make([]byte, 100)), "bench")
		resp := &protocol.Response{}
		for pb.Next() {
			if err := c.Handle(context.Background(), req, resp); err != nil || resp.Status != protocol.StatusOK {
				b.Error(err, resp.Status)
				return
			}
		}
	})
	reportBatching(b, c)
}

func reportBatching(b *testing.B, c *Client) {
	st := c.Stats()
	if st.Flushes > 0 {
		b.ReportMetric(float64(st.Requests)/float64(st.Flushes), "reqs/write")
	}
}

// BenchmarkGet is one caller: a full round trip per op (100-byte hit).
func BenchmarkGet(b *testing.B) { benchGet(b, false) }

// BenchmarkGetParallel is 16 callers per core sharing the pool.
func BenchmarkGetParallel(b *testing.B) { benchGet(b, true) }

func BenchmarkSet(b *testing.B) { benchSet(b, false) }

func BenchmarkSetParallel(b *testing.B) { benchSet(b, true) }

// BenchmarkMultiGet100 is one Do-free multi-key get of 100 keys, 50 hits,
// as 100 mg commands and (classic) as one classic gets line.
func BenchmarkMultiGet100(b *testing.B) {
	b.Run("meta", func(b *testing.B) { benchMultiGet100(b, false) })
	b.Run("classic", func(b *testing.B) { benchMultiGet100(b, true) })
}

func benchMultiGet100(b *testing.B, classic bool) {
	c := benchClient(b, func(cfg *Config) { cfg.ClassicGets = classic })
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = "mg" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if i%2 == 0 {
			set(b, c, keys[i], string(make([]byte, 100)), 0, 0)
		}
	}
	req := rq(protocol.CmdGet, "", keys...)
	resp := &protocol.Response{}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) != 50 {
			b.Fatal(err, len(resp.Hits))
		}
	}
}
