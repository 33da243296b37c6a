package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Runs of pipelined sets (orca.HandleSets) through the real rend, memcached
// and mnemonic.

// step is one request of a script and whether its reply ends with END.
type step struct {
	req   string
	multi bool
}

// replies reads the reply of each step (one line, or lines up to END).
func (c *conn) replies(steps []step) []string {
	c.TB.Helper()
	var out []string
	for _, s := range steps {
		var b strings.Builder
		for {
			l := c.line()
			b.WriteString(l + "|")
			if !s.multi || l == "END" || strings.HasPrefix(l, "SERVER_ERROR") {
				break
			}
		}
		out = append(out, b.String())
	}
	return out
}

// setScript is runs of sets (text set and meta ms, a key set twice in a
// run, an expired one) broken up by gets and a delete of the same keys.
func setScript(p string) []step {
	s := func(req string) step { return step{req: strings.ReplaceAll(req, "P", p)} }
	g := func(req string) step { return step{req: strings.ReplaceAll(req, "P", p), multi: true} }
	return []step{
		s("set P:a 1 0 2\r\nv1\r\n"), s("set P:b 2 0 2\r\nv1\r\n"), s("set P:a 3 0 2\r\nv2\r\n"),
		g("get P:a P:b\r\n"),
		s("set P:c 0 0 2\r\nc1\r\n"), s("delete P:b\r\n"), s("set P:b 4 0 2\r\nb2\r\n"),
		s("set P:d 0 -1 2\r\nd1\r\n"), s("ms P:e 2 F5\r\ne1\r\n"), s("set P:a 5 0 2\r\nv3\r\n"),
		s("set P:c 6 0 2\r\nc2\r\n"),
		g("get P:a P:b P:c P:d P:e\r\n"),
	}
}

// TestSetRunsAsOneByOne: a pipelined script of set runs mixed with gets
// and deletes answers exactly what the same script answers one request at
// a time (no runs), on both ports, and leaves every key as mnemonic holds
// it with L1 no staler; the pipelined sets reach mnemonic as group
// commits.
func TestSetRunsAsOneByOne(t *testing.T) {
	// mnemonic's read state (a first fetch) is written by its flusher
	// behind the reply, at times of its own; with an hour's interval none
	// of those writes falls into the counts compared below.
	s := newL1L2Stack(t, "256", []string{"-state-flush-interval", "1h"})
	for _, port := range []string{s.rend.regular, s.rend.batch} {
		var got [2][]string
		var commits, ops [2]uint64
		for m, pipelined := range []bool{false, true} {
			p := fmt.Sprintf("%d%v", len(port), pipelined)
			c := dial(t, port)
			pre := dial(t, s.rend.regular)
			for _, k := range []string{"a", "b"} { // hot keys
				pre.set(p+":"+k, []byte("old"), 0, 0)
				pre.get(p + ":" + k)
			}
			steps := setScript(p)
			c0, o0 := mcStat(t, s.l2, "rocksdb_write_commits"), mcStat(t, s.l2, "rocksdb_write_ops")
			if pipelined {
				var all strings.Builder
				for _, st := range steps {
					all.WriteString(st.req)
				}
				c.send(all.String())
				got[m] = c.replies(steps)
			} else {
				for _, st := range steps {
					c.send(st.req)
					got[m] = append(got[m], c.replies([]step{st})...)
				}
			}
			commits[m] = mcStat(t, s.l2, "rocksdb_write_commits") - c0
			ops[m] = mcStat(t, s.l2, "rocksdb_write_ops") - o0
			for i := range got[m] {
				got[m][i] = strings.ReplaceAll(got[m][i], p, "P")
			}
			for _, k := range []string{"a", "b", "c", "d", "e"} {
				s.sameAsL2(t, c, p+":"+k)
			}
		}
		for i := range got[0] {
			if got[0][i] != got[1][i] {
				t.Errorf("%s: step %d %q: pipelined %q, one by one %q", port, i, steps0(i), got[1][i], got[0][i])
			}
		}
		if ops[1] != ops[0] || commits[1] >= commits[0] {
			t.Errorf("%s: mnemonic committed %d ops in %d writes pipelined, %d in %d one by one: no group commit",
				port, ops[1], commits[1], ops[0], commits[0])
		}
	}
}

func steps0(i int) string { return setScript("P")[i].req }

// TestSetRunL2StallLeavesNoStaleL1: a pipelined run of sets of hot keys
// times out with mnemonic stopped; mnemonic applies it when it resumes.
// Every set answers SERVER_ERROR and afterwards rend serves what mnemonic
// holds, never the L1 copies from before the run.
func TestSetRunL2StallLeavesNoStaleL1(t *testing.T) {
	s := newStack(t, true, "-backend-timeout", "300ms")
	c := dial(t, s.rend.regular)
	keys := []string{"sr-a", "sr-b", "sr-c"}
	for _, k := range keys {
		c.set(k, []byte("10"), 0, 0)
		c.get(k)
		if !s.inL1(t, k) {
			t.Fatalf("%s: test setup: no L1 copy", k)
		}
	}
	pid := s.mn.Pid()
	resume := sigstop(t, pid)
	var run strings.Builder
	for _, k := range append(keys, keys[0]) {
		fmt.Fprintf(&run, "set %s 0 0 2\r\nv2\r\n", k)
	}
	c.send(run.String())
	for range len(keys) + 1 {
		if l := c.line(); !strings.HasPrefix(l, "SERVER_ERROR ") {
			t.Errorf("a set of the run with L2 stopped answered %q", l)
		}
	}
	for _, k := range keys {
		if s.inL1(t, k) {
			t.Errorf("%s: L1 kept its copy through a run that timed out", k)
		}
	}
	resume()
	eventually(t, 10*time.Second, "mnemonic to apply the queued run", func() bool {
		for _, k := range keys {
			if v, _ := s.l2Value(t, k); v != "v2" {
				return false
			}
		}
		return true
	})
	eventually(t, 10*time.Second, "rend to read from mnemonic again", func() bool {
		c.send("get sr-other\r\n")
		return c.line() == "END"
	})
	for _, k := range keys {
		s.sameAsL2(t, c, k)
	}
}
