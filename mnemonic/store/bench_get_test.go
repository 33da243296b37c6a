package store

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// BenchmarkGet reads 1 KiB items from table files (memtables flushed), one
// key or 16 keys per request: the read path's CPU and allocations per key.
func BenchmarkGet(b *testing.B) {
	o := Options{Dir: b.TempDir(), Shards: 4, MaxDiskBytes: 1 << 30, BlockCacheBytes: 64 << 20}
	s, err := Open(o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 20000
	val := strings.Repeat("v", 1024)
	for i := 0; i < n; i++ {
		r := &protocol.Request{Command: protocol.CmdSet, HasExptime: true, Value: []byte(val)}
		r.AddKey([]byte(fmt.Sprint("key:", i)))
		var resp protocol.Response
		if err := s.Handle(context.Background(), r, &resp); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.FlushMemtables(); err != nil {
		b.Fatal(err)
	}
	for _, per := range []int{1, 16} {
		b.Run(fmt.Sprint("keys=", per), func(b *testing.B) {
			reqs := make([]*protocol.Request, 64)
			for j := range reqs {
				reqs[j] = &protocol.Request{Command: protocol.CmdGet}
				for k := 0; k < per; k++ {
					reqs[j].AddKey([]byte(fmt.Sprint("key:", (j*per*7919+k*104729)%n)))
				}
			}
			var resp protocol.Response
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp.Reset()
				if err := s.Handle(context.Background(), reqs[i%len(reqs)], &resp); err != nil || len(resp.Hits) != per {
					b.Fatalf("%v %d", err, len(resp.Hits))
				}
			}
			b.StopTimer()
			// CPU time, not wall time: the machine is shared.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*per), "cpu-ns/key")
		})
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkGetFullBudget reads from shards that hold many table files, as
// FIFO keeps them all in L0 (about 35 per shard at the default 10 GiB
// budget): 100,000 items of 1 KiB of random bytes written through 1 MiB
// memtables (about 25 files per shard), looked up uniformly (so most
// lookups probe the filters of many newer files first), and misses. The
// block cache is small (8 MiB), so most blocks come from the page cache as
// the cold tail that reaches L2 does. Each variant is a table setting
// against the defaults; CPU time per key.
func BenchmarkGetFullBudget(b *testing.B) {
	variants := []struct {
		name string
		tune tableTune
		cmp  string
		wb   int64 // memtable size (default 1 MiB: many files)
	}{
		{"default", tableTune{}, "", 0},
		{"few-files", tableTune{}, "", 64 << 20},
		{"block=16k", tableTune{blockSize: 16 << 10}, "", 0},
		{"block=2k", tableTune{blockSize: 2 << 10}, "", 0},
		{"cached-index", tableTune{cacheIndexFilter: true}, "", 0},
		{"no-compression", tableTune{}, "none", 0},
		{"mmap", tableTune{mmapReads: true}, "", 0},
		{"mmap-no-compression", tableTune{mmapReads: true}, "none", 0},
	}
	const n = 100000
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			o := Options{Dir: b.TempDir(), Shards: 4, MaxDiskBytes: 4 << 30, BlockCacheBytes: 8 << 20,
				WriteBufferBytes: cmp.Or(v.wb, 1<<20), Compression: v.cmp, table: v.tune}
			s, err := Open(o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			val := make([]byte, 1024)
			r := &protocol.Request{Command: protocol.CmdSet, HasExptime: true}
			for i := 0; i < n; i++ {
				for j := range val {
					val[j] = byte(rng.Uint32())
				}
				r.Reset()
				r.Command, r.HasExptime, r.Value = protocol.CmdSet, true, val
				r.AddKey([]byte(fmt.Sprint("key:", i)))
				var resp protocol.Response
				if err := s.Handle(context.Background(), r, &resp); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.FlushMemtables(); err != nil {
				b.Fatal(err)
			}
			files := 0
			for _, st := range s.ShardStats() {
				files += int(st.L0Files)
			}
			for _, c := range []struct {
				name   string
				per    int
				prefix string
			}{{"hit", 1, "key:"}, {"hit16", 16, "key:"}, {"miss", 1, "nokey:"}} {
				b.Run(c.name, func(b *testing.B) {
					reqs := make([]*protocol.Request, 4096)
					for j := range reqs {
						reqs[j] = &protocol.Request{Command: protocol.CmdGet}
						for k := 0; k < c.per; k++ {
							reqs[j].AddKey([]byte(fmt.Sprint(c.prefix, rng.IntN(n))))
						}
					}
					var resp protocol.Response
					cpu0 := cpuTime()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						resp.Reset()
						if err := s.Handle(context.Background(), reqs[i%len(reqs)], &resp); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*c.per), "cpu-ns/key")
					b.ReportMetric(float64(files)/4, "files/shard")
				})
			}
		})
	}
}

// BenchmarkGetBehindMemtables reads 1 KiB items from table files while the
// memtables hold other keys (about 40 MiB per shard; a shard that takes
// writes keeps up to four memtables of 64 MiB): lookups that miss every
// memtable first, as most reads of a cache larger than its memory do, with
// and without the memtables' bloom filter. CPU time per key.
func BenchmarkGetBehindMemtables(b *testing.B) {
	for _, v := range []struct {
		name string
		tune tableTune
	}{{"bloom", tableTune{}}, {"no-bloom", tableTune{noMemtableBloom: true}}} {
		o := Options{Dir: b.TempDir(), Shards: 4, MaxDiskBytes: 4 << 30, BlockCacheBytes: 64 << 20, table: v.tune}
		s, err := Open(o)
		if err != nil {
			b.Fatal(err)
		}
		const n, inMem = 20000, 160000
		val := []byte(strings.Repeat("v", 1024))
		set := func(key string) {
			r := &protocol.Request{Command: protocol.CmdSet, HasExptime: true, Value: val}
			r.AddKey([]byte(key))
			var resp protocol.Response
			if err := s.Handle(context.Background(), r, &resp); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < n; i++ {
			set(fmt.Sprint("key:", i))
		}
		if err := s.FlushMemtables(); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < inMem; i++ {
			set(fmt.Sprint("mem:", i))
		}
		rng := rand.New(rand.NewPCG(1, 2))
		reqs := make([]*protocol.Request, 16384)
		for j := range reqs {
			reqs[j] = &protocol.Request{Command: protocol.CmdGet}
			reqs[j].AddKey([]byte(fmt.Sprint("key:", rng.IntN(n))))
		}
		b.Run(v.name, func(b *testing.B) {
			var resp protocol.Response
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp.Reset()
				if err := s.Handle(context.Background(), reqs[i%len(reqs)], &resp); err != nil || len(resp.Hits) != 1 {
					b.Fatalf("%v %d", err, len(resp.Hits))
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/key")
		})
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
