package textproto

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// groupRecorder counts the keys of each get the handler sees.
type groupRecorder struct {
	*memHandler
	keys []int
}

func (g *groupRecorder) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if req.Command.IsRead() {
		g.keys = append(g.keys, len(req.Keys))
	}
	return g.memHandler.Handle(ctx, req, resp)
}

// A get line served in groups of any size answers what one request would:
// every named key once per time it is named, in line order, one END; the
// handler sees each distinct key of a group once and never more than the
// group size.
func TestGetGroups(t *testing.T) {
	setup := "set a 1 0 2\r\naa\r\nset b 2 0 3\r\nbbb\r\nset c 3 0 1\r\nc\r\n"
	lines := "get a b a x a c c b\r\ngets   c a a \r\nget x y\r\ngat 0 b b b\r\nget a\r\n"
	want, _ := run(setup + lines)
	for _, n := range []int{1, 2, 3, 5, 1024} {
		c := newTestCodec()
		c.SetGroupKeys(n)
		h := &groupRecorder{memHandler: newMemHandler()}
		got, _ := serve(c, h, strings.NewReader(setup+lines), 4096)
		if got != want {
			t.Errorf("groups of %d:\n got %q\nwant %q", n, got, want)
		}
		for _, k := range h.keys {
			if k > n {
				t.Errorf("groups of %d: a request of %d keys", n, k)
			}
		}
		if n == 1024 && len(h.keys) != 5 {
			t.Errorf("one request per line expected, got %v", h.keys)
		}
	}
	if !strings.Contains(want, "VALUE a 1 2\r\naa\r\nVALUE b 2 3\r\nbbb\r\nVALUE a 1 2\r\naa\r\nVALUE a 1 2\r\naa\r\nVALUE c") {
		t.Errorf("reference reply %q", want)
	}
}

// A line much longer than the read buffer, with more keys than a group,
// arrives in groups: the rest of the line is kept by the codec even
// though the reader's buffer is reused meanwhile.
func TestGetGroupsLongLine(t *testing.T) {
	var b strings.Builder
	b.WriteString("set k7 0 0 1\r\nv\r\nget")
	const n = 20000
	for i := range n {
		if i%1000 == 7 {
			b.WriteString(" k7")
		} else {
			b.WriteString(" m")
		}
	}
	b.WriteString("\r\nget k7\r\n")
	c := newTestCodec()
	c.SetGroupKeys(64)
	got, closed := serve(c, newMemHandler(), strings.NewReader(b.String()), 512)
	want := "STORED\r\n" + strings.Repeat("VALUE k7 0 1\r\nv\r\n", n/1000) + "END\r\nVALUE k7 0 1\r\nv\r\nEND\r\n"
	if got != want || closed {
		t.Errorf("got %d bytes %q..., closed %v", len(got), got[:min(len(got), 80)], closed)
	}
}

// A too-long key anywhere in the line is the only answer, even past the
// first group (memcached checks each key before it sends anything).
func TestGetGroupsBadKeyLate(t *testing.T) {
	c := newTestCodec()
	c.SetGroupKeys(2)
	in := "set a 0 0 1\r\nx\r\nget a a a a " + strings.Repeat("k", 251) + "\r\nget a\r\n"
	got, _ := serve(c, newMemHandler(), strings.NewReader(in), 4096)
	want := "STORED\r\n" + msgBadFormat + "\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

// The budget refuses a value that does not fit: the block is swallowed,
// the reply is memcached's, a set unlinks the old item, and the budget is
// whole again afterwards.
func TestValueBudget(t *testing.T) {
	b := protocol.NewBudget(100 << 10)
	c := newTestCodec()
	c.SetBudget(b)
	big := strings.Repeat("v", 300<<10)
	in := "set k 0 0 1\r\nx\r\nset k 0 0 307200\r\n" + big + "\r\nget k\r\n" +
		"append k 0 0 307200 noreply\r\n" + big + "\r\nappend k 0 0 307200\r\n" + big + "\r\n" +
		"ms k 307200 q\r\n" + big + "\r\nset k 0 0 2\r\nok\r\nget k\r\n"
	got, closed := serve(c, newMemHandler(), strings.NewReader(in), 4096)
	want := "STORED\r\n" + msgNoMemory + "\r\nEND\r\n" + msgNoMemory + "\r\n" + msgNoMemory + "\r\nSTORED\r\nVALUE k 0 2\r\nok\r\nEND\r\n"
	if got != want || closed {
		t.Errorf("got %q closed %v\nwant %q", got, closed, want)
	}
	if u := b.Used(); u != 0 {
		t.Errorf("budget still holds %d bytes", u)
	}
}

// Value buffers grow as bytes arrive: a header declaring 1 MiB followed by
// 10 bytes holds far less than 1 MiB.
func TestValueGrowsAsBytesArrive(t *testing.T) {
	b := protocol.NewBudget(64 << 20)
	c := newTestCodec()
	c.SetBudget(b)
	var req protocol.Request
	r := strings.NewReader("set k 0 0 1048576\r\n0123456789")
	c.Reset(bufio.NewReader(r), bufio.NewWriter(io.Discard))
	if err := c.ReadRequest(&req); err == nil {
		t.Fatal("a cut value parsed")
	}
	if cap(req.Value) > valueStep || b.Used() > valueStep {
		t.Errorf("value buffer %d bytes, budget %d, after 10 bytes arrived", cap(req.Value), b.Used())
	}
	c.Reset(nil, nil)
	if b.Used() != 0 {
		t.Errorf("budget still holds %d bytes when idle", b.Used())
	}
}

// A get line is charged to the budget as it grows: one the budget cannot
// hold is answered as memcached answers a read buffer it cannot grow, and
// the connection closes; a line that fits is served and given back.
func TestLongLineBudget(t *testing.T) {
	b := protocol.NewBudget(256 << 10)
	c := newTestCodec()
	c.SetBudget(b)
	c.SetGroupKeys(7)
	fits := "get " + strings.Repeat("k ", 50000) + "\r\n"
	tooLong := "get " + strings.Repeat("k ", 200000) + "\r\n"
	got, closed := serve(c, newMemHandler(), strings.NewReader(fits+"get k\r\n"+tooLong+"get k\r\n"), 4096)
	if want := "END\r\nEND\r\n" + msgNoMemoryLine + "\r\n"; got != want || !closed {
		t.Errorf("got %q closed %v, want %q", got, closed, want)
	}
	if b.Used() != 0 {
		t.Errorf("budget still holds %d bytes", b.Used())
	}
}

// failSecond fails the second get it sees.
type failSecond struct {
	*memHandler
	gets int
}

func (f *failSecond) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	if req.Command.IsRead() {
		f.gets++
		if f.gets == 2 {
			resp.ServerError("backend down")
			return nil
		}
	}
	return f.memHandler.Handle(ctx, req, resp)
}

// A group that fails ends the reply with its error: the rest of the line
// is dropped and the next line is read as a request.
func TestGetGroupFails(t *testing.T) {
	c := newTestCodec()
	c.SetGroupKeys(2)
	in := "set a 0 0 1\r\nx\r\nget a a a a a a\r\nget a\r\n"
	got, _ := serve(c, &failSecond{memHandler: newMemHandler()}, strings.NewReader(in), 4096)
	want := "STORED\r\nVALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nSERVER_ERROR backend down\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
