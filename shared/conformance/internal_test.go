package conformance

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
)

func TestEscapeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := [][]byte{
		nil, []byte("plain"), []byte(`back\slash $dollar "quote"`), []byte("trailing "),
		bytes.Repeat([]byte{'*'}, 40), bytes.Repeat([]byte{'}'}, 40), bytes.Repeat([]byte{0}, 33),
		[]byte("\r\n\t\x00\x7f\xff"),
	}
	for range 200 {
		b := make([]byte, rng.IntN(100))
		for i := range b {
			b[i] = byte(rng.IntN(6)) * 51 // few distinct values: runs happen
		}
		cases = append(cases, b)
	}
	for _, b := range cases {
		for _, quoted := range []bool{false, true} {
			s := escape(b, quoted)
			if strings.ContainsAny(s, "\r\n") || !quoted && strings.HasSuffix(s, " ") {
				t.Fatalf("escape(%q) = %q: raw line break or trailing space", b, s)
			}
			got, cont, err := unescape(nil, s, nil)
			if err != nil || cont || !bytes.Equal(got, b) {
				t.Fatalf("unescape(escape(%q)=%q) = %q, %v, %v", b, s, got, cont, err)
			}
		}
	}
}

func TestUnescape(t *testing.T) {
	vars := func(name string) (uint64, bool) {
		if name == "cas1" {
			return 41, true
		}
		return 0, false
	}
	for _, tc := range []struct {
		in   string
		want string
		cont bool
		err  bool
	}{
		{in: `cas k 0 0 1 $cas1`, want: "cas k 0 0 1 41"},
		{in: `$cas1+1 $cas1-1`, want: "42 40"},
		{in: `price $5 \$cas1`, want: "price $5 $cas1"},
		{in: `\{ab*3}\x41\0`, want: "abababA\x00"},
		{in: `no newline\`, want: "no newline", cont: true},
		{in: `escaped backslash\\`, want: `escaped backslash\`},
		{in: `$nope`, err: true},
		{in: `\q`, err: true},
		{in: `\x4`, err: true},
		{in: `\{a*}`, err: true},
		{in: `\{a3}`, err: true},
	} {
		got, cont, err := unescape(nil, tc.in, vars)
		if (err != nil) != tc.err || (err == nil && (string(got) != tc.want || cont != tc.cont)) {
			t.Errorf("unescape(%q) = %q, %v, %v; want %q, %v, err=%v", tc.in, got, cont, err, tc.want, tc.cont, tc.err)
		}
	}
}

const sampleScript = `# comment
send
set a 0 0 0

----
----
STORED

----
----

sleep 10ms

sendbin conn=b poll=1s
noop
----
noop

send shape nosync
stats
----
END
`

func TestParseScript(t *testing.T) {
	s, err := parseScript("x.txt", []byte(sampleScript))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.steps) != 4 {
		t.Fatalf("%d steps, want 4", len(s.steps))
	}
	st := s.steps[0]
	if st.kind != stepSend || !slices.Equal(st.body, []string{"set a 0 0 0", ""}) || !slices.Equal(st.want, []string{"STORED", ""}) {
		t.Errorf("step 0 = %+v", st)
	}
	if st := s.steps[1]; st.kind != stepSleep || st.sleep != 10*time.Millisecond {
		t.Errorf("step 1 = %+v", st)
	}
	if st := s.steps[2]; st.kind != stepSendBin || st.conn != "b" || st.poll != time.Second || st.line != 14 {
		t.Errorf("step 2 = %+v", st)
	}
	if st := s.steps[3]; !st.shape || !st.nosync || !slices.Equal(st.want, []string{"END"}) {
		t.Errorf("step 3 = %+v", st)
	}
	// Rewriting with the same expectations reproduces the file.
	wants := make([][]string, len(s.steps))
	for i, st := range s.steps {
		wants[i] = st.want
	}
	if got := s.rewrite(wants); got != sampleScript {
		t.Errorf("rewrite changed the file:\n%s", got)
	}
	// New expectations switch between the single and double forms.
	wants[0] = []string{"STORED"}
	wants[3] = []string{"a", "", "b"}
	got := s.rewrite(wants)
	if !strings.Contains(got, "----\nSTORED\n\nsleep") || !strings.Contains(got, "----\n----\na\n\nb\n----\n----\n") {
		t.Errorf("rewrite:\n%s", got)
	}
	if s2, err := parseScript("y.txt", []byte(got)); err != nil || !slices.Equal(s2.steps[3].want, wants[3]) {
		t.Errorf("reparse of rewrite: %v %+v", err, s2)
	}
}

func TestParseScriptErrors(t *testing.T) {
	for _, in := range []string{
		"bogus\n",
		"send\nget a\n",
		"send conn=\nget a\n----\n",
		"send poll=1s nosync\nget a\n----\n",
		"send frob\nget a\n----\n",
		"sleep\n",
		"sleep forever\n",
		"send\nget a\n----\n----\nEND\n",
	} {
		if _, err := parseScript("bad.txt", []byte(in)); err == nil {
			t.Errorf("parseScript(%q) succeeded", in)
		}
	}
}

func TestRenderText(t *testing.T) {
	r := renderer{names: newCASNames()}
	in := "VALUE k 0 5 77\r\nHD c5\r\nEND\r\nVALUE j 1 2 78\r\nab\r\nEND\r\n" +
		"VA 2 c77 t99 f3 kx\r\nhi\r\nHD c78 t-1\r\nHD t3 l3 l1\r\nVERSION 1.6.18\r\nSTAT pid 12\r\nSERVER_ERROR x \r\npartial"
	want := []string{
		"VALUE k 0 5 $cas1", "HD c5", "END", "VALUE j 1 2 $cas2", "ab", "END",
		"VA 2 c$cas1 t~100 f3 kx", "hi", "HD c$cas2 t-1", "HD t~0 l~2+ l~0", "VERSION $version", "STAT pid 12",
		`SERVER_ERROR x\x20`, `partial\`, closedMarker,
	}
	if got := r.render([]byte(in), false, true); !slices.Equal(got, want) {
		t.Errorf("render:\n%s", lineDiff(want, got))
	}
	r.shape = true
	if got := r.render([]byte("STAT pid 12\r\nSTAT version 1.6 x\r\nEND\r\n"), false, false); !slices.Equal(got, []string{"STAT pid $", "STAT version $", "END"}) {
		t.Errorf("shape render: %q", got)
	}
	// Lines that look like script syntax are escaped.
	r.shape = false
	if got := r.render([]byte("----\r\n[closed]\r\n"), false, false); !slices.Equal(got, []string{`\x2d---`, `\x5bclosed]`}) {
		t.Errorf("syntax-like lines: %q", got)
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	vars := func(name string) (uint64, bool) { return 0x1122334455667788, name == "cas1" }
	pkt, err := buildBinLine(`set key=k value="a b" flags=5 exp=-1 opaque=7 cas=$cas1`, vars)
	if err != nil {
		t.Fatal(err)
	}
	want := "80010001080000000000000c00000007" + "1122334455667788" + "00000005ffffffff" + "6b" + "612062"
	if got := hex.EncodeToString(pkt); got != want {
		t.Errorf("set packet\n got %s\nwant %s", got, want)
	}
	hexPkt, err := buildHexLine(nil, `8001 0001 08 00 0000 | 0000000c 00000007 $cas1 # comment`, vars)
	if err != nil || !bytes.Equal(hexPkt, pkt[:24]) {
		t.Errorf("sendhex: %x, %v", hexPkt, err)
	}
	// A reply rendered: make it look like a response and frame two of them.
	reply := slices.Clone(pkt)
	reply[0] = magicReply
	reply[1] = 0x00 // get: extras are flags
	reply[4], reply[2], reply[3] = 4, 0, 1
	binaryPutBodyLen(reply, 4+1+3)
	reply = append(reply[:24], append([]byte{0, 0, 0, 5}, "kabc"...)...)
	noop := []byte{0x81, 0x0a, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0}
	r := renderer{names: newCASNames()}
	got := r.render(append(append(reply, noop...), 0x81, 0x00), true, false)
	wantLines := []string{
		`get opaque=7 cas=$cas1 flags=5 key="k" value="abc"`,
		`noop status=KEY_ENOENT opaque=9`,
		`partial="\x81\0"`,
	}
	if !slices.Equal(got, wantLines) {
		t.Errorf("render binary:\n%s", lineDiff(wantLines, got))
	}
	for _, bad := range []string{"frob", "get key", "get nosuch=1", "get flags=1", `get key="x`, "set cas=$nope"} {
		if _, err := buildBinLine(bad, vars); err == nil {
			t.Errorf("buildBinLine(%q) succeeded", bad)
		}
	}
}

func binaryPutBodyLen(p []byte, n int) {
	p[8], p[9], p[10], p[11] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
}

func TestLineDiff(t *testing.T) {
	got := lineDiff([]string{"a", "b", "c"}, []string{"a", "x", "c", "d"})
	want := "    a\n  + x\n  - b\n    c\n  + d\n"
	if got != want {
		t.Errorf("lineDiff:\n%s\nwant:\n%s", got, want)
	}
}

func TestMatchesShape(t *testing.T) {
	got := []string{"STAT a $", "STAT b $", "END"}
	if !matches([]string{"STAT b $", "END"}, got, true) {
		t.Error("subset did not match")
	}
	if matches([]string{"STAT c $", "END"}, got, true) || matches([]string{"STAT a $"}, got, true) {
		t.Error("missing line or wrong last line matched")
	}
}

// TestEmbeddedScripts checks that every script parses, every group has
// scripts, and the embedded copy is the one on disk.
func TestEmbeddedScripts(t *testing.T) {
	emb, err := loadGroups(scripts())
	if err != nil {
		t.Fatal(err)
	}
	disk, err := loadGroups(scriptsOnDisk())
	if err != nil {
		t.Fatal(err)
	}
	if len(emb) != len(disk) {
		t.Errorf("embedded groups %d, on disk %d", len(emb), len(disk))
	}
	for _, g := range []string{"text", "meta", "binary", "stats", "ttl"} {
		if len(emb[g]) == 0 {
			t.Errorf("group %s has no scripts", g)
		}
	}
	if !slices.Equal(AllGroups(), sortedKeys(emb)) {
		t.Errorf("AllGroups = %v", AllGroups())
	}
	for g, list := range emb {
		for _, s := range list {
			if len(s.steps) == 0 {
				t.Errorf("%s/%s has no steps", g, s.name)
			}
		}
	}
}

func sortedKeys(m map[string][]*script) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// fakeT records the first fatal message and stops the script by panicking.
type fakeT struct{ msg string }

type fatalStop struct{}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalStop{})
}

