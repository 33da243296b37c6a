// Package ketama maps keys to servers with the ketama consistent hash of
// libketama, as spymemcached (KetamaNodeLocator with KETAMA_HASH), EVCache
// and Couchbase's memcached buckets use it, so that a moneta client, a Java
// EVCache client and mcrouter configured alike agree on where a key lives.
//
// The continuum (ring) of n servers holds 160 points per server:
//
//	for each server s, for i in 0..39:
//	    d = md5(name(s) + "-" + decimal(i))          16 bytes
//	    points: le32(d[0:4]), le32(d[4:8]), le32(d[8:12]), le32(d[12:16])
//
// where le32 reads four bytes little-endian and name(s) is the server's
// address exactly as configured ("10.0.1.1:11211"). This is libketama's
// naming, Couchbase SDK RFC 26's, and spymemcached's (its node key is the
// socket address without the leading "/", so "hostname/ip:port" when the
// address was resolved from a name). libmemcached builds this continuum in
// its weighted ketama mode with equal weights, naming a server "host-i"
// when it is on the default port 11211 and "host:port-i" otherwise, or
// "/host:port-i" in its KETAMA_SPY distribution; its plain ketama mode (100
// points, one per digest) is a different continuum. Callers that must agree
// with such a client hash the names it uses.
//
// A key maps to the first point at or after le32(md5(key)[0:4]), wrapping to
// the lowest point past the top of the 32-bit space. If two servers hash to
// the same point, the server listed later owns it (spymemcached's TreeMap
// put overwrites; RFC 26 specifies the same).
//
// Adding or removing one of n servers moves only the keys in the arcs its
// points own, about 1/n of the keyspace.
//
// # twemproxy
//
// twemproxy (nutcracker) with "distribution: ketama" and "hash: md5" builds
// the same continuum with one difference: it derives a server's point count
// from its share of the pool's total weight in float32 arithmetic,
// floor(weight/total * 40 * n) * 4, and for some pool sizes n (25, 47, 50,
// 55, ... with equal weights) the float32 share rounds down and every server
// gets 156 points instead of 160. NewTwemproxy reproduces that count, so a
// Go client and a nutcracker pool agree on every pool size. twemproxy names
// a server by the name given after its address in the configuration
// ("10.0.1.1:11211:1 10.0.1.1:11211"), else by the bare host on port 11211,
// else by "host:port". With auto_eject_hosts it rebuilds the continuum
// without ejected servers; a Ring is fixed, so the two disagree while a
// server is ejected. Points that collide are ordered by qsort there, which
// is not stable: the owner of a collided point may differ (about one point
// in 10^7 at 25 servers).
package ketama

import (
	"crypto/md5"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
)

// PointsPerServer is the number of continuum points each server gets: 40
// MD5 digests, 4 points from each.
const PointsPerServer = 160

const digestsPerServer = PointsPerServer / 4

// Ring is an immutable continuum. It is safe for concurrent use.
type Ring struct {
	// points is sorted ascending and free of duplicates; owner[i] is the
	// index (in servers) of the server that owns points[i].
	points  []uint32
	owner   []int32
	servers []string
}

// New builds the continuum for servers, in the order given (the order only
// matters for point collisions). The Ring keeps its own copy of the slice.
func New(servers []string) *Ring {
	return build(servers, digestsPerServer)
}

// NewTwemproxy builds the continuum twemproxy builds for servers of equal
// weight (see the package doc): 160 points per server, or 156 for the pool
// sizes where twemproxy's float32 arithmetic rounds the share down.
func NewTwemproxy(servers []string) *Ring {
	return build(servers, TwemproxyPoints(len(servers))/4)
}

// TwemproxyPoints is the number of continuum points twemproxy's ketama gives
// each of n live servers of equal weight. It follows twemproxy's expression
// step by step in float32: the share 1/n, times 160, divided by 4, times n,
// floored, times 4. The explicit float32 conversions keep the compiler from
// fusing the products, which would skip the roundings that decide the result.
func TwemproxyPoints(n int) int {
	if n <= 0 {
		return 0
	}
	share := float32(1) / float32(n)
	v := float32(share * PointsPerServer)
	v = float32(v / 4)
	v = float32(v * float32(n))
	// twemproxy adds 1e-10 in double precision and floors as float; the
	// addition is far below float32's resolution near 40, so it never
	// changes the result.
	return int(math.Floor(float64(v))) * 4
}

func build(servers []string, digests int) *Ring {
	r := &Ring{servers: slices.Clone(servers)}
	type pt struct {
		hash  uint32
		owner int32
	}
	all := make([]pt, 0, len(servers)*digests*4)
	buf := make([]byte, 0, 64)
	for si, s := range servers {
		for i := 0; i < digests; i++ {
			buf = append(buf[:0], s...)
			buf = append(buf, '-')
			buf = strconv.AppendInt(buf, int64(i), 10)
			d := md5.Sum(buf)
			for j := 0; j < 4; j++ {
				all = append(all, pt{binary.LittleEndian.Uint32(d[4*j:]), int32(si)})
			}
		}
	}
	// A stable sort keeps points of equal hash in server order, so keeping
	// the last of each run gives a collision to the later server.
	slices.SortStableFunc(all, func(a, b pt) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	r.points = make([]uint32, 0, len(all))
	r.owner = make([]int32, 0, len(all))
	for i, p := range all {
		if i+1 < len(all) && all[i+1].hash == p.hash {
			continue
		}
		r.points = append(r.points, p.hash)
		r.owner = append(r.owner, p.owner)
	}
	return r
}

// Hash is the ketama hash of a key: the first four bytes of its MD5 digest,
// little-endian.
func Hash(key []byte) uint32 {
	d := md5.Sum(key)
	return binary.LittleEndian.Uint32(d[:4])
}

// Locate returns the index (in the slice given to New) of the server that
// owns key, or -1 if the ring has no servers.
func (r *Ring) Locate(key []byte) int {
	return r.LocateHash(Hash(key))
}

// LocateHash returns the server owning hash h, or -1 for an empty ring.
func (r *Ring) LocateHash(h uint32) int {
	if len(r.points) == 0 {
		return -1
	}
	i, _ := slices.BinarySearch(r.points, h)
	if i == len(r.points) {
		i = 0 // past the highest point: wrap to the lowest
	}
	return int(r.owner[i])
}

// Servers returns the servers the ring was built from. The caller must not
// modify the slice.
func (r *Ring) Servers() []string { return r.servers }

// Len is the number of distinct points on the continuum (160 per server, or
// TwemproxyPoints for NewTwemproxy, less collisions).
func (r *Ring) Len() int { return len(r.points) }

// Point returns the i-th point in ascending order and its owner's index.
func (r *Ring) Point(i int) (hash uint32, server int) {
	return r.points[i], int(r.owner[i])
}
