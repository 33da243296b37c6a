package textproto

import (
	"testing"

	"github.com/moneta-cache/moneta/shared/protocol"
)

func TestValidTextKey(t *testing.T) {
	for k, want := range map[string]bool{
		"a": true, "a\tb": true, k250: true, "a\rb": true,
		"": false, k251: false, "a b": false, "a\nb": false, "a\x00": false,
	} {
		if got := ValidTextKey([]byte(k), protocol.DefaultMaxKeyLen); got != want {
			t.Errorf("%q: got %v", clip(k), got)
		}
	}
}

// The encoders' output parses back to the request they describe.
func TestAppendRoundTrip(t *testing.T) {
	buf := make([]byte, 0, 256)
	for _, tc := range []struct {
		in   []byte
		want reqView
	}{
		{AppendGet(nil, "gets", []byte("a"), []byte("b")), reqView{Cmd: protocol.CmdGets, Keys: "a b", Want: wGets}},
		{AppendSet(nil, "set", []byte("k"), 7, -1, []byte("val"), true),
			reqView{Cmd: protocol.CmdSet, Keys: "k", Value: "val", Flags: 7, Exptime: -1, HasExptime: true, Quiet: true}},
		{AppendSet(nil, "append", []byte("k"), 0, 0, nil, false), reqView{Cmd: protocol.CmdAppend, Keys: "k", HasExptime: true}},
		{AppendMetaGet(nil, []byte("k"), "v k"), reqView{Cmd: protocol.CmdGet, Keys: "k", Opcode: 'g', Want: protocol.WantValue | protocol.WantKey, Order: "k"}},
	} {
		got, err, out := parseOne(t, string(tc.in))
		if err != nil || out != "" || got != tc.want {
			t.Errorf("%q: got %+v %v %q", tc.in, got, err, out)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		AppendSet(buf[:0], "set", []byte("k"), 7, 100, []byte("val"), false)
	}); n != 0 {
		t.Errorf("AppendSet allocates: %v", n)
	}
}
