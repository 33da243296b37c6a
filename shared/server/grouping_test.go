package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/moneta-cache/moneta/shared/memstore"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// keyCounter records the keys and hit bytes of each get the handler sees.
type keyCounter struct {
	*memstore.Store
	mu    sync.Mutex
	keys  []int
	bytes []int
}

func (k *keyCounter) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	err := k.Store.Handle(ctx, req, resp)
	if req.Command.IsRead() {
		k.mu.Lock()
		k.keys = append(k.keys, len(req.Keys))
		k.bytes = append(k.bytes, hitBytes(resp))
		k.mu.Unlock()
	}
	return err
}

// A get line of large distinct values is fetched in groups that shrink to
// fit GetGroupBytes once the first group shows how large the hits are, and
// a line of small values in groups that grow; the reply is the same bytes
// a single request would give.
func TestGetGroupsAdapt(t *testing.T) {
	h := &keyCounter{Store: memstore.New(memstore.Options{})}
	addr := startTCPServer(t, h)
	const n, size = 300, 32 << 10
	var in, want, line strings.Builder
	value := strings.Repeat("v", size)
	for i := range n {
		fmt.Fprintf(&in, "set big%d 0 0 %d noreply\r\n%s\r\n", i, size, value)
		fmt.Fprintf(&line, " big%d", i)
		fmt.Fprintf(&want, "VALUE big%d 0 %d\r\n%s\r\n", i, size, value)
	}
	in.WriteString("get" + line.String() + "\r\nquit\r\n")
	want.WriteString("END\r\n")
	if got := exchange(t, addr, in.String()); got != want.String() {
		t.Fatalf("reply of %d bytes, want %d", len(got), want.Len())
	}
	h.mu.Lock()
	total := 0
	for i, k := range h.keys {
		total += k
		// After the first group, hits stay near the 1 MiB target.
		if i > 0 && h.bytes[i] > 2*DefaultGetGroupBytes {
			t.Errorf("group %d: %d keys, %d bytes of hits", i, k, h.bytes[i])
		}
	}
	if total != n || len(h.keys) < 1+(n-initialGroupKeys)*size/DefaultGetGroupBytes {
		t.Errorf("groups %v: %d keys in all", h.keys, total)
	}

	// Small values: groups grow back (doubling) to maxGroupKeys.
	h.keys, h.bytes = nil, nil
	h.mu.Unlock()
	line.Reset()
	for i := range 5000 {
		fmt.Fprintf(&line, " small%d", i)
	}
	exchange(t, addr, "set small7 0 0 1\r\nx\r\nget"+line.String()+"\r\nquit\r\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	if last := h.keys[len(h.keys)-1]; len(h.keys) > 16 || h.keys[len(h.keys)-2] != maxGroupKeys {
		t.Errorf("small values: groups %v (last %d)", h.keys, last)
	}
}
