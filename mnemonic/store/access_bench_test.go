package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// BenchmarkStateWrite is what recording mg h costs on a read: an item's
// first fetch rewrites its record (the state extension), later fetches
// within item.UpdateInterval write nothing. For 1 KiB and 1 MiB values:
// "first" reads items never read before, "again" the same items once more.
// Compare with BenchmarkGet. Each op is one key; keys are fresh per op for
// "first", so the loop also sets them (outside the timer).
func BenchmarkStateWrite(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		o := Options{Dir: b.TempDir(), Shards: 4, MaxDiskBytes: 8 << 30, BlockCacheBytes: 64 << 20}
		s, err := Open(o)
		if err != nil {
			b.Fatal(err)
		}
		val := make([]byte, size)
		ctx := context.Background()
		set := func(k string) {
			r := &protocol.Request{Command: protocol.CmdSet, HasExptime: true, Value: val}
			r.AddKey([]byte(k))
			var resp protocol.Response
			if err := s.Handle(ctx, r, &resp); err != nil {
				b.Fatal(err)
			}
		}
		get := func(b *testing.B, k string) {
			r := &protocol.Request{Command: protocol.CmdGet}
			r.AddKey([]byte(k))
			var resp protocol.Response
			if err := s.Handle(ctx, r, &resp); err != nil || len(resp.Hits) != 1 {
				b.Fatalf("%v %d", err, len(resp.Hits))
			}
		}
		for _, again := range []bool{false, true} {
			name := fmt.Sprintf("size=%d/first", size)
			if again {
				name = fmt.Sprintf("size=%d/again", size)
			}
			b.Run(name, func(b *testing.B) {
				keys := make([]string, b.N)
				for i := range keys {
					keys[i] = fmt.Sprint(name, ":", i)
					set(keys[i])
					if again {
						get(b, keys[i])
					}
				}
				w0 := s.stats.writeOps.Load()
				cpu0 := cpuTime()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					get(b, keys[i])
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(s.stats.writeOps.Load()-w0)/float64(b.N), "writes/op")
			})
		}
		s.Close()
	}
}
