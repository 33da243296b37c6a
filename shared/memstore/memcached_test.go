package memstore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// TestCountersMatchMemcached runs incr/decr on awkward stored values
// against a real memcached (raw text protocol, no codec of ours involved)
// and checks the store answers the same and leaves the same bytes.
func TestCountersMatchMemcached(t *testing.T) {
	mc := mctest.Start(t)
	c, err := net.Dial("unix", strings.TrimPrefix(mc.Addr, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line := func() string {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("memcached: %v", err)
		}
		return strings.TrimSuffix(l, "\r\n")
	}
	real := func(start, cmd string, delta uint64) (reply, after string) {
		fmt.Fprintf(c, "set n 0 0 %d\r\n%s\r\n", len(start), start)
		if l := line(); l != "STORED" {
			t.Fatalf("set %q: %s", start, l)
		}
		fmt.Fprintf(c, "%s n %d\r\nget n\r\n", cmd, delta)
		reply = line()
		hdr := strings.Fields(line()) // VALUE n 0 <len>
		n, _ := strconv.Atoi(hdr[3])
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
		line() // END
		return reply, string(buf[:n])
	}
	s := New(Options{})
	ours := func(start, cmd string, delta uint64) (reply, after string) {
		do := func(req *protocol.Request) *protocol.Response {
			resp := &protocol.Response{}
			s.Handle(context.Background(), req, resp)
			return resp
		}
		set := &protocol.Request{Command: protocol.CmdSet, Value: []byte(start), HasExptime: true}
		set.AddKey([]byte("n"))
		do(set)
		ar := &protocol.Request{Command: protocol.CmdIncr, Delta: delta}
		if cmd == "decr" {
			ar.Command = protocol.CmdDecr
		}
		ar.AddKey([]byte("n"))
		switch resp := do(ar); resp.Status {
		case protocol.StatusOK:
			reply = strconv.FormatUint(resp.Number, 10)
		case protocol.StatusNonNumeric:
			reply = "CLIENT_ERROR cannot increment or decrement non-numeric value"
		default:
			reply = resp.Status.String()
		}
		get := &protocol.Request{Command: protocol.CmdGet}
		get.AddKey([]byte("n"))
		return reply, string(do(get).Hits[0].Value)
	}
	for _, start := range []string{
		"0", "5", "99", "100", "999", "18446744073709551615", "18446744073709551616",
		" 7", "7 ", "7 junk", "7junk", "+7", "-0", "-5", "-18446744073709551615", "1.5",
		"", "   ", "abc", "\t12", "00042", "12345678901234567890123",
	} {
		for _, op := range []struct {
			cmd   string
			delta uint64
		}{{"incr", 1}, {"incr", 18446744073709551615}, {"decr", 1}, {"decr", 1000}} {
			wr, wa := real(start, op.cmd, op.delta)
			gr, ga := ours(start, op.cmd, op.delta)
			if gr != wr || ga != wa {
				t.Errorf("%q %s %d: got %q leaving %q; memcached %q leaving %q",
					start, op.cmd, op.delta, gr, ga, wr, wa)
			}
		}
	}
}
