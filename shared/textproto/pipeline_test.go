package textproto

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// pipelineInput is a burst of many requests in one buffer, valid and not.
func pipelineInput() string {
	var b strings.Builder
	for i := 0; i < 50; i++ {
		b.WriteString("set k 1 0 5\r\nhello\r\nget k x k\r\ngets k\r\nmg k v f k Oab\r\n")
		b.WriteString("incr n 1\r\nms n 1 MS\r\n7\r\nma n v D3\r\nmd k q\r\nmg k v q\r\nmn\r\n")
		b.WriteString("set bad 0 0 2\r\nabc\r\nbogus\r\nmg k z\r\ndelete k noreply\r\nappend k 0 0 1\r\nz\r\n")
	}
	b.WriteString("quit\r\nget k\r\n")
	return b.String()
}

// TestPipelineAndChunking feeds every test input whole, one byte at a time
// and in halves, through readers of different sizes: the replies and the
// close decision must not depend on how the bytes arrive.
func TestPipelineAndChunking(t *testing.T) {
	inputs := []string{pipelineInput()}
	for _, tc := range diffCases() {
		inputs = append(inputs, tc.in+sentinel)
	}
	for _, in := range inputs {
		want, wantClosed := run(in)
		for _, v := range []struct {
			name string
			r    func(io.Reader) io.Reader
			size int
		}{
			{"one byte", iotest.OneByteReader, 16},
			{"halves", iotest.HalfReader, 64},
			{"data err", iotest.DataErrReader, 1000},
		} {
			if len(in) > 100_000 && v.name == "one byte" {
				continue // megabyte blocks one byte at a time add nothing but time
			}
			got, closed := serve(newTestCodec(), newMemHandler(), v.r(strings.NewReader(in)), v.size)
			if got != want || closed != wantClosed {
				t.Errorf("%s %q:\n got %q %v\nwant %q %v", v.name, clip(in), clip(got), closed, clip(want), wantClosed)
			}
		}
	}
	out, closed := run(pipelineInput())
	if !closed || strings.Count(out, "VALUE k 1 5\r\nhello\r\nVALUE k 1 5\r\nhello\r\nEND\r\n") != 50 {
		t.Fatalf("pipeline reply unexpected: %q", clip(out))
	}
}
