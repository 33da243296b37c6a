package main

import (
	"bytes"
	"testing"

	"github.com/moneta-cache/moneta/shared/binproto"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// binaryKey is an n-byte binary-protocol key full of spaces and control
// bytes, so that it can reach memcached only base64-encoded.
func binaryKey(n int, seed byte) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = []byte{' ', '\r', '\n', 0, 'a' + seed, 0x7f, 0xff}[(i+int(seed))%7]
	}
	return k
}

// TestLongBinaryKeys (issue 11 item 10): every valid binary-protocol key
// (1..250 bytes, any bytes) works through rend in every mode: set, get,
// append, incr, touch, delete, values inline and chunked. Keys of more than
// 186 such bytes do not fit memcached's key limit in base64; rend stores
// them in L1 under a hashed name and passes them whole to mnemonic. Keys
// that start like a hashed name (0x00 '#') must not collide with one.
// (gomemcache refuses such keys, so the test speaks raw binary.)
func TestLongBinaryKeys(t *testing.T) {
	only, both := newStack(t, false), newStack(t, true)
	keys := [][]byte{
		binaryKey(186, 1), binaryKey(187, 6), binaryKey(188, 2), binaryKey(200, 3), binaryKey(250, 4),
		[]byte("\x00#short"), append([]byte("\x00#"), binaryKey(248, 5)...),
		[]byte("plain-key"),
	}
	for _, tgt := range []struct {
		name, addr string
		s          *stack
	}{{"l1only", only.rend.regular, only}, {"l1l2", both.rend.regular, both}, {"l1l2batch", both.rend.batch, both}} {
		t.Run(tgt.name, func(t *testing.T) {
			b := dialBinary(t, tgt.addr)
			for i, k := range keys {
				for _, size := range []int{10, 5000} {
					v := pattern(size, byte(i))
					r := b.roundTrip(binproto.AppendStore(nil, binproto.OpSet, k, v, 3, 0, 0, 1))
					if r.Status != binproto.StatusOK {
						t.Fatalf("set %d-byte key %q: status %v %q", len(k), k[:8], r.Status, r.Value)
					}
					got := b.roundTrip(binproto.AppendGet(nil, binproto.OpGet, k, 2))
					if got.Status != binproto.StatusOK || !bytes.Equal(got.Value, v) {
						t.Fatalf("get %d-byte key: status %v, %d bytes", len(k), got.Status, len(got.Value))
					}
				}
				if r := b.roundTrip(binproto.AppendConcat(nil, binproto.OpAppend, k, []byte("+"), 0, 3)); r.Status != binproto.StatusOK {
					t.Fatalf("append %d-byte key: %v", len(k), r.Status)
				}
				if r := b.roundTrip(binproto.AppendTouch(nil, binproto.OpTouch, k, 100, 4)); r.Status != binproto.StatusOK {
					t.Fatalf("touch %d-byte key: %v", len(k), r.Status)
				}
				if r := b.roundTrip(binproto.AppendGet(nil, binproto.OpGet, k, 5)); r.Status != binproto.StatusOK || !bytes.HasSuffix(r.Value, []byte("+")) {
					t.Fatalf("get after append %d-byte key: %v %q", len(k), r.Status, r.Value)
				}
				ck := append(append([]byte{}, k[:len(k)-1]...), 'C')
				if r := b.roundTrip(binproto.AppendCounter(nil, binproto.OpIncrement, ck, 5, 40, 0, 0, 6)); r.Status != binproto.StatusOK {
					t.Fatalf("incr (vivify) %d-byte key: %v", len(ck), r.Status)
				}
				if r := b.roundTrip(binproto.AppendCounter(nil, binproto.OpIncrement, ck, 5, 40, 0, 0, 7)); r.Status != binproto.StatusOK || len(r.Value) != 8 || r.Value[7] != 45 {
					t.Fatalf("incr %d-byte key: %v %v", len(ck), r.Status, r.Value)
				}
			}
			if tgt.s.l2 != nil {
				// Out of L1, every key is still whole in mnemonic.
				call(t, tgt.s.l1, protocol.CmdFlushAll, "", nil)
				for i, k := range keys {
					got := b.roundTrip(binproto.AppendGet(nil, binproto.OpGet, k, 8))
					if want := append(pattern(5000, byte(i)), '+'); got.Status != binproto.StatusOK || !bytes.Equal(got.Value, want) {
						t.Fatalf("%d-byte key from L2: status %v, %d bytes", len(k), got.Status, len(got.Value))
					}
				}
			}
			for _, k := range keys {
				ck := append(append([]byte{}, k[:len(k)-1]...), 'C')
				b.roundTrip(binproto.AppendKeyOnly(nil, binproto.OpDelete, ck, 0, 9))
				if r := b.roundTrip(binproto.AppendKeyOnly(nil, binproto.OpDelete, k, 0, 9)); r.Status != binproto.StatusOK {
					t.Fatalf("delete %d-byte key: %v", len(k), r.Status)
				}
				if r := b.roundTrip(binproto.AppendGet(nil, binproto.OpGet, k, 10)); r.Status != binproto.StatusKeyNotFound {
					t.Fatalf("get after delete %d-byte key: %v", len(k), r.Status)
				}
			}
		})
	}
}
