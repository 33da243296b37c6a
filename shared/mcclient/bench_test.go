package mcclient

import (
	"context"
	"syscall"
	"testing"
	"time"

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

func benchGet(b *testing.B, parallel bool, mod ...func(*Config)) {
	c := benchClient(b, mod...)
	set(b, c, "bench", string(make([]byte, 100)), 0, 0)
	b.ReportAllocs()
	startCPU(b)
	if !parallel {
		req := rq(protocol.CmdGet, "", "bench")
		resp := &protocol.Response{}
		for b.Loop() {
			if err := c.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) != 1 {
				b.Fatal(err)
			}
		}
		reportCPU(b)
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

func benchSet(b *testing.B, parallel bool, mod ...func(*Config)) {
	c := benchClient(b, mod...)
	b.ReportAllocs()
	startCPU(b)
	if !parallel {
		req := rq(protocol.CmdSet, string(make([]byte, 100)), "bench")
		resp := &protocol.Response{}
		for b.Loop() {
			if err := c.Handle(context.Background(), req, resp); err != nil || resp.Status != protocol.StatusOK {
				b.Fatal(err, resp.Status)
			}
		}
		reportCPU(b)
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
	reportCPU(b)
	st := c.Stats()
	if st.Flushes > 0 {
		b.ReportMetric(float64(st.Requests)/float64(st.Flushes), "reqs/write")
	}
}

// cpuStart is the process's CPU time when the timer was last reset
// (startCPU); reportCPU reports the CPU time per op since then. Wall time
// per op moves with whatever else runs on the machine; the client's own
// CPU per op (user and system, this process only) much less.
var cpuStart time.Duration

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) {
	b.ResetTimer()
	cpuStart = processCPU()
}

func reportCPU(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-cpuStart)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkGet is one caller: a full round trip per op (100-byte hit).
func BenchmarkGet(b *testing.B) { benchGet(b, false) }

// BenchmarkGetParallel is 16 callers per core sharing the pool, with each
// write mode.
func BenchmarkGetParallel(b *testing.B) {
	b.Run("combine", func(b *testing.B) { benchGet(b, true) })
	b.Run("handoff", func(b *testing.B) { benchGet(b, true, func(c *Config) { c.Writes = WriteHandoff }) })
}

func BenchmarkSet(b *testing.B) { benchSet(b, false) }

func BenchmarkSetParallel(b *testing.B) {
	b.Run("combine", func(b *testing.B) { benchSet(b, true) })
	b.Run("handoff", func(b *testing.B) { benchSet(b, true, func(c *Config) { c.Writes = WriteHandoff }) })
}

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
	startCPU(b)
	for b.Loop() {
		if err := c.Handle(context.Background(), req, resp); err != nil || len(resp.Hits) != 50 {
			b.Fatal(err, len(resp.Hits))
		}
	}
	reportCPU(b)
}
