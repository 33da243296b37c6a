package server

import (
	"testing"
)

// TestBurstPoolBound: a burst that served a 100-key multi-get of 1 KiB
// values goes back to the pool (dropping it made every such request
// allocate its buffers afresh), one that read a 2 MiB value does not, and
// the decision reflects the largest request of the burst, not its last.
func TestBurstPoolBound(t *testing.T) {
	b := new(burst)
	v := make([]byte, 1024)
	for i := range 100 {
		b.resp.AppendHit(i, v, 0, 0, 0)
		b.req.AddKey([]byte("key:0123456789"))
	}
	if b.oversized() {
		t.Fatalf("100 x 1 KiB multi-get burst not pooled (retains %d bytes)", b.req.Retained()+b.resp.Retained())
	}
	var big burst
	for i := range 3000 {
		big.resp.AppendHit(i, v, 0, 0, 0)
	}
	big.resp.Reset() // a later, small reply does not hide the big one
	big.resp.AppendHit(0, v[:10], 0, 0, 0)
	if !big.oversized() {
		t.Fatal("burst that grew a 3 MiB reply arena would be pooled")
	}
	var set burst
	set.req.ValueBuffer(2 << 20)
	if !set.oversized() {
		t.Fatal("burst holding a 2 MiB value buffer would be pooled")
	}
}
