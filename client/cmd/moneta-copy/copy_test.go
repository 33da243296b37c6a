package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mcclient"
	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// bin holds the rend and mnemonic binaries TestMain builds once (package
// state because TestMain has no other way to hand them to the tests).
var bin mctest.Binaries

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "moneta-copy-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if bin, err = mctest.BuildMoneta(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

func pool(t *testing.T, a string) *mcclient.Client {
	t.Helper()
	cfg := mcclient.Config{Addr: a, Conns: 8, RequestTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	cfg.EnsureDefaults()
	c, err := mcclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// item is what the test stored under a key.
type item struct {
	value []byte
	flags uint32
	abs   int64 // absolute expiry, 0 for never
}

// store writes items in pipelined batches of 500 from 8 goroutines, with
// the exptime a client sends for each absolute expiry: relative seconds, or
// the absolute time past 30 days.
func store(t *testing.T, c *mcclient.Client, keys []string, items map[string]item) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := w * 500; start < len(keys); start += 8 * 500 {
				now := time.Now().Unix()
				var reqs []*protocol.Request
				var resps []*protocol.Response
				for _, k := range keys[start:min(start+500, len(keys))] {
					it := items[k]
					r := &protocol.Request{Command: protocol.CmdSet, Value: it.value, Flags: it.flags, HasExptime: true}
					if it.abs != 0 {
						r.Exptime = it.abs - now
						if r.Exptime > protocol.MaxRelativeExptime {
							r.Exptime = it.abs
						}
					}
					r.AddKey([]byte(k))
					reqs, resps = append(reqs, r), append(resps, &protocol.Response{})
				}
				if err := c.Do(context.Background(), reqs, resps); err != nil {
					errs <- err
					return
				}
				for i, r := range resps {
					if r.Status != protocol.StatusOK {
						errs <- fmt.Errorf("seed %s: %v %s", reqs[i].Key(), r.Status, r.Message)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// fetch reads keys (in batches) and returns the hits by key.
func fetch(t *testing.T, c *mcclient.Client, keys []string) map[string]protocol.Hit {
	t.Helper()
	got := map[string]protocol.Hit{}
	for start := 0; start < len(keys); start += 500 {
		batch := keys[start:min(start+500, len(keys))]
		req := &protocol.Request{Command: protocol.CmdGet}
		for _, k := range batch {
			req.AddKey([]byte(k))
		}
		var resp protocol.Response
		if err := c.Handle(context.Background(), req, &resp); err != nil {
			t.Fatal(err)
		}
		for _, h := range resp.Hits {
			h.Value = bytes.Clone(h.Value)
			got[batch[h.Index]] = h
		}
	}
	return got
}

// mgTTL asks a host for a key's remaining TTL with a raw "mg <key> t f v".
func mgTTL(t *testing.T, a, key string) (ttl int64, flags uint32, value string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", a, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "mg %s t f v\r\n", key)
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var f uint64
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "VA" {
		t.Fatalf("mg %s on %s: %q", key, a, line)
	}
	n, _ = strconv.Atoi(fields[1])
	for _, fl := range fields[2:] {
		switch fl[0] {
		case 't':
			ttl, _ = strconv.ParseInt(fl[1:], 10, 64)
		case 'f':
			f, _ = strconv.ParseUint(fl[1:], 10, 32)
		}
	}
	v := make([]byte, n+2)
	if _, err := io.ReadFull(br, v); err != nil {
		t.Fatal(err)
	}
	return ttl, uint32(f), string(v[:n])
}

// 100,000 keys from one loopback host to another: read from the source's
// mnemonic (what moneta-copy run on the source host reads, the record of
// every write; TestCopyFromL1 covers reading through the source's batch
// port) and written to the target's batch port. Values, flags and remaining
// TTLs (never, hours, days, and past 30 days, which memcached takes as an
// absolute time) arrive intact; keys the target already had are left alone
// (mode add); keys missing on the source and invalid lines are counted.
func TestCopy100k(t *testing.T) {
	const n = 100_000
	src := mctest.StartHost(t, bin, 64)
	dst := mctest.StartHost(t, bin, 64)
	now := time.Now()
	keys := make([]string, n)
	items := map[string]item{}
	for i := range keys {
		k := fmt.Sprintf("copy:%06d", i)
		keys[i] = k
		it := item{value: []byte(k + ":" + strings.Repeat("v", 20+i%80)), flags: uint32(i * 7)}
		switch i % 4 {
		case 1:
			it.abs = now.Unix() + 3600 + int64(i%1000)
		case 2:
			it.abs = now.Unix() + 10*86400
		case 3:
			it.abs = now.Unix() + 40*86400 // sent as an absolute time
		}
		items[k] = it
	}
	// Seeded straight into the source's mnemonic: what a batch-port load
	// leaves behind (L2 only), without paying rend's per-write round trips.
	t0 := time.Now()
	store(t, pool(t, src.Mnemonic.Ready), keys, items)
	t.Logf("seeded %d keys into the source's mnemonic in %v", n, time.Since(t0))
	// The target already has 100 of the keys, with other values: newer
	// writes that a copy in mode add must not overwrite.
	targetHas := map[string]item{}
	var targetKeys []string
	for i := 0; i < n; i += n / 100 {
		k := keys[i]
		targetHas[k] = item{value: []byte("newer"), flags: 1}
		targetKeys = append(targetKeys, k)
	}
	store(t, pool(t, dst.Batch), targetKeys, targetHas)

	list := filepath.Join(t.TempDir(), "keys.txt")
	var buf bytes.Buffer
	for _, k := range keys {
		buf.WriteString(k + "\n")
	}
	buf.WriteString("\nnot a key\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&buf, "absent:%d\r\n", i)
	}
	if err := os.WriteFile(list, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// What the source holds, with its expiry times as mg t reports them,
	// read from its mnemonic (the record; reading 100k keys through rend
	// costs a round trip per mg).
	onSource := fetch(t, pool(t, src.Mnemonic.Ready), keys)

	var stdout, stderr bytes.Buffer
	copyStart := time.Now()
	code := run(context.Background(), []string{"-from", src.Mnemonic.Ready, "-to", dst.Batch, "-keys", list,
		"-progress", "1s"}, nil, &stdout, &stderr)
	t.Logf("%s%s", stderr.String(), stdout.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := fmt.Sprintf("copied %d, already on target %d, missing on source %d, expired 0, failed 0, invalid key lines 1",
		n-len(targetKeys), len(targetKeys), 100)
	if !strings.Contains(stdout.String(), want) {
		t.Fatalf("summary %q, want %q", stdout.String(), want)
	}

	// A copied item's expiry moves later by the time between moneta-copy
	// reading its TTL and the target receiving the write (the remaining
	// seconds are sent relative, so the hosts' clocks need not agree), which
	// is within the copy's duration, plus a second of rounding at each of
	// the TTL's trips through whole seconds. It never moves earlier.
	late := int64(time.Since(copyStart).Seconds()) + 2
	within := func(target, source int64) bool { return target-source >= -2 && target-source <= late }
	// Everything on the target, read from its mnemonic: the batch port
	// writes there (and to L1 only for keys already in L1).
	got := fetch(t, pool(t, dst.Mnemonic.Ready), keys)
	for _, k := range keys {
		want, ok := targetHas[k]
		if !ok {
			want = items[k]
			want.abs = onSource[k].Exptime
		}
		h, found := got[k]
		switch {
		case !found:
			t.Fatalf("%s not on the target", k)
		case !bytes.Equal(h.Value, want.value) || h.Flags != want.flags:
			t.Fatalf("%s on the target: %q flags %d, want %q flags %d", k, h.Value, h.Flags, want.value, want.flags)
		case (h.Exptime == 0) != (want.abs == 0) || !within(h.Exptime, want.abs):
			t.Fatalf("%s on the target expires at %d, on the source at %d", k, h.Exptime, want.abs)
		}
	}
	// The remaining TTL as a raw mg reports it, on the target's regular port.
	for i := 1; i < n; i += n / 50 {
		k := keys[i]
		if _, skip := targetHas[k]; skip {
			continue
		}
		srcTTL, _, _ := mgTTL(t, src.Regular, k)
		ttl, flags, v := mgTTL(t, dst.Regular, k)
		if (srcTTL == -1) != (ttl == -1) || !within(ttl, srcTTL) || flags != items[k].flags || v != string(items[k].value) {
			t.Fatalf("mg %s t f v on the target: t%d f%d %q; on the source t%d f%d", k, ttl, flags, v, srcTTL, items[k].flags)
		}
	}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// -keys-from-l1 copies the source's hot set: the keys in its L1, not its
// chunk items, and not keys that live only in L2. The items are read through
// the source's batch port (rend, mg per key) with their flags and TTL.
func TestCopyFromL1(t *testing.T) {
	src := mctest.StartHost(t, bin, 64)
	dst := mctest.StartHost(t, bin, 64)
	now := time.Now()
	hot := []string{"hot:a", "hot:b", "hot:big"}
	items := map[string]item{
		"hot:a":   {value: []byte("a"), flags: 3, abs: now.Unix() + 500},
		"hot:b":   {value: []byte("b")},
		"hot:big": {value: bytes.Repeat([]byte("0123456789"), 500)}, // chunked in L1
		"cold:c":  {value: []byte("c")},
	}
	store(t, pool(t, src.Regular), hot, items)              // regular port: L2 and L1
	store(t, pool(t, src.Batch), []string{"cold:c"}, items) // batch port: L2 only
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-from", src.Batch, "-to", dst.Batch,
		"-keys-from-l1", src.L1.Addr, "-progress", "0"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "copied 3, already on target 0, missing on source 0, expired 0, failed 0, invalid key lines 0") {
		t.Fatalf("summary: %s", stdout.String())
	}
	got := fetch(t, pool(t, dst.Batch), append(hot, "cold:c"))
	for _, k := range hot {
		h, ok := got[k]
		if !ok || !bytes.Equal(h.Value, items[k].value) || h.Flags != items[k].flags ||
			(h.Exptime == 0) != (items[k].abs == 0) || abs(h.Exptime-items[k].abs) > 2 {
			t.Fatalf("%s: %v %+v, want %+v", k, ok, h, items[k])
		}
	}
	if _, ok := got["cold:c"]; ok {
		t.Fatal("a key only in the source's L2 was listed by metadump")
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-from", "127.0.0.1:1", "-to", "127.0.0.1:1", "-keys", "-"},
		{"-from", "127.0.0.1:1", "-to", "127.0.0.1:2"},
		{"-from", "127.0.0.1:1", "-to", "127.0.0.1:2", "-keys", "-", "-keys-from-l1", "unix:/x"},
		{"-from", "127.0.0.1:1", "-to", "127.0.0.1:2", "-keys", "-", "-mode", "replace"},
		{"-from", "127.0.0.1:1", "-to", "127.0.0.1:2", "-keys", "-", "-rate", "-5"},
		{"-bogus"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}

func TestRemaining(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		abs, want int64
		ok        bool
	}{
		{0, 0, true},
		{now.Unix() - 5, 0, false},
		{now.Unix(), 0, false},
		{now.Unix() + 1, 1, true},
		{now.Unix() + protocol.MaxRelativeExptime, protocol.MaxRelativeExptime, true},
		{now.Unix() + protocol.MaxRelativeExptime + 1, now.Unix() + protocol.MaxRelativeExptime + 1, true},
	} {
		got, ok := remaining(c.abs, now)
		if got != c.want || ok != c.ok {
			t.Errorf("remaining(%d): %d %v, want %d %v", c.abs, got, ok, c.want, c.ok)
		}
	}
}

// The pacer hands out slots n/rate seconds apart, so a copy of N keys at
// rate R takes at least N/R seconds; checked on the reserved timeline, not
// by timing the sleeps.
func TestPacerSpacing(t *testing.T) {
	p := &pacer{rate: 1000}
	start := time.Now()
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // do not sleep: only the reservation matters here
		p.wait(ctx, 100)
	}
	span := p.next.Sub(start)
	if span < 500*time.Millisecond || span > 600*time.Millisecond {
		t.Fatalf("5 batches of 100 at 1000 keys/s reserve %v, want about 500ms", span)
	}
	unpaced := &pacer{}
	unpaced.wait(context.Background(), 1000) // returns at once
	if !unpaced.next.IsZero() {
		t.Fatal("rate 0 reserved time")
	}
}