func (f *fakeT) Logf(string, ...any) {}

// runFake runs a script's text against address and returns the failure
// message, "" if it passed.
func runFake(t *testing.T, address, text string, timeout time.Duration) (msg string) {
	t.Helper()
	s, err := parseScript("fake.txt", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeT{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatalStop); !ok {
				panic(r)
			}
			msg = f.msg
		}
	}()
	runScript(f, address, s, runOptions{timeout: timeout})
	return ""
}

// TestRunnerCatchesDifferences checks that the runner fails on a wrong
// reply, on an extra reply, on a missing reply and on silence.
func TestRunnerCatchesDifferences(t *testing.T) {
	t.Parallel()
	mc := mctest.Start(t)
	for _, tc := range []struct{ name, script, want string }{
		{"pass", "send\nset k 0 0 1\nx\nget k\n----\nSTORED\nVALUE k 0 1\nx\nEND\n", ""},
		{"wrong value", "send\nset k 0 0 1\nx\nget k\n----\nSTORED\nVALUE k 0 1\ny\nEND\n", "  + x\n  - y\n"},
		{"extra reply", "send\nset k 0 0 1\nx\n----\n", "  + STORED\n"},
		{"missing reply", "send\nset k 0 0 1 noreply\nx\n----\nSTORED\n", "  - STORED\n"},
		{"extra MN", "send\nmn\nmn\n----\nMN\n", "  + MN\n"},
		{"cas changed", "send\nset k 0 0 1\nx\ngets k\nset k 0 0 1\ny\ngets k\n----\nSTORED\nVALUE k 0 1 $cas1\nx\nEND\nSTORED\nVALUE k 0 1 $cas1\ny\nEND\n", "$cas2"},
		{"closed", "send\nquit\n----\n", "  + [closed]"},
		{"poll gives up", "send poll=200ms\nversion\n----\nEND\n", "after polling"},
		{"mixed protocols", "send\nversion\n----\nVERSION $version\n\nsendbin\nnoop\n----\nnoop\n", "speaks text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := runFake(t, mc.Addr, tc.script, 2*time.Second)
			if tc.want == "" && msg != "" || !strings.Contains(msg, tc.want) {
				t.Errorf("failure message %q, want it to contain %q", msg, tc.want)
			}
		})
	}
}

