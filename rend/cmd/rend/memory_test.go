package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
)

const mib = 1 << 20

// TestGetRepeatedBigValueStreams (issue 11 item 2): through rend (L1 and
// L2), one 4 MiB value named 100 times in one get line is a 400 MiB reply.
// rend must stream it (a group's hits at a time, a repeated key fetched
// once per group) rather than assemble it: its peak RSS grows by a few
// copies of the value, not by the reply, and every copy arrives intact.
func TestGetRepeatedBigValueStreams(t *testing.T) {
	l1 := mctest.Start(t, "-m", "64")
	r := startRend(t, l1.Addr, startMnemonic(t).Addr)
	c := dial(t, r.regular)
	value := bytes.Repeat([]byte("fedcba9876543210"), 4*mib/16)
	c.set("big", value, 7, 0)
	if got, _, _, ok := c.get("big"); !ok || !bytes.Equal(got, value) {
		t.Fatal("big value did not round-trip")
	}
	before, err := mctest.ProcMemory(r.Pid())
	if err != nil {
		t.Fatal(err)
	}
	const copies = 100
	c.send("get" + strings.Repeat(" big", copies) + "\r\n")
	c.NC.SetDeadline(time.Now().Add(60 * time.Second))
	header := fmt.Sprintf("VALUE big 7 %d", len(value))
	buf := make([]byte, len(value)+2)
	for i := range copies {
		if l := c.line(); l != header {
			t.Fatalf("copy %d: header %q", i, l)
		}
		if _, err := io.ReadFull(c.R, buf); err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		if !bytes.Equal(buf[:len(value)], value) || string(buf[len(value):]) != "\r\n" {
			t.Fatalf("copy %d differs", i)
		}
	}
	if l := c.line(); l != "END" {
		t.Fatalf("after %d copies: %q", copies, l)
	}
	after, err := mctest.ProcMemory(r.Pid())
	if err != nil {
		t.Fatal(err)
	}
	growth := after.Peak - before.Peak
	t.Logf("rend peak RSS %d MiB before, %d MiB after a %d MiB reply (growth %d MiB)",
		before.Peak/mib, after.Peak/mib, copies*len(value)/mib, growth/mib)
	if growth > 64*mib {
		t.Errorf("rend's peak RSS grew by %d MiB serving a streamed reply", growth/mib)
	}
}

// TestGetManyKeys (issue 10 item 4): a get line of 100,000 keys is answered
// in full through rend, in L1+L2 mode on both ports and in L1-only mode.
func TestGetManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString("get")
	for i := range 100000 {
		fmt.Fprintf(&b, " k%d", i)
	}
	b.WriteString("\r\n")
	l1only := startRend(t, mctest.Start(t, "-m", "64").Addr, "")
	l1l2 := startRend(t, mctest.Start(t, "-m", "64").Addr, startMnemonic(t).Addr)
	for _, a := range []string{l1only.regular, l1l2.regular, l1l2.batch} {
		c := dial(t, a)
		c.expect("set k7 0 0 2\r\nhi\r\n", "STORED")
		c.expect("set k99999 0 0 2\r\nho\r\n", "STORED")
		c.send(b.String())
		c.NC.SetDeadline(time.Now().Add(30 * time.Second))
		for _, w := range []string{"VALUE k7 0 2", "hi", "VALUE k99999 0 2", "ho", "END"} {
			if got := c.line(); got != w {
				t.Fatalf("%s: got %q, want %q", a, got, w)
			}
		}
	}
}
