package ketama

import (
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// refRing is a second ketama implementation written the other way round on
// purpose: a map from point to server name built with a streaming hasher and
// fmt, hand-assembled little-endian words, and a linear scan for lookups. If
// Ring and refRing agree on many random keys and server sets, a mistake would
// have to be made twice in two different shapes.
type refRing struct {
	owner map[uint32]string
}

func newRefRing(servers []string) *refRing {
	r := &refRing{owner: map[uint32]string{}}
	for _, s := range servers {
		for rep := 0; rep < 40; rep++ {
			h := md5.New()
			fmt.Fprintf(h, "%s-%d", s, rep)
			d := h.Sum(nil)
			for k := 0; k < 4; k++ {
				v := uint32(d[3+4*k])<<24 | uint32(d[2+4*k])<<16 | uint32(d[1+4*k])<<8 | uint32(d[4*k])
				r.owner[v] = s // a later server overwrites on a collision
			}
		}
	}
	return r
}

func (r *refRing) get(key string) string {
	d := md5.Sum([]byte(key))
	h := uint32(d[3])<<24 | uint32(d[2])<<16 | uint32(d[1])<<8 | uint32(d[0])
	var best, lowest uint32
	var haveBest, haveLowest bool
	for p := range r.owner {
		if p >= h && (!haveBest || p < best) {
			best, haveBest = p, true
		}
		if !haveLowest || p < lowest {
			lowest, haveLowest = p, true
		}
	}
	if haveBest {
		return r.owner[best]
	}
	return r.owner[lowest]
}

func locate(r *Ring, key string) string {
	return r.Servers()[r.Locate([]byte(key))]
}

func TestMatchesReferenceImplementation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 7, 16} {
		servers := make([]string, n)
		for i := range servers {
			servers[i] = fmt.Sprintf("10.%d.%d.%d:%d", rng.IntN(256), rng.IntN(256), rng.IntN(256), 11211+rng.IntN(3))
		}
		ring, ref := New(servers), newRefRing(servers)
		if ring.Len() != len(ref.owner) {
			t.Fatalf("n=%d: %d points, reference has %d", n, ring.Len(), len(ref.owner))
		}
		for i := 0; i < 3000; i++ {
			key := "k" + strconv.FormatUint(rng.Uint64(), 36)
			if got, want := locate(ring, key), ref.get(key); got != want {
				t.Fatalf("n=%d key %q: ring says %s, reference %s", n, key, got, want)
			}
		}
	}
}

// Published vectors from spymemcached's KetamaNodeLocatorTest
// (testLibKetamaCompatTwo, themselves checked against libketama): key ->
// server for eight servers on port 11211. A sample of the published table.
func TestSpymemcachedLibketamaVectors(t *testing.T) {
	servers := []string{"10.0.1.1:11211", "10.0.1.2:11211", "10.0.1.3:11211", "10.0.1.4:11211",
		"10.0.1.5:11211", "10.0.1.6:11211", "10.0.1.7:11211", "10.0.1.8:11211"}
	vectors := [][2]string{
		{"0", "10.0.1.1"}, {"233", "10.0.1.7"}, {"466", "10.0.1.3"}, {"699", "10.0.1.1"},
		{"932", "10.0.1.6"}, {"1165", "10.0.1.2"}, {"1398", "10.0.1.1"}, {"1631", "10.0.1.6"},
		{"1864", "10.0.1.5"}, {"2097", "10.0.1.3"}, {"2330", "10.0.1.7"}, {"2563", "10.0.1.3"},
		{"2796", "10.0.1.6"}, {"3029", "10.0.1.1"}, {"3262", "10.0.1.2"}, {"3495", "10.0.1.3"},
		{"3728", "10.0.1.8"}, {"3961", "10.0.1.4"}, {"4194", "10.0.1.4"}, {"4427", "10.0.1.3"},
		{"4660", "10.0.1.4"}, {"4893", "10.0.1.7"}, {"5126", "10.0.1.4"}, {"5359", "10.0.1.2"},
		{"17708", "10.0.1.6"}, {"17941", "10.0.1.2"}, {"28892", "10.0.1.7"}, {"29125", "10.0.1.4"},
		{"37280", "10.0.1.8"}, {"42173", "10.0.1.8"}, {"42406", "10.0.1.3"}, {"47998", "10.0.1.2"},
		{"52192", "10.0.1.8"}, {"56153", "10.0.1.2"}, {"56386", "10.0.1.6"}, {"56619", "10.0.1.8"},
		{"65939", "10.0.1.4"}, {"66172", "10.0.1.1"}, {"66405", "10.0.1.2"}, {"66638", "10.0.1.6"},
		{"82948", "10.0.1.5"}, {"83181", "10.0.1.1"}, {"83414", "10.0.1.1"}, {"83647", "10.0.1.2"},
		{"94132", "10.0.1.2"}, {"103685", "10.0.1.2"}, {"103918", "10.0.1.7"}, {"104151", "10.0.1.5"},
		{"108578", "10.0.1.5"}, {"112539", "10.0.1.8"}, {"112772", "10.0.1.1"}, {"113005", "10.0.1.5"},
		{"113238", "10.0.1.4"}, {"116034", "10.0.1.8"}, {"116267", "10.0.1.1"}, {"117665", "10.0.1.2"},
	}
	ring := New(servers)
	for _, v := range vectors {
		if got, want := locate(ring, v[0]), v[1]+":11211"; got != want {
			t.Errorf("key %q: got %s, want %s", v[0], got, want)
		}
	}
}