// fakeServer serves a Unix socket: it answers the runner's flush_all with
// OK and hands every other read to serve, with the connection.
func fakeServer(t *testing.T, serve func(c net.Conn, req []byte)) string {
	sock := filepath.Join(t.TempDir(), "fake.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if strings.HasPrefix(string(buf[:n]), "flush_all") {
						c.Write([]byte("OK\r\n"))
						continue
					}
					serve(c, buf[:n])
				}
			}()
		}
	}()
	return "unix:" + sock
}

// TestRunnerTimeout checks a server that never answers fails the step after
// the timeout instead of hanging.
func TestRunnerTimeout(t *testing.T) {
	t.Parallel()
	address := fakeServer(t, func(net.Conn, []byte) {})
	start := time.Now()
	msg := runFake(t, address, "send\nget k\n----\nEND\n", 300*time.Millisecond)
	if !strings.Contains(msg, "no complete reply") || time.Since(start) > 2*time.Second {
		t.Errorf("after %v: %q", time.Since(start), msg)
	}
}

// TestRunnerLateReply checks that a reply arriving after its step was
// judged is caught when the script ends.
func TestRunnerLateReply(t *testing.T) {
	t.Parallel()
	address := fakeServer(t, func(c net.Conn, req []byte) {
		switch string(req) {
		case "get k\r\nmn\r\n":
			c.Write([]byte("END\r\nMN\r\n"))
		case "version\r\n":
			// A reply the server owed earlier, sent only now.
			c.Write([]byte("STRAY\r\nVERSION 1\r\n"))
		}
	})
	msg := runFake(t, address, "send\nget k\n----\nEND\n", time.Second)
	if !strings.Contains(msg, "unexpected reply after the last step:\n    STRAY") {
		t.Errorf("got %q", msg)
	}
}

func FuzzEscape(f *testing.F) {
	f.Add([]byte("VALUE k 0 1 5\r\nx\r\nEND\r\n"), false)
	f.Add([]byte{0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, quoted bool) {
		s := escape(b, quoted)
		got, cont, err := unescape(nil, s, nil)
		if err != nil || cont || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %q via %q: %q %v %v", b, s, got, cont, err)
		}
		// Rendering never panics and never yields a raw line break.
		r := renderer{names: newCASNames()}
		for _, l := range r.render(b, quoted, false) {
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("rendered line %q holds a line break", l)
			}
		}
	})
}
