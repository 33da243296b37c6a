package textproto

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
)

// The differential test sends the same bytes to a real memcached 1.6.18 and
// through the codec (with the tiny test handler) and wants the same reply
// bytes. The cases are mostly malformed input, whose replies the codec
// alone decides, plus the valid requests around them that show the stream
// stays in step. Cases avoid what differs by design: CAS values, finite
// TTLs, h/l, me's internals, and general stats.

const (
	sentinel      = "mg __end__ Osentinel\r\n"
	sentinelReply = "EN Osentinel\r\n"
)

var (
	k250 = strings.Repeat("k", 250)
	k251 = strings.Repeat("k", 251)
	b2m  = strings.Repeat("x", 2_000_000)
)

type diffCase struct {
	name, in string
}

func diffCases() []diffCase {
	return []diffCase{
		// Lines memcached cannot make a command of.
		{"empty line", "\r\n"},
		{"bare LF", "\n"},
		{"spaces only", "   \r\n"},
		{"unknown", "x\r\n"},
		{"upper case", "GET a\r\n"},
		{"get prefix", "gettt a\r\n"},
		{"one char", "g\r\n"},
		{"m only", "m\r\n"},
		{"unknown meta", "mz a\r\n"},
		{"NUL ends line", "get a\x00 b\r\nset a 0 0 1\r\nx\r\nget a\x00a\r\n"},
		{"CR inside", "get a\rb\r\n"},
		{"two CRs", "get a\r\r\n"},

		// get family.
		{"get no key", "get\r\n"},
		{"get space", "get \r\n"},
		{"gets no key", "gets\r\n"},
		{"get 250", "get " + k250 + "\r\n"},
		{"get 251", "get " + k251 + "\r\n"},
		// (memcached also drops replies to earlier pipelined commands
		// still unsent when this happens; that depends on timing and is
		// not reproduced, so nothing precedes the get here.)
		{"get 251 among keys", "get a " + k251 + " a\r\n"},
		{"get many spaces", "set a 0 0 1\r\nx\r\n   get    a   a  \r\n"},
		{"get 30 keys", "set a 0 0 1\r\nx\r\nget a b c d e f g h i j k l m n o p q r s t u v w x y z a b c a\r\n"},
		{"get tab key", "set a\tb 0 0 1\r\ny\r\nget a\tb a\r\n"},
		{"bget", "set a 0 0 1\r\nx\r\nbget a\r\n"},
		{"gat no exptime", "gat\r\n"},
		{"gat no key", "gat 10\r\n"},
		{"gat bad exptime", "gat a\r\n"},
		{"gats bad exptime", "gats 1x a\r\n"},
		{"gat hit", "set a 7 0 2\r\nhi\r\ngat 100 a b\r\n"},
		{"gat negative", "set a 0 0 1\r\nx\r\ngat -1 a\r\nget a\r\n"},

		// Storage: token counts and numbers, in memcached's check order.
		{"set short", "set a 0 0\r\n"},
		{"set bare", "set\r\n"},
		{"set too many", "set a 0 0 1 noreply extra\r\nx\r\n"},
		{"cas short", "cas a 0 0 1\r\nx\r\n"},
		{"set neg flags", "set a -1 0 1\r\nx\r\n"},
		{"set hex flags", "set a 0x10 0 1\r\nx\r\n"},
		{"set flags junk", "set a 5a 0 1\r\nx\r\n"},
		{"set plus flags", "set a +5 0 1\r\nx\r\nget a\r\n"},
		{"set -0 flags", "set a -0 0 1\r\nx\r\nget a\r\n"},
		{"set flags wrap", "set a 4294967297 0 1\r\nx\r\nget a\r\n"},
		{"set flags max", "set a 4294967295 0 1\r\nx\r\nget a\r\n"},
		{"set flags overflow64", "set a 18446744073709551616 0 1\r\nx\r\n"},
		{"set bad exptime", "set a 0 abc 1\r\nx\r\n"},
		{"set neg exptime", "set a 0 -1 1\r\nx\r\nget a\r\n"},
		{"set exptime wraps", "set a 0 99999999999 1\r\nx\r\nget a\r\n"},
		{"set bad len", "set a 0 0 abc\r\nx\r\n"},
		{"set neg len", "set a 0 0 -1\r\nx\r\n"},
		{"set len max", "set a 0 0 2147483646\r\nmn\r\n"},
		{"set len wraps negative", "set a 0 0 2147483648\r\nmn\r\n"},
		{"set len wraps small", "set a 0 0 4294967297\r\nx\r\nget a\r\n"},
		{"set len leading zero", "set a 0 0 01\r\nx\r\nget a\r\n"},
		{"set len tab junk", "set a 0 0 1\tjunk\r\nx\r\nget a\r\n"},
		{"set CR CR", "set a 0 0 1\r\r\nx\r\nget a\r\n"},
		{"set key 251", "set " + k251 + " 0 0 1\r\nx\r\n"},
		{"set key 250", "set " + k250 + " 0 0 1\r\nx\r\nget " + k250 + "\r\n"},
		{"cas bad unique", "cas a 0 0 1 abc\r\nx\r\n"},
		{"cas neg unique", "cas a 0 0 1 -1\r\nx\r\n"},
		{"cas unique overflow", "cas a 0 0 1 18446744073709551616\r\nx\r\n"},
		{"cas miss", "cas a 0 0 1 18446744073709551615\r\nx\r\n"},
		{"noreply word ignored", "set a 0 0 1 foo\r\nx\r\n"},

		// noreply: quiet replies, quiet errors, loud ERRORs.
		{"set noreply", "set a 0 0 1 noreply\r\nx\r\nget a\r\n"},
		{"set noreply bad len", "set a 0 0 x noreply\r\nx\r\n"},
		{"set noreply as len", "set a 0 0 noreply\r\n"},
		{"set noreply key 251", "set " + k251 + " 0 0 1 noreply\r\nx\r\n"},
		{"set noreply neg len", "set a 0 0 -1 noreply\r\n"},
		{"cas noreply bad", "cas a 0 0 1 abc noreply\r\nx\r\n"},
		{"add noreply exists", "set a 0 0 1\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\nget a\r\n"},
		{"replace noreply miss", "replace a 0 0 1 noreply\r\ny\r\n"},

		// Data blocks of the wrong length: answered, then the rest is
		// read as commands, exactly as memcached reads it.
		{"chunk long", "set a 0 0 1\r\nxyzfoo\r\nget a\r\n"},
		{"chunk long noreply", "set a 0 0 1 noreply\r\nxyzfoo\r\nget a\r\n"},
		{"chunk LF only", "set a 0 0 1\nx\nget a\r\n"},
		{"chunk CR only", "set a 0 0 1\r\nx\rget a\r\n"},
		{"chunk LF CR", "set a 0 0 1\r\nx\n\rget a\r\n"},
		{"chunk short", "set a 0 0 3\r\nab\r\n\r\n"},
		{"chunk keeps old", "set a 0 0 1\r\nx\r\nset a 0 0 1\r\nyy\r\nget a\r\n"},

		// Too large: swallowed, and a set drops the old item.
		{"too large", "set a 0 0 2000000\r\n" + b2m + "\r\nget a\r\n"},
		{"too large drops old", "set a 0 0 1\r\nx\r\nset a 0 0 2000000\r\n" + b2m + "\r\nget a\r\n"},
		{"too large noreply", "set a 0 0 1\r\nx\r\nset a 0 0 2000000 noreply\r\n" + b2m + "\r\nget a\r\n"},
		{"too large add keeps", "set a 0 0 1\r\nx\r\nadd a 0 0 2000000\r\n" + b2m + "\r\nget a\r\n"},
		{"too large append keeps", "set a 0 0 1\r\nx\r\nappend a 0 0 2000000\r\n" + b2m + "\r\nget a\r\n"},
		{"too large cas keeps", "set a 0 0 1\r\nx\r\ncas a 0 0 2000000 1\r\n" + b2m + "\r\nget a\r\n"},

		// incr/decr.
		{"incr short", "incr a\r\n"},
		{"incr long", "incr a 1 2 3\r\n"},
		{"incr miss", "incr a 1\r\n"},
		{"incr bad delta", "incr a x\r\n"},
		{"incr neg delta", "incr a -1\r\n"},
		{"incr delta overflow", "incr a 18446744073709551616\r\n"},
		{"incr key 251", "incr " + k251 + " 1\r\n"},
		{"incr bad noreply", "incr a x noreply\r\n"},
		{"incr non-numeric", "set a 0 0 1\r\nx\r\nincr a 1\r\n"},
		{"incr non-numeric noreply", "set a 0 0 1\r\nx\r\nincr a 1 noreply\r\n"},
		{"incr", "set a 0 0 2\r\n10\r\nincr a 5\r\ndecr a 100\r\nincr a 1 noreply\r\nget a\r\n"},
		{"decr 4th token", "decr a 1 2\r\n"},

		// touch.
		{"touch short", "touch a\r\n"},
		{"touch bad", "touch a x\r\n"},
		{"touch bad noreply", "touch a x noreply\r\n"},
		{"touch miss", "touch a 10\r\n"},
		{"touch hit", "set a 0 0 1\r\nx\r\ntouch a 0\r\ntouch a 10 noreply\r\n"},
		{"touch key 251", "touch " + k251 + " 10\r\n"},

		// delete and its legacy hold time.
		{"delete bare", "delete\r\n"},
		{"delete miss", "delete a\r\n"},
		{"delete 0", "delete a 0\r\n"},
		{"delete 1", "delete a 1\r\n"},
		{"delete 00", "delete a 00\r\n"},
		{"delete foo", "delete a foo\r\n"},
		{"delete 0 foo", "delete a 0 foo\r\n"},
		{"delete noreply", "set a 0 0 1\r\nx\r\ndelete a noreply\r\nget a\r\n"},
		{"delete 0 noreply", "delete a 0 noreply\r\n"},
		{"delete 1 noreply", "delete a 1 noreply\r\n"},
		{"delete too many", "delete a 0 0 0\r\n"},
		{"delete key 251", "delete " + k251 + "\r\n"},
		{"delete key 251 noreply", "delete " + k251 + " noreply\r\n"},
		{"delete hit", "set a 0 0 1\r\nx\r\ndelete a\r\n"},

		// flush_all, verbosity, version, stats, quit.
		{"flush_all", "flush_all\r\nflush_all 0\r\nflush_all -1\r\nflush_all 1 2\r\n"},
		{"flush_all noreply", "flush_all noreply\r\nflush_all 0 noreply\r\n"},
		{"flush_all bad", "flush_all x\r\n"},
		{"flush_all bad noreply", "flush_all x noreply\r\nflush_all foo noreply\r\n"},
		{"flush_all noreply first", "flush_all noreply x\r\n"},
		{"flush_all too many", "flush_all 1 2 3\r\n"},
		{"verbosity", "verbosity 1\r\nverbosity 1 2\r\nverbosity 0 noreply\r\n"},
		{"verbosity bad", "verbosity\r\nverbosity x\r\nverbosity 1 2 3\r\n"},
		{"verbosity bad noreply", "verbosity x noreply\r\nverbosity noreply\r\n"},
		{"version args", "version\r\nversion x y\r\n"},
		{"stats unknown", "stats foo\r\nstats a b c\r\nstats noreply\r\n"},
		{"stats reset", "stats reset\r\n"},
		{"quit", "get a\r\nquit\r\nget a\r\n"},
		{"quit args", "quit now\r\nget a\r\n"},
		{"noreply then quit", "set a 0 0 1 noreply\r\nx\r\nquit\r\n"},

		// Lines too long: non-get lines past memcached's 16 KiB read
		// buffer close the connection; get lines may be longer.
		{"long get", "set a 0 0 1\r\nx\r\nget " + strings.Repeat("k ", 3000) + "a\r\n"},
		{"long gets", "gets " + strings.Repeat("kk ", 8000) + "\r\n"},
		{"garbage no newline", strings.Repeat("z", 20000)},
		{"long gat", "gat 0 " + strings.Repeat("k ", 30000) + "\r\n"},

		// mg.
		{"mg bare", "mg\r\n"},
		{"mg miss", "mg a\r\nmg a v\r\nmg a v k O1 f s c t\r\n"},
		{"mg hit", "set a 5 0 3\r\nabc\r\nmg a\r\nmg a v\r\nmg a s v f k Oxy t\r\nmg a k s\r\n"},
		{"mg flag suffix", "set a 5 0 3\r\nabc\r\nmg a v1 f2 s3\r\n"},
		{"mg q", "set a 0 0 1\r\nx\r\nmg a q\r\nmg a v q\r\nmg zz v q k\r\nmn\r\n"},
		{"mg dup", "mg a v v\r\n"},
		{"mg dup other", "mg a v k v\r\n"},
		{"mg invalid", "mg a z\r\n"},
		{"mg E invalid in 1.6.18", "mg a E5\r\n"},
		{"mg high byte", "mg a \xffx\r\n"},
		{"mg tab flag", "mg a \tv\r\n"},
		{"mg opaque 32", "mg a O" + strings.Repeat("o", 31) + "\r\n"},
		{"mg opaque 33", "mg a O" + strings.Repeat("o", 32) + "\r\n"},
		{"mg opaque empty", "mg a O\r\n"},
		{"mg T bad", "mg a T\r\nmg a Tx\r\nmg a T1x\r\n"},
		{"mg N bad", "mg a N\r\n"},
		{"mg R bad", "mg a R\r\n"},
		{"mg bad then invalid", "mg a Tx z\r\n"},
		{"mg invalid then bad", "mg a z Tx\r\n"},
		{"mg two bad values", "mg a Tx Rx\r\n"},
		{"mg T hit", "set a 0 0 1\r\nx\r\nmg a T0 v\r\n"},
		{"mg vivify", "mg a N30 s v\r\n"},
		{"mg key 251", "mg " + k251 + " v\r\n"},
		{"mg flags 17", "mg a v k s f t c q u O1 P L T0 h l M1 I\r\n"},
		{"mg flags 18", "mg a 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\r\n"},
		{"mg flags 20", "mg a 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\r\n"},
		{"mg b", "mg YQ== b v k\r\nmg YWJj b k v\r\n"},
		{"mg b bad", "mg a b\r\nmg YQ= b\r\nmg zz b\r\nmg ==== b\r\n"},
		{"mg b lenient", "ms YWI= 1 b\r\nx\r\nmg YW!I= b v k\r\nmg YWI=YQ== b v\r\nmg ab v\r\n"},
		{"mg s f", "ms a 3\r\nabc\r\nmg a s\r\nmg a s f\r\n"},
		{"mg binary key", "ms AAEC 1 b\r\nx\r\nmg AAEC b k v\r\nmd AAEC b k q\r\nmg AAEC b k v\r\n"},
		{"mg tab key", "ms a\tb 1\r\nx\r\nmg a\tb v k\r\n"},
		{"mg F bad", "mg a Fx\r\n"},
		{"mg C J D bad", "mg a Cx\r\nmg a Jx\r\nmg a Dx\r\nmg a MSS\r\n"},

		// ms.
		{"ms bare", "ms\r\n"},
		{"ms no len", "ms a\r\n"},
		{"ms bad len", "ms a x\r\nabc\r\n"},
		{"ms neg len", "ms a -1\r\nabc\r\n"},
		{"ms key 251", "ms " + k251 + " 3\r\nabc\r\n"},
		{"ms", "ms a 3\r\nabc\r\nmg a v\r\n"},
		{"ms flags", "ms a 3 F7 T0 k O9\r\nabc\r\nmg a v f\r\n"},
		{"ms q", "ms a 3 q\r\nabc\r\nms a 3 q k\r\nabc\r\nmn\r\n"},
		{"ms modes", "ms a 3 MR\r\nabc\r\nms zzz 3 MR k\r\nabc\r\nms a 3 ME\r\nabc\r\nms a 3 MA\r\nxyz\r\nms a 3 MP\r\n123\r\nms a 3 MS\r\nnew\r\nmg a v\r\nms b 1 MA\r\nx\r\nms b 1 MP\r\nx\r\nms b 1 ME\r\nx\r\n"},
		{"ms bad mode", "ms a 3 MX\r\nabc\r\nms a 3 MX q\r\nabc\r\nms a 3 Ms\r\nabc\r\n"},
		{"ms M length", "ms a 3 MSS\r\nabc\r\nms a 3 M\r\nabc\r\n"},
		{"ms invalid", "ms a 3 z\r\nabc\r\nms a 3 S3\r\nabc\r\nms a 3 E1\r\nabc\r\n"},
		{"ms dup", "ms a 3 v v\r\nabc\r\n"},
		{"ms bad values", "ms a 3 Fx\r\nabc\r\nms a 3 F-1\r\nabc\r\nms a 3 Cx\r\nabc\r\nms a 3 Tx\r\nabc\r\n"},
		{"ms bad value order", "ms a 3 Tx Fx\r\nabc\r\nms a 3 Fx Tx\r\nabc\r\n"},
		{"ms opaque long", "ms a 3 O" + strings.Repeat("o", 40) + "\r\nabc\r\n"},
		{"ms opaque long bad mode", "ms a 3 O" + strings.Repeat("o", 40) + " MX\r\nabc\r\n"},
		{"ms b bad", "ms a 3 b\r\nabc\r\n"},
		{"ms b", "ms YQ== 3 b k O9 F7\r\nabc\r\nmg a v f\r\nmg YQ== b k v\r\n"},
		{"ms chunk", "ms a 3\r\nabcd\r\nms a 3 q\r\nabcd\r\n"},
		{"ms C miss", "ms a 3 C1\r\nabc\r\nms a 3 C1 q\r\nabc\r\n"},
		{"ms C exists", "ms a 3\r\nabc\r\nms a 3 C999999\r\nxyz\r\nmg a v\r\n"},
		{"ms T neg", "ms a 3 T-1\r\nabc\r\nmg a v\r\n"},
		{"ms invalid too large", "ms a 2000000 z\r\n" + b2m + "\r\n"},
		{"ms too large", "ms a 1\r\nx\r\nms a 2000000 MA q\r\n" + b2m + "\r\nmg a v\r\n"},
		{"ms flags 16", "ms a 1 k O1 q F1 T0 P L u h l s t f v I MS\r\nx\r\nmn\r\n"},
		{"ms flags 17", "ms a 1 k O1 q F1 T0 P L u h l s t f v I MS b\r\nx\r\n"},

		// md.
		{"md bare", "md\r\n"},
		{"md miss", "md a\r\nmd a q\r\nmd a k O5\r\n"},
		{"md hit", "ms a 1\r\nx\r\nmd a q\r\nmg a v\r\nms a 1\r\nx\r\nmd a k O5\r\n"},
		{"md C miss", "ms a 1\r\nx\r\nmd a C999999 q O5 k\r\nmn\r\n"},
		{"md invalid", "md a x\r\nmd a z\r\nmd a Tx\r\nmd a Cx\r\nmd a v v\r\nmd a b\r\nmd a E1\r\n"},
		{"md opaque long", "md a O" + strings.Repeat("o", 40) + "\r\n"},
		{"md key 251", "md " + k251 + "\r\n"},
		{"md flags", "md a 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\r\n"},
		{"md b", "ms YQ== 1 b\r\nx\r\nmd YQ== b k\r\nmg a v\r\n"},

		// ma.
		{"ma bare", "ma\r\n"},
		{"ma miss", "ma a\r\nma a q\r\nma a k O1\r\n"},
		{"ma vivify", "ma a N0 J5 v k O1\r\nma a v\r\nma a MD D2 v\r\nma a M- D100 v\r\nma a M+ v q\r\nma a q\r\nma a MI v\r\n"},
		{"ma invalid", "ma a Dx\r\nma a Jx\r\nma a D-1\r\nma a Mxx\r\nma a z\r\nma a v v\r\n"},
		{"ma mode", "ma a MX\r\nma a Ma\r\n"},
		{"ma opaque long", "ma a O" + strings.Repeat("o", 40) + "\r\n"},
		{"ma non-numeric", "ms s 3\r\nabc\r\nma s\r\nma s q\r\n"},
		{"ma C", "ma a C1\r\nma a N0 C1\r\n"},
		{"ma b", "ma YQ== b N0 J9 k v\r\n"},
		{"ma key 251", "ma " + k251 + "\r\n"},
		{"ma t", "ms x 1 T0\r\n1\r\nma x t v\r\nmg x t s v\r\n"},

		// mn and me.
		{"mn", "mn\r\nmn x y\r\n"},
		{"me bare", "me\r\n"},
		{"me miss", "me a\r\nme a x\r\n"},
		{"me b bad", "me a b\r\n"},
		{"me key 251", "me " + k251 + "\r\n"},
	}
}