// Published vectors from spymemcached's KetamaNodeLocatorTest with nodes
// named 127.0.0.1:10000+i (testLookups, testContinuumWrapping,
// testClusterResizing, testLibKetamaCompat).
func TestSpymemcachedLocatorVectors(t *testing.T) {
	nodes := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = "127.0.0.1:" + strconv.Itoa(10000+i)
		}
		return s
	}
	four := New(nodes(4))
	for key, want := range map[string]int{"dustin": 0, "noelani": 2, "some other key": 0,
		"V5XS8C8N": 3, "8KR2DKR2": 3, "L9KH6X4X": 3} {
		if got := four.Locate([]byte(key)); got != want {
			t.Errorf("4 nodes, key %q: got node %d, want %d", key, got, want)
		}
	}
	if top, _ := four.Point(four.Len() - 1); top != 4294887009 {
		t.Errorf("4 nodes: highest point %d, want 4294887009", top)
	}
	five := New(nodes(5))
	for key, want := range map[string]int{"dustin": 0, "noelani": 2, "some other key": 4,
		"36": 2, "10037": 3, "22051": 1, "49044": 4} {
		if got := five.Locate([]byte(key)); got != want {
			t.Errorf("5 nodes, key %q: got node %d, want %d", key, got, want)
		}
	}
}

// Published vectors from Couchbase SDK RFC 26 (Ketama Hashing) and its
// verification data set (ketama-hashes.json): the full continuum of four
// servers is 640 points; a sample of them, from both ends and the middle.
func TestCouchbaseRFC26Vectors(t *testing.T) {
	servers := []string{"192.168.1.101:11210", "192.168.1.102:11210", "192.168.1.103:11210", "192.168.1.104:11210"}
	ring := New(servers)
	if ring.Len() != 640 {
		t.Fatalf("%d points, want 640", ring.Len())
	}
	first := []struct {
		hash uint32
		host string
	}{
		{19069626, "104"}, {28439255, "101"}, {36078660, "104"}, {46162273, "104"},
		{54096687, "104"}, {73548791, "102"}, {78634244, "102"}, {80168850, "104"},
		{89070946, "101"}, {106146674, "101"}, {107634595, "103"}, {109207346, "104"},
	}
	for i, v := range first {
		h, s := ring.Point(i)
		if h != v.hash || servers[s] != "192.168.1."+v.host+":11210" {
			t.Errorf("point %d: got %d %s, want %d 192.168.1.%s", i, h, servers[s], v.hash, v.host)
		}
	}
	last := []struct {
		hash uint32
		host string
	}{
		{4248973251, "104"}, {4261792465, "101"}, {4264824551, "101"}, {4275762582, "101"},
		{4280142414, "101"}, {4280309254, "102"}, {4281097143, "102"}, {4294628205, "102"},
	}
	for i, v := range last {
		h, s := ring.Point(ring.Len() - len(last) + i)
		if h != v.hash || servers[s] != "192.168.1."+v.host+":11210" {
			t.Errorf("point %d from the end: got %d %s, want %d 192.168.1.%s", len(last)-i, h, servers[s], v.hash, v.host)
		}
	}
	// Points from the middle of the set, looked up by hash.
	for _, v := range []struct {
		hash uint32
		host string
	}{{2744399580, "104"}, {2765199427, "103"}, {3003245810, "103"}, {3544483423, "101"}, {3810779832, "102"}} {
		if got := servers[ring.LocateHash(v.hash)]; got != "192.168.1."+v.host+":11210" {
			t.Errorf("hash %d: got %s, want 192.168.1.%s", v.hash, got, v.host)
		}
	}
	// RFC 26: past the highest point, a hash wraps to the lowest (owned by .104).
	if got := servers[ring.LocateHash(4294967295)]; got != "192.168.1.104:11210" {
		t.Errorf("wrap: got %s", got)
	}
	// RFC 26's collision case: these two names share point 1723476360 and
	// the server listed later keeps it.
	coll := New([]string{"example.com:11210", "example137723.com:11210"})
	if coll.Len() != 319 {
		t.Errorf("collision ring: %d points, want 319", coll.Len())
	}
	if got := coll.Servers()[coll.LocateHash(1723476360)]; got != "example137723.com:11210" {
		t.Errorf("collision point owned by %s", got)
	}
}

