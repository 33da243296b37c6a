package mcclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

func newClient(tb testing.TB, addr string, mod ...func(*Config)) *Client {
	tb.Helper()
	cfg := Config{Addr: addr}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// rq builds a request; keys and value are copied into its arena.
func rq(cmd protocol.Command, value string, keys ...string) *protocol.Request {
	r := &protocol.Request{Command: cmd, HasExptime: true}
	for _, k := range keys {
		r.AddKey([]byte(k))
	}
	if value != "" || cmd.IsStorage() {
		r.Value = r.CopyBytes([]byte(value))
	}
	return r
}

// do runs one request and fails the test on a transport error.
func do(tb testing.TB, c *Client, r *protocol.Request) *protocol.Response {
	tb.Helper()
	resp := &protocol.Response{}
	if err := c.Handle(context.Background(), r, resp); err != nil {
		tb.Fatalf("%v %q: %v", r.Command, r.Keys, err)
	}
	return resp
}

func wantStatus(tb testing.TB, resp *protocol.Response, s protocol.Status) {
	tb.Helper()
	if resp.Status != s {
		tb.Fatalf("status %v (%q), want %v", resp.Status, resp.Message, s)
	}
}

func set(tb testing.TB, c *Client, key, value string, flags uint32, exptime int64) uint64 {
	tb.Helper()
	r := rq(protocol.CmdSet, value, key)
	r.Flags, r.Exptime = flags, exptime
	resp := do(tb, c, r)
	wantStatus(tb, resp, protocol.StatusOK)
	if resp.CAS == 0 {
		tb.Fatalf("set %q: no CAS returned", key)
	}
	return resp.CAS
}

// get returns the single hit for key, or nil on a miss.
func get(tb testing.TB, c *Client, key string) *protocol.Hit {
	tb.Helper()
	resp := do(tb, c, rq(protocol.CmdGets, "", key))
	wantStatus(tb, resp, protocol.StatusOK)
	switch len(resp.Hits) {
	case 0:
		return nil
	case 1:
		h := resp.Hits[0]
		return &h
	}
	tb.Fatalf("get %q: %d hits", key, len(resp.Hits))
	return nil
}

func wantValue(tb testing.TB, c *Client, key, value string) *protocol.Hit {
	tb.Helper()
	h := get(tb, c, key)
	if h == nil {
		tb.Fatalf("get %q: miss, want %q", key, value)
	}
	if string(h.Value) != value {
		tb.Fatalf("get %q = %q, want %q", key, h.Value, value)
	}
	return h
}

func TestCommandsUnix(t *testing.T) { testCommands(t, mctest.Start(t).Addr) }

func TestCommandsTCP(t *testing.T) { testCommands(t, mctest.StartTCP(t).Addr) }

func testCommands(t *testing.T, addr string) {
	c := newClient(t, addr)
	ctx := context.Background()

	t.Run("set-get", func(t *testing.T) {
		now := time.Now().Unix()
		cas := set(t, c, "a", "alpha", 42, 100)
		h := wantValue(t, c, "a", "alpha")
		if h.Flags != 42 || h.CAS != cas || h.Index != 0 {
			t.Fatalf("hit %+v, want flags 42 cas %d", h, cas)
		}
		if h.Exptime < now+99 || h.Exptime > now+102 {
			t.Fatalf("exptime %d, want about now+100 (%d)", h.Exptime, now+100)
		}
		set(t, c, "never", "x", 0, 0)
		if h := wantValue(t, c, "never", "x"); h.Exptime != 0 {
			t.Fatalf("exptime %d, want 0 for never", h.Exptime)
		}
		// Absolute exptime as rend sends it, and a negative one (expired).
		set(t, c, "abs", "x", 0, now+1000)
		if h := wantValue(t, c, "abs", "x"); h.Exptime < now+999 || h.Exptime > now+1002 {
			t.Fatalf("absolute exptime %d, want about %d", h.Exptime, now+1000)
		}
		set(t, c, "expired", "x", 0, -1)
		if get(t, c, "expired") != nil {
			t.Fatal("item stored with exptime -1 is visible")
		}
		// Empty value.
		set(t, c, "empty", "", 0, 0)
		if h := wantValue(t, c, "empty", ""); h.Value == nil {
			t.Fatal("empty hit has nil value")
		}
	})

	t.Run("get-miss", func(t *testing.T) {
		resp := do(t, c, rq(protocol.CmdGet, "", "nope"))
		wantStatus(t, resp, protocol.StatusOK)
		if len(resp.Hits) != 0 {
			t.Fatalf("miss returned hits %+v", resp.Hits)
		}
	})

	t.Run("multi-get-order", func(t *testing.T) {
		var keys []string
		for i := range 50 {
			k := fmt.Sprintf("mk%d", i)
			keys = append(keys, k)
			if i%3 != 1 {
				set(t, c, k, "v"+k, uint32(i), 0)
			}
		}
		resp := do(t, c, rq(protocol.CmdGet, "", keys...))
		wantStatus(t, resp, protocol.StatusOK)
		var want []int
		for i := range keys {
			if i%3 != 1 {
				want = append(want, i)
			}
		}
		if len(resp.Hits) != len(want) {
			t.Fatalf("%d hits, want %d", len(resp.Hits), len(want))
		}
		for j, h := range resp.Hits {
			i := want[j]
			if h.Index != i || string(h.Value) != "v"+keys[i] || h.Flags != uint32(i) {
				t.Fatalf("hit %d = {%d %q %d}, want {%d %q %d}", j, h.Index, h.Value, h.Flags, i, "v"+keys[i], i)
			}
		}
		// The same key twice answers twice.
		resp = do(t, c, rq(protocol.CmdGet, "", "mk0", "mk0"))
		if len(resp.Hits) != 2 || resp.Hits[0].Index != 0 || resp.Hits[1].Index != 1 {
			t.Fatalf("duplicate key hits %+v", resp.Hits)
		}
	})

	t.Run("storage-modes", func(t *testing.T) {
		// add: stores only if absent.
		wantStatus(t, do(t, c, rq(protocol.CmdAdd, "1", "add")), protocol.StatusOK)
		wantStatus(t, do(t, c, rq(protocol.CmdAdd, "2", "add")), protocol.StatusNotStored)
		wantValue(t, c, "add", "1")
		// replace: only if present.
		wantStatus(t, do(t, c, rq(protocol.CmdReplace, "x", "rep")), protocol.StatusNotStored)
		set(t, c, "rep", "a", 0, 0)
		wantStatus(t, do(t, c, rq(protocol.CmdReplace, "b", "rep")), protocol.StatusOK)
		wantValue(t, c, "rep", "b")
		// append/prepend: only if present.
		wantStatus(t, do(t, c, rq(protocol.CmdAppend, "x", "app")), protocol.StatusNotStored)
		wantStatus(t, do(t, c, rq(protocol.CmdPrepend, "x", "app")), protocol.StatusNotStored)
		set(t, c, "app", "mid", 7, 0)
		wantStatus(t, do(t, c, rq(protocol.CmdAppend, "-end", "app")), protocol.StatusOK)
		wantStatus(t, do(t, c, rq(protocol.CmdPrepend, "start-", "app")), protocol.StatusOK)
		if h := wantValue(t, c, "app", "start-mid-end"); h.Flags != 7 {
			t.Fatalf("append changed flags to %d", h.Flags)
		}
	})

	t.Run("cas", func(t *testing.T) {
		cas := set(t, c, "c", "one", 0, 0)
		r := rq(protocol.CmdCas, "two", "c")
		r.CAS = cas + 1000
		wantStatus(t, do(t, c, r), protocol.StatusExists)
		r.CAS = cas
		resp := do(t, c, r)
		wantStatus(t, resp, protocol.StatusOK)
		if resp.CAS == 0 || resp.CAS == cas {
			t.Fatalf("cas returned CAS %d (old %d)", resp.CAS, cas)
		}
		if h := wantValue(t, c, "c", "two"); h.CAS != resp.CAS {
			t.Fatalf("gets CAS %d, cas answered %d", h.CAS, resp.CAS)
		}
		r = rq(protocol.CmdCas, "x", "c-missing")
		r.CAS = 5
		wantStatus(t, do(t, c, r), protocol.StatusNotFound)
		// cas with unique 0 compares against 0, as memcached's cas does.
		r = rq(protocol.CmdCas, "x", "c")
		wantStatus(t, do(t, c, r), protocol.StatusExists)
		// A plain set with CAS set compares too (binary protocol set).
		r = rq(protocol.CmdSet, "y", "c")
		r.CAS = 1
		wantStatus(t, do(t, c, r), protocol.StatusExists)
	})

	t.Run("newcas-unsupported", func(t *testing.T) {
		// memcached 1.6.18 has no E flag: it answers CLIENT_ERROR and
		// swallows the data, and the connection stays in step.
		r := rq(protocol.CmdSet, "v", "e")
		r.NewCAS = 777
		resp := do(t, c, r)
		if resp.Status != protocol.StatusClientError && resp.Status != protocol.StatusOK {
			t.Fatalf("E flag: status %v %q", resp.Status, resp.Message)
		}
		set(t, c, "e2", "fine", 0, 0)
		wantValue(t, c, "e2", "fine")
	})

	t.Run("delete", func(t *testing.T) {
		cas := set(t, c, "d", "x", 0, 0)
		r := rq(protocol.CmdDelete, "", "d")
		r.CAS = cas + 1
		wantStatus(t, do(t, c, r), protocol.StatusExists)
		r.CAS = cas
		wantStatus(t, do(t, c, r), protocol.StatusOK)
		wantStatus(t, do(t, c, rq(protocol.CmdDelete, "", "d")), protocol.StatusNotFound)
		if get(t, c, "d") != nil {
			t.Fatal("deleted key still there")
		}
		// Invalidate marks the item stale instead of removing it.
		set(t, c, "stale", "old", 0, 0)
		r = rq(protocol.CmdDelete, "", "stale")
		r.Invalidate = true
		wantStatus(t, do(t, c, r), protocol.StatusOK)
		if h := wantValue(t, c, "stale", "old"); !h.Stale {
			t.Fatalf("invalidated item not stale: %+v", h)
		}
	})

	t.Run("touch-gat", func(t *testing.T) {
		set(t, c, "t", "tv", 3, 0)
		r := rq(protocol.CmdTouch, "", "t")
		r.Exptime = 500
		wantStatus(t, do(t, c, r), protocol.StatusOK)
		r = rq(protocol.CmdTouch, "", "t-missing")
		r.Exptime = 500
		wantStatus(t, do(t, c, r), protocol.StatusNotFound)
		now := time.Now().Unix()
		if h := wantValue(t, c, "t", "tv"); h.Exptime < now+498 || h.Exptime > now+502 {
			t.Fatalf("after touch exptime %d, want about now+500", h.Exptime)
		}

		r = rq(protocol.CmdGats, "", "t", "gat-missing", "t")
		r.Exptime = 1000
		now = time.Now().Unix()
		resp := do(t, c, r)
		wantStatus(t, resp, protocol.StatusOK)
		if len(resp.Hits) != 2 || resp.Hits[0].Index != 0 || resp.Hits[1].Index != 2 {
			t.Fatalf("gats hits %+v", resp.Hits)
		}
		for _, h := range resp.Hits {
			if string(h.Value) != "tv" || h.Flags != 3 || h.CAS == 0 {
				t.Fatalf("gat hit %+v", h)
			}
			// memcached reports the TTL before the touch; the client must
			// report the new expiry.
			if h.Exptime < now+999 || h.Exptime > now+1002 {
				t.Fatalf("gat exptime %d, want about now+1000", h.Exptime)
			}
		}
		if h := wantValue(t, c, "t", "tv"); h.Exptime < now+999 || h.Exptime > now+1002 {
			t.Fatalf("after gat exptime %d, want about now+1000", h.Exptime)
		}
		// gat 0 makes the item immortal.
		r = rq(protocol.CmdGat, "", "t")
		resp = do(t, c, r)
		if len(resp.Hits) != 1 || resp.Hits[0].Exptime != 0 {
			t.Fatalf("gat 0 hits %+v", resp.Hits)
		}
		if h := wantValue(t, c, "t", "tv"); h.Exptime != 0 {
			t.Fatalf("after gat 0 exptime %d", h.Exptime)
		}
	})

	t.Run("incr-decr", func(t *testing.T) {
		r := rq(protocol.CmdIncr, "", "n")
		r.Delta = 5
		wantStatus(t, do(t, c, r), protocol.StatusNotFound)
		set(t, c, "n", "10", 0, 0)
		resp := do(t, c, r)
		wantStatus(t, resp, protocol.StatusOK)
		if resp.Number != 15 || resp.CAS == 0 {
			t.Fatalf("incr: number %d cas %d", resp.Number, resp.CAS)
		}
		r = rq(protocol.CmdDecr, "", "n")
		r.Delta = 100
		resp = do(t, c, r)
		if resp.Status != protocol.StatusOK || resp.Number != 0 {
			t.Fatalf("decr below zero: %v %d", resp.Status, resp.Number)
		}
		r = rq(protocol.CmdIncr, "", "n")
		r.Delta = 1<<64 - 1
		if resp = do(t, c, r); resp.Number != 1<<64-1 {
			t.Fatalf("incr to max: %d", resp.Number)
		}
		set(t, c, "nn", "abc", 0, 0)
		wantStatus(t, do(t, c, rq(protocol.CmdIncr, "", "nn")), protocol.StatusNonNumeric)
		// Vivify creates the item with Initial on a miss.
		r = rq(protocol.CmdIncr, "", "viv")
		r.Delta, r.Initial, r.Vivify, r.Exptime = 3, 40, true, 100
		resp = do(t, c, r)
		if resp.Status != protocol.StatusOK || resp.Number != 40 {
			t.Fatalf("vivify: %v %d", resp.Status, resp.Number)
		}
		if resp = do(t, c, r); resp.Number != 43 {
			t.Fatalf("incr after vivify: %d", resp.Number)
		}
		// CAS compare on incr.
		h := wantValue(t, c, "viv", "43")
		r = rq(protocol.CmdIncr, "", "viv")
		r.Delta, r.CAS = 1, h.CAS+1
		wantStatus(t, do(t, c, r), protocol.StatusExists)
		r.CAS = h.CAS
		wantStatus(t, do(t, c, r), protocol.StatusOK)
	})

	t.Run("flush-version-verbosity-stats", func(t *testing.T) {
		resp := do(t, c, rq(protocol.CmdVersion, ""))
		wantStatus(t, resp, protocol.StatusOK)
		if !strings.HasPrefix(resp.Message, "1.") {
			t.Fatalf("version %q", resp.Message)
		}
		r := rq(protocol.CmdVerbosity, "")
		r.Args = []byte("0")
		wantStatus(t, do(t, c, r), protocol.StatusOK)

		resp = do(t, c, rq(protocol.CmdStats, ""))
		wantStatus(t, resp, protocol.StatusOK)
		if !hasStat(resp, "pid") || !hasStat(resp, "curr_connections") {
			t.Fatalf("stats lacks pid: %d lines", len(resp.Stats))
		}
		r = rq(protocol.CmdStats, "")
		r.Args = []byte("settings")
		if resp = do(t, c, r); !hasStat(resp, "item_size_max") {
			t.Fatalf("stats settings lacks item_size_max")
		}
		r.Args = []byte("reset")
		wantStatus(t, do(t, c, r), protocol.StatusOK)
		r.Args = []byte("nonsense")
		wantStatus(t, do(t, c, r), protocol.StatusClientError)
		r.Args = []byte("items\r\nflush_all")
		wantStatus(t, do(t, c, r), protocol.StatusClientError)

		set(t, c, "f", "x", 0, 0)
		r = rq(protocol.CmdFlushAll, "")
		r.Exptime = 100 // delayed: nothing goes yet
		wantStatus(t, do(t, c, r), protocol.StatusOK)
		wantValue(t, c, "f", "x")
		wantStatus(t, do(t, c, rq(protocol.CmdFlushAll, "")), protocol.StatusOK)
		if get(t, c, "f") != nil {
			t.Fatal("flush_all left an item")
		}
	})

	t.Run("local-errors", func(t *testing.T) {
		long := strings.Repeat("k", 251)
		wantStatus(t, do(t, c, rq(protocol.CmdSet, "v", long)), protocol.StatusClientError)
		wantStatus(t, do(t, c, rq(protocol.CmdGet, "", "ok", long)), protocol.StatusClientError)
		wantStatus(t, do(t, c, rq(protocol.CmdGet, "", "")), protocol.StatusClientError)
		wantStatus(t, do(t, c, rq(protocol.CmdGet, "")), protocol.StatusClientError)
		wantStatus(t, do(t, c, rq(protocol.CmdQuit, "")), protocol.StatusClientError)
		wantStatus(t, do(t, c, rq(protocol.CmdNoop, "")), protocol.StatusOK)
		// A 250-byte text key is fine; a binary key too long for base64 is not.
		set(t, c, strings.Repeat("k", 250), "v", 0, 0)
		wantStatus(t, do(t, c, rq(protocol.CmdSet, "v", strings.Repeat(" ", 187))), protocol.StatusClientError)
		set(t, c, strings.Repeat(" ", 186), "v", 0, 0)
		wantValue(t, c, strings.Repeat(" ", 186), "v")
	})

	t.Run("do-batch", func(t *testing.T) {
		reqs := []*protocol.Request{
			rq(protocol.CmdSet, "b1", "batch1"),
			rq(protocol.CmdAdd, "b2", "batch1"),
			rq(protocol.CmdGet, "", "batch1", "batch-missing"),
			rq(protocol.CmdSet, "x", strings.Repeat("k", 300)),
			rq(protocol.CmdDelete, "", "batch1"),
			rq(protocol.CmdGet, "", "batch1"),
		}
		resps := make([]*protocol.Response, len(reqs))
		for i := range resps {
			resps[i] = &protocol.Response{Status: protocol.StatusExists} // Do resets
		}
		if err := c.Do(ctx, reqs, resps); err != nil {
			t.Fatal(err)
		}
		want := []protocol.Status{protocol.StatusOK, protocol.StatusNotStored, protocol.StatusOK,
			protocol.StatusClientError, protocol.StatusOK, protocol.StatusOK}
		for i, r := range resps {
			if r.Status != want[i] {
				t.Fatalf("resp %d: %v %q, want %v", i, r.Status, r.Message, want[i])
			}
		}
		if len(resps[2].Hits) != 1 || string(resps[2].Hits[0].Value) != "b1" || len(resps[5].Hits) != 0 {
			t.Fatalf("batch gets: %+v / %+v", resps[2].Hits, resps[5].Hits)
		}
		if err := c.Do(ctx, nil, nil); err != nil {
			t.Fatalf("empty Do: %v", err)
		}
		if err := c.Do(ctx, reqs, resps[:1]); err == nil {
			t.Fatal("Do with too few responses succeeded")
		}
	})
}

func hasStat(resp *protocol.Response, name string) bool {
	for _, s := range resp.Stats {
		if s.Name == name {
			return true
		}
	}
	return false
}

func TestBinarySafe(t *testing.T) {
	c := newClient(t, mctest.Start(t).Addr)
	value := "line1\r\nEND\r\nVA 3\r\n\x00\xff\r\n"
	set(t, c, "bin", value, 0, 0)
	wantValue(t, c, "bin", value)

	// Keys a binary-protocol client may send: spaces, control bytes, NUL.
	keys := []string{"a b", "tab\there", "nul\x00", "crlf\r\n", "\xff\xfe", "x"}
	for i, k := range keys {
		set(t, c, k, fmt.Sprint("value", i), uint32(i), 0)
	}
	resp := do(t, c, rq(protocol.CmdGet, "", keys...))
	if len(resp.Hits) != len(keys) {
		t.Fatalf("%d hits for %d binary keys", len(resp.Hits), len(keys))
	}
	for i, h := range resp.Hits {
		if h.Index != i || string(h.Value) != fmt.Sprint("value", i) {
			t.Fatalf("hit %d: %+v", i, h)
		}
	}
	// "a b" must not alias "a" or "b", and each command takes base64 keys.
	if get(t, c, "a") != nil || get(t, c, "b") != nil {
		t.Fatal("binary key aliased a text key")
	}
	set(t, c, "n m", "1", 0, 0)
	r := rq(protocol.CmdIncr, "", "n m")
	r.Delta = 2
	if resp := do(t, c, r); resp.Number != 3 {
		t.Fatalf("incr binary key: %v %d", resp.Status, resp.Number)
	}
	r = rq(protocol.CmdTouch, "", "n m")
	r.Exptime = 100
	wantStatus(t, do(t, c, r), protocol.StatusOK)
	wantStatus(t, do(t, c, rq(protocol.CmdDelete, "", "n m")), protocol.StatusOK)
	wantStatus(t, do(t, c, rq(protocol.CmdDelete, "", "n m")), protocol.StatusNotFound)
}

func TestLargeValues(t *testing.T) {
	m := mctest.Start(t, "-I", "2m", "-m", "64")
	c := newClient(t, m.Addr)
	big := bytes.Repeat([]byte("0123456789abcdef\r\n"), (1<<20)/18+1)[:1<<20]
	r := rq(protocol.CmdSet, "", "big")
	r.Value = big
	wantStatus(t, do(t, c, r), protocol.StatusOK)
	for range 3 { // a second read reuses the scratch buffer
		h := get(t, c, "big")
		if h == nil || !bytes.Equal(h.Value, big) {
			t.Fatal("1 MiB value did not round-trip")
		}
	}
	// A classic multi-key get (the form used for 8+ keys) of large and
	// small values: each large one is read straight into the Response.
	keys := []string{"big", "after0", "nope", "big", "after1", "after2", "after3", "after4"}
	for i := range 5 {
		set(t, c, fmt.Sprintf("after%d", i), strings.Repeat("x", i), 0, 0)
	}
	multi, mreq := &protocol.Response{}, rq(protocol.CmdGet, "", keys...)
	read := func() {
		if err := c.Handle(context.Background(), mreq, multi); err != nil || len(multi.Hits) != 7 {
			t.Fatalf("multi-get: %v, %d hits", err, len(multi.Hits))
		}
	}
	read()
	for _, h := range multi.Hits {
		want := big
		if k := keys[h.Index]; k != "big" {
			want = []byte(strings.Repeat("x", int(k[len(k)-1]-'0')))
		}
		if !bytes.Equal(h.Value, want) {
			t.Fatalf("multi-get: %q: %d bytes differ", keys[h.Index], len(h.Value))
		}
	}
	// Into a reused Response the large values cost no allocation (no
	// scratch buffer of their own).
	if n := testing.AllocsPerRun(5, read); n > 1 {
		t.Errorf("multi-get of two 1 MiB values: %.1f allocations", n)
	}

	// Above the server's item size: memcached answers and swallows the data.
	r = rq(protocol.CmdSet, "", "huge")
	r.Value = make([]byte, 3<<20)
	resp := do(t, c, r)
	wantStatus(t, resp, protocol.StatusTooLarge)
	if resp.Message != "object too large for cache" {
		t.Fatalf("too large message %q", resp.Message)
	}
	set(t, c, "after", "ok", 0, 0)
	wantValue(t, c, "after", "ok")

	// Above the client's MaxValueSize: refused before sending, and a reply
	// announcing more is skipped with the connection kept in step.
	small := newClient(t, m.Addr, func(c *Config) { c.MaxValueSize = 1000; c.Conns = 1 })
	r = rq(protocol.CmdSet, "", "k")
	r.Value = make([]byte, 1001)
	wantStatus(t, do(t, small, r), protocol.StatusTooLarge)
	resp = &protocol.Response{}
	err := small.Handle(context.Background(), rq(protocol.CmdGet, "", "after", "big", "after"), resp)
	if !errors.Is(err, errValueTooLarge) {
		t.Fatalf("oversized reply: err %v", err)
	}
	wantValue(t, small, "after", "ok")
	if st := small.Stats(); st.ConnsUp != 1 || st.Reconnects != 0 {
		t.Fatalf("oversized reply dropped the connection: %+v", st)
	}
}

// TestRuntimeSyscalls: with Config.RuntimeSyscalls the connections read
// and write through the runtime's syscall path, not package rawio's, and
// every reply is the same (a large value, a classic multi-key get).
func TestRuntimeSyscalls(t *testing.T) {
	m := mctest.Start(t, "-I", "2m", "-m", "64")
	for _, rt := range []bool{false, true} {
		c := newClient(t, m.Addr, func(cfg *Config) { cfg.RuntimeSyscalls = rt })
		big := bytes.Repeat([]byte("abcdefgh"), 100000)
		r := rq(protocol.CmdSet, "", "rtbig")
		r.Value = big
		wantStatus(t, do(t, c, r), protocol.StatusOK)
		if h := get(t, c, "rtbig"); h == nil || !bytes.Equal(h.Value, big) {
			t.Fatalf("runtime syscalls %v: large value did not round-trip", rt)
		}
		var keys []string
		for i := range 20 {
			k := fmt.Sprintf("rt%d", i)
			set(t, c, k, strings.Repeat("v", i), 0, 0)
			keys = append(keys, k)
		}
		resp := do(t, c, rq(protocol.CmdGet, "", keys...))
		if len(resp.Hits) != len(keys) {
			t.Fatalf("runtime syscalls %v: %d hits of %d", rt, len(resp.Hits), len(keys))
		}
		for _, h := range resp.Hits {
			if string(h.Value) != strings.Repeat("v", h.Index) {
				t.Fatalf("runtime syscalls %v: key %d = %q", rt, h.Index, h.Value)
			}
		}
	}
}
