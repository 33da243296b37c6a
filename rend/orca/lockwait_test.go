package orca

import (
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// TestReadLockWaitCounted: a read that misses L1 while a write holds its
// key's stripe waits for the write and is counted once in ReadLockWaits; an
// L1 hit and a miss on a free stripe are not.
func TestReadLockWaitCounted(t *testing.T) {
	r := newRig(t, true)
	o, err := New(Config{Mode: L1L2, L1: r.l1, L2: r.l2, ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	do(t, o, op{cmd: protocol.CmdSet, keys: []string{"k"}, value: "v"})
	get1(t, o, "k") // L1 hit
	do(t, r.l1, op{cmd: protocol.CmdDelete, keys: []string{"k"}})
	o.WaitFills()
	if _, ok := get1(t, o, "k"); !ok { // L1 miss, stripe free
		t.Fatal("k missing")
	}
	o.WaitFills()
	if n := o.Stats().ReadLockWaits.Load(); n != 0 {
		t.Fatalf("ReadLockWaits %d before any contention, want 0", n)
	}
	do(t, r.l1, op{cmd: protocol.CmdDelete, keys: []string{"k"}})
	idx := o.locks.set(nil, [][]byte{[]byte("k")})
	o.locks.lock(idx) // a write in progress
	done := make(chan struct{})
	go func() {
		defer close(done)
		get1(t, o, "k")
	}()
	deadline := time.Now().Add(5 * time.Second)
	for o.Stats().ReadLockWaits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("the read did not wait for the write holding its stripe")
	default:
	}
	o.locks.unlock(idx)
	<-done
	if n := o.Stats().ReadLockWaits.Load(); n != 1 {
		t.Errorf("ReadLockWaits %d, want 1", n)
	}
}