// Adding one server to n moves about 1/(n+1) of the keys, all of them to the
// new server; removing it moves them back.
func TestAddServerMovesOneNth(t *testing.T) {
	for _, n := range []int{2, 5, 10} {
		servers := make([]string, n+1)
		for i := range servers {
			servers[i] = "127.0.0.1:" + strconv.Itoa(20000+i)
		}
		before, after := New(servers[:n]), New(servers)
		const keys = 20000
		moved := 0
		for i := 0; i < keys; i++ {
			k := []byte("key:" + strconv.Itoa(i))
			b, a := before.Locate(k), after.Locate(k)
			if b != a {
				moved++
				if a != n {
					t.Fatalf("n=%d: key %s moved from %d to %d, not to the new server", n, k, b, a)
				}
			}
		}
		frac, ideal := float64(moved)/keys, 1/float64(n+1)
		t.Logf("%d -> %d servers: %.1f%% of keys moved (ideal %.1f%%)", n, n+1, 100*frac, 100*ideal)
		if frac < 0.6*ideal || frac > 1.4*ideal {
			t.Errorf("n=%d: moved %.3f, want about %.3f", n, frac, ideal)
		}
	}
}

func TestEmptyRing(t *testing.T) {
	if got := New(nil).Locate([]byte("x")); got != -1 {
		t.Fatalf("empty ring located %d", got)
	}
}

func BenchmarkLocate(b *testing.B) {
	ring := New([]string{"a:1", "b:1", "c:1", "d:1", "e:1", "f:1"})
	key := []byte("app:user:12345678")
	for b.Loop() {
		ring.Locate(key)
	}
}

// TwemproxyPoints against twemproxy's own expression compiled by gcc on
// x86-64 (nc_ketama.c's ketama_update with equal weights) for n = 1..300:
// these are the pool sizes where each server gets 156 points, not 160.
func TestTwemproxyPoints(t *testing.T) {
	short := map[int]bool{}
	for _, n := range []int{25, 47, 50, 55, 61, 71, 94, 100, 107, 109, 110, 115, 122, 142, 159, 163,
		188, 193, 200, 209, 214, 218, 219, 220, 230, 237, 243, 244, 279, 284} {
		short[n] = true
	}
	for n := 1; n <= 284; n++ {
		want := 160
		if short[n] {
			want = 156
		}
		if got := TwemproxyPoints(n); got != want {
			t.Errorf("TwemproxyPoints(%d) = %d, want %d", n, got, want)
		}
	}
	if TwemproxyPoints(0) != 0 {
		t.Error("TwemproxyPoints(0) != 0")
	}
}

// A twemproxy ring is the libketama ring wherever the point count is 160,
// and otherwise drops each server's last digest (its points "-39").
func TestNewTwemproxy(t *testing.T) {
	servers := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = "10.0.0." + strconv.Itoa(i+1) + ":11211"
		}
		return s
	}
	a, b := New(servers(3)), NewTwemproxy(servers(3))
	for i := 0; i < 2000; i++ {
		k := []byte("key" + strconv.Itoa(i))
		if a.Locate(k) != b.Locate(k) {
			t.Fatalf("3 servers: %s placed differently", k)
		}
	}
	tw := NewTwemproxy(servers(25))
	if tw.Len() != 25*156 {
		t.Fatalf("25 servers: %d points, want %d", tw.Len(), 25*156)
	}
	lk := New(servers(25))
	moved := 0
	for i := 0; i < 20000; i++ {
		k := []byte("key" + strconv.Itoa(i))
		if lk.Locate(k) != tw.Locate(k) {
			moved++
		}
	}
	// One digest in 40 dropped per server: a few percent of keys move.
	if moved == 0 || moved > 20000/10 {
		t.Fatalf("25 servers: %d of 20000 keys differ between libketama and twemproxy rings", moved)
	}
	t.Logf("25 servers: %d of 20000 keys placed differently by New and NewTwemproxy", moved)
}
