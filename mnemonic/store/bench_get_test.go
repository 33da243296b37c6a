package store

import (
	"context"
	"fmt"
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
