package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// BenchmarkStateWrite is what recording mg h costs on a read: an item's
// first fetch rewrites its record (the state extension), later fetches
// within item.UpdateInterval write nothing. For 1 KiB and 1 MiB values:
// "first" reads items never read before, "again" the same items once more.
// Compare with BenchmarkGet. Each op is one key; keys are fresh per op for
// "first", so the loop also sets them (outside the timer). sync: each read
// writes its own record (StateFlushInterval < 0, as before the flusher);
// deferred: the flusher writes them in batches (its flush at the end of
// the loop is timed, its CPU counted in cpu-ns/op).
func BenchmarkStateWrite(b *testing.B) {
	for _, mode := range []string{"sync", "deferred"} {
		for _, size := range []int{1 << 10, 1 << 20} {
			benchStateWrite(b, mode, size)
		}
	}
}

func benchStateWrite(b *testing.B, mode string, size int) {
	{
		o := Options{Dir: b.TempDir(), Shards: 4, MaxDiskBytes: 8 << 30, BlockCacheBytes: 64 << 20}
		if mode == "sync" {
			o.StateFlushInterval = -1
		}
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
			name := fmt.Sprintf("%s/size=%d/first", mode, size)
			if again {
				name = fmt.Sprintf("%s/size=%d/again", mode, size)
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
				s.life.RLock()
				s.persistState(false, time.Now()) // the setup's own state
				s.life.RUnlock()
				w0 := s.stats.writeOps.Load()
				cpu0 := cpuTime()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					get(b, keys[i])
				}
				s.life.RLock()
				err := s.persistState(false, time.Now())
				s.life.RUnlock()
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(s.stats.writeOps.Load()-w0)/float64(b.N), "writes/op")
			})
		}
		s.Close()
	}
}