func TestDifferentialMemcached(t *testing.T) {
	if testing.Short() {
		t.Skip("starts memcached")
	}
	if _, err := os.Stat(mctest.Binary()); err != nil {
		t.Skip("no memcached binary")
	}
	mc := mctest.Start(t)
	sock := strings.TrimPrefix(mc.Addr, "unix:")
	for _, tc := range diffCases() {
		in := tc.in + sentinel
		want, wantClosed := memcachedReply(t, sock, in)
		got, gotClosed := run(in)
		if got != want || gotClosed != wantClosed {
			t.Errorf("%s: input %q\n memcached: %q closed=%v\n codec:     %q closed=%v",
				tc.name, clip(tc.in), clip(want), wantClosed, clip(got), gotClosed)
		}
	}
}

// memcachedReply flushes memcached, sends in on a new connection and reads
// until the sentinel's reply or the server closes.
func memcachedReply(t *testing.T, sock, in string) (string, bool) {
	t.Helper()
	exchange := func(in string, until string) (string, bool) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			// Written concurrently: memcached may answer (or close) before
			// a large input is fully sent.
			c.Write([]byte(in))
		}()
		var out bytes.Buffer
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			out.Write(buf[:n])
			if bytes.HasSuffix(out.Bytes(), []byte(until)) {
				return out.String(), false
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("timeout waiting for memcached; got %q", clip(out.String()))
				}
				if !errors.Is(err, io.EOF) && !isReset(err) {
					t.Fatalf("read: %v", err)
				}
				return out.String(), true
			}
		}
	}
	if out, _ := exchange("flush_all\r\n", "OK\r\n"); out != "OK\r\n" {
		t.Fatalf("flush_all: %q", out)
	}
	return exchange(in, sentinelReply)
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:150] + "..." + s[len(s)-150:]
	}
	return s
}
