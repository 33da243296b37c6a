package client

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moneta-cache/moneta/client/ketama"
	"github.com/moneta-cache/moneta/shared/addr"
)

// Zone is one replica group: a full copy of the keyspace spread over its
// servers by ketama.
type Zone struct {
	// Name identifies the zone (an availability zone, a rack, a region).
	Name string `toml:"name"`
	// Servers are the regular (11211) addresses, "host:port" or
	// "unix:/path". The strings name the servers on the ketama ring: every
	// client of a cluster must list a zone's servers with the same spelling
	// to agree on where keys live (the order does not matter).
	Servers []string `toml:"servers"`
	// BatchServers are the batch-port (rend's 11212) addresses of the same
	// servers, in the same order. Optional: when empty and Config.BatchPort
	// is set, they are derived from Servers by swapping the port.
	BatchServers []string `toml:"batch_servers"`
	// RingNames, when set, are the names hashed onto the ketama ring in
	// place of Servers (same order): what another client of the same
	// servers calls them, so both place keys alike. EVCache's Java client,
	// for one, names a node "hostname/ip:port".
	RingNames []string `toml:"ring_names"`
	// Continuum is the ring's flavour: "ketama" (the default: libketama,
	// spymemcached, EVCache; 160 points per server) or "twemproxy", the ring
	// a nutcracker pool with "distribution: ketama" and "hash: md5" builds,
	// which has 156 points per server for some pool sizes (see package
	// ketama). Set it on a zone that is also reached through nutcracker.
	Continuum string `toml:"continuum"`
}

// newRing builds the zone's ketama ring from its ring names (or servers).
func (z *Zone) newRing() *ketama.Ring {
	names := z.Servers
	if len(z.RingNames) > 0 {
		names = z.RingNames
	}
	if z.Continuum == "twemproxy" {
		return ketama.NewTwemproxy(names)
	}
	return ketama.New(names)
}

// Policy says how many zone acknowledgements a write waits for before it
// returns (EVCache's latch policies). The write is sent to every target zone
// regardless; the zones not waited for finish in the background.
type Policy uint8

const (
	// PolicyOne waits for the first zone to answer. The default.
	PolicyOne Policy = iota
	// PolicyNone returns as soon as the writes are sent; outcomes (NOT_STORED,
	// errors) are not reported.
	PolicyNone
	// PolicyQuorum waits for a majority of the target zones: n/2+1.
	PolicyQuorum
	// PolicyAllMinusOne waits for all target zones but one (at least one).
	PolicyAllMinusOne
	// PolicyAll waits for every target zone.
	PolicyAll
)

var policyNames = [...]string{"one", "none", "quorum", "all_minus_one", "all"}

func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return "policy(" + strconv.Itoa(int(p)) + ")"
}

// ParsePolicy parses "none", "one", "quorum", "all_minus_one" (or
// "all-minus-one") and "all".
func ParsePolicy(s string) (Policy, error) {
	s = strings.ReplaceAll(strings.ToLower(s), "-", "_")
	for i, n := range policyNames {
		if n == s {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown write policy %q (want none, one, quorum, all_minus_one or all)", s)
}

// UnmarshalText lets a TOML file say policy = "quorum".
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText is the inverse of UnmarshalText.
func (p Policy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// required is how many of n target zones must acknowledge.
func (p Policy) required(n int) int {
	switch p {
	case PolicyNone:
		return 0
	case PolicyOne:
		return min(1, n)
	case PolicyQuorum:
		return n/2 + 1
	case PolicyAllMinusOne:
		return max(n-1, min(1, n))
	default:
		return n
	}
}

// Fallback says when a read moves on to the next zone.
type Fallback uint8

const (
	// FallbackOnMissOrError tries the next zone after a miss or a failure
	// (timeout, connection error, node marked down). The default.
	FallbackOnMissOrError Fallback = iota
	// FallbackOnError tries the next zone only after a failure: a miss in
	// the first zone is final.
	FallbackOnError
	// FallbackNever reads one zone only.
	FallbackNever
)

var fallbackNames = [...]string{"miss_or_error", "error", "never"}

func (f Fallback) String() string {
	if int(f) < len(fallbackNames) {
		return fallbackNames[f]
	}
	return "fallback(" + strconv.Itoa(int(f)) + ")"
}

// UnmarshalText parses "miss_or_error", "error" or "never".
func (f *Fallback) UnmarshalText(b []byte) error {
	s := strings.ReplaceAll(strings.ToLower(string(b)), "-", "_")
	for i, n := range fallbackNames {
		if n == s {
			*f = Fallback(i)
			return nil
		}
	}
	return fmt.Errorf("unknown read fallback %q (want miss_or_error, error or never)", b)
}

// MarshalText is the inverse of UnmarshalText.
func (f Fallback) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// BatchWrites says which writes go to the servers' batch port.
type BatchWrites uint8

const (
	// BatchOff sends every write to the regular port. The default.
	BatchOff BatchWrites = iota
	// BatchBulk sends SetMulti to the batch port and single writes to the
	// regular port: a service that both serves and bulk loads.
	BatchBulk
	// BatchAll sends every write to the batch port: a loader or replication
	// process, which should not evict the hot set of L1.
	BatchAll
)

var batchNames = [...]string{"off", "bulk", "all"}

func (b BatchWrites) String() string {
	if int(b) < len(batchNames) {
		return batchNames[b]
	}
	return "batch(" + strconv.Itoa(int(b)) + ")"
}

// UnmarshalText parses "off", "bulk" or "all".
func (b *BatchWrites) UnmarshalText(t []byte) error {
	for i, n := range batchNames {
		if n == strings.ToLower(string(t)) {
			*b = BatchWrites(i)
			return nil
		}
	}
	return fmt.Errorf("unknown batch_writes %q (want off, bulk or all)", t)
}

// MarshalText is the inverse of UnmarshalText.
func (b BatchWrites) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// Defaults. The timeouts are EVCache's: a cache read that is not back in
// 20 ms is better treated as a miss (or asked of another zone) than waited
// for; a write may take its time.
const (
	DefaultReadTimeout      = 20 * time.Millisecond
	DefaultWriteTimeout     = 2500 * time.Millisecond
	DefaultZoneEnv          = "MONETA_ZONE"
	DefaultFailureThreshold = 3
	DefaultFailureWindow    = 100 * time.Millisecond
	DefaultProbeMin         = 100 * time.Millisecond
	DefaultProbeMax         = 5 * time.Second
	DefaultConnsPerServer   = 2
	DefaultDialTimeout      = time.Second
	// MaxKeyLen is memcached's key length limit.
	MaxKeyLen = 250
)

// Config configures a Client. Build it in main (from TOML with the toml
// tags, then flags), call New; New fills defaults and validates.
type Config struct {
	// Zones are the replica groups. At least one, each with a server.
	Zones []Zone `toml:"zones"`
	// LocalZone names the zone reads go to first. When empty, the zone is
	// read from the environment variable ZoneEnv; when that is empty too,
	// every read starts at a zone picked at random.
	LocalZone string `toml:"local_zone"`
	// ZoneEnv is the environment variable that names the local zone
	// (default MONETA_ZONE).
	ZoneEnv string `toml:"zone_env"`

	// ReplicaWrites is the number of zones a write goes to: the local zone
	// first, then the next ones in configuration order. 0 means all zones.
	ReplicaWrites int `toml:"replica_writes"`
	// Policy is how many of those zones a write waits for (default one).
	Policy Policy `toml:"policy"`
	// ReadFallback says when a read tries the next zone (default on a miss
	// or an error). FallbackZones caps how many other zones are tried;
	// 0 means all of them.
	ReadFallback  Fallback `toml:"read_fallback"`
	FallbackZones int      `toml:"fallback_zones"`
	// FillOnFallback copies an item found in a later zone into the zones
	// that answered "not there" (with add and the item's remaining TTL), so
	// that a restarted, empty server warms up from its peers. Off by
	// default: it adds writes exactly when a zone is recovering.
	FillOnFallback bool `toml:"fill_on_fallback"`

	// ReadTimeout bounds one read attempt in one zone (default 20 ms); a
	// read that falls back through k zones can take up to k times as long.
	// BulkReadTimeout is the same for GetMulti (default ReadTimeout).
	ReadTimeout     time.Duration `toml:"read_timeout"`
	BulkReadTimeout time.Duration `toml:"bulk_read_timeout"`
	// WriteTimeout bounds a write to one zone, including the writes that
	// go on in the background after the call returned (default 2.5 s).
	WriteTimeout time.Duration `toml:"write_timeout"`

	// FailureThreshold is how many consecutive failures (timeouts,
	// connection errors) mark a server down (default 3), provided the run
	// of failures has lasted FailureWindow (default 100 ms): a stall that
	// times out every request in flight at one instant (a GC pause, an
	// overloaded client host) does not, a server that stays unreachable
	// does. A down server is skipped, as if it had failed at once, and
	// probed in the background with a back-off from ProbeMin doubling to
	// ProbeMax until it answers. When every server a request could use is
	// down, the preferred one is tried anyway rather than failing blind.
	FailureThreshold int           `toml:"failure_threshold"`
	FailureWindow    time.Duration `toml:"failure_window"`
	ProbeMin         time.Duration `toml:"probe_min"`
	ProbeMax         time.Duration `toml:"probe_max"`

	// Prefix is prepended to every key as "Prefix:key" so that
	// applications sharing a cluster do not collide. Empty: no prefix.
	Prefix string `toml:"prefix"`
	// HashLongKeys replaces a key longer than 250 bytes (with its prefix)
	// by "Prefix:" + base64url(SHA-256(key)). Off: such keys are rejected
	// with ErrMalformedKey.
	HashLongKeys bool `toml:"hash_long_keys"`

	// BatchWrites picks which writes go to the batch port; BatchPort derives
	// a zone's batch addresses from its TCP servers when the zone does not
	// list BatchServers (rend's batch port is 11212).
	BatchWrites BatchWrites `toml:"batch_writes"`
	BatchPort   int         `toml:"batch_port"`

	// ConnsPerServer is the number of pipelined connections per server
	// (default 2); MaxValueSize bounds values read (0: the pool's default).
	ConnsPerServer int           `toml:"conns_per_server"`
	DialTimeout    time.Duration `toml:"dial_timeout"`
	MaxValueSize   int           `toml:"max_value_size"`

	// Logger receives state changes (server down, back up). Default:
	// slog.Default().
	Logger *slog.Logger `toml:"-"`

	// getenv reads the environment; tests replace it.
	getenv func(string) string
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.ZoneEnv == "" {
		c.ZoneEnv = DefaultZoneEnv
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.BulkReadTimeout <= 0 {
		c.BulkReadTimeout = c.ReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.FailureWindow <= 0 {
		c.FailureWindow = DefaultFailureWindow
	}
	if c.ProbeMin <= 0 {
		c.ProbeMin = DefaultProbeMin
	}
	if c.ProbeMax <= 0 {
		c.ProbeMax = DefaultProbeMax
	}
	if c.ProbeMax < c.ProbeMin {
		c.ProbeMax = c.ProbeMin
	}
	if c.ConnsPerServer <= 0 {
		c.ConnsPerServer = DefaultConnsPerServer
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.getenv == nil {
		c.getenv = os.Getenv
	}
}

// Validate reports the first problem with a defaulted Config.
func (c *Config) Validate() error {
	if len(c.Zones) == 0 {
		return errors.New("client: no zones configured")
	}
	names := map[string]bool{}
	for i, z := range c.Zones {
		if z.Name == "" {
			return fmt.Errorf("client: zone %d has no name", i)
		}
		if names[z.Name] {
			return fmt.Errorf("client: zone %q listed twice", z.Name)
		}
		names[z.Name] = true
		if err := validateServers(z.Name, z.Servers); err != nil {
			return err
		}
		if len(z.BatchServers) > 0 && len(z.BatchServers) != len(z.Servers) {
			return fmt.Errorf("client: zone %q: %d batch_servers for %d servers", z.Name, len(z.BatchServers), len(z.Servers))
		}
		if len(z.BatchServers) > 0 {
			if err := validateServers(z.Name, z.BatchServers); err != nil {
				return err
			}
		}
		if z.Continuum != "" && z.Continuum != "ketama" && z.Continuum != "twemproxy" {
			return fmt.Errorf("client: zone %q: unknown continuum %q (want ketama or twemproxy)", z.Name, z.Continuum)
		}
		if len(z.RingNames) > 0 {
			if len(z.RingNames) != len(z.Servers) {
				return fmt.Errorf("client: zone %q: %d ring_names for %d servers", z.Name, len(z.RingNames), len(z.Servers))
			}
			if dup := firstDuplicate(z.RingNames); dup != "" {
				return fmt.Errorf("client: zone %q: ring name %q listed twice", z.Name, dup)
			}
		}
	}
	if c.LocalZone != "" && !names[c.LocalZone] {
		return fmt.Errorf("client: local_zone %q is not a configured zone", c.LocalZone)
	}
	if c.ReplicaWrites < 0 || c.ReplicaWrites > len(c.Zones) {
		return fmt.Errorf("client: replica_writes %d out of range 0..%d", c.ReplicaWrites, len(c.Zones))
	}
	if len(c.Zones) > 64 {
		return fmt.Errorf("client: %d zones, at most 64", len(c.Zones))
	}
	if c.FallbackZones < 0 {
		return fmt.Errorf("client: fallback_zones %d is negative", c.FallbackZones)
	}
	if int(c.Policy) >= len(policyNames) {
		return fmt.Errorf("client: unknown policy %d", c.Policy)
	}
	if int(c.ReadFallback) >= len(fallbackNames) {
		return fmt.Errorf("client: unknown read_fallback %d", c.ReadFallback)
	}
	if int(c.BatchWrites) >= len(batchNames) {
		return fmt.Errorf("client: unknown batch_writes %d", c.BatchWrites)
	}
	if c.BatchPort < 0 || c.BatchPort > 65535 {
		return fmt.Errorf("client: batch_port %d out of range", c.BatchPort)
	}
	if len(c.Prefix) > 64 || strings.ContainsAny(c.Prefix, " \t\r\n") {
		return fmt.Errorf("client: prefix %q must be at most 64 bytes without spaces", c.Prefix)
	}
	return nil
}

func validateServers(zone string, servers []string) error {
	if len(servers) == 0 {
		return fmt.Errorf("client: zone %q has no servers", zone)
	}
	seen := map[string]bool{}
	for _, s := range servers {
		if _, _, err := addr.Parse(s); err != nil {
			return fmt.Errorf("client: zone %q: %w", zone, err)
		}
		if seen[s] {
			return fmt.Errorf("client: zone %q lists %s twice", zone, s)
		}
		seen[s] = true
	}
	return nil
}

func firstDuplicate(ss []string) string {
	seen := map[string]bool{}
	for _, s := range ss {
		if seen[s] {
			return s
		}
		seen[s] = true
	}
	return ""
}

// batchAddrs returns the batch-port addresses of z's servers, or nil when
// it has none.
func (c *Config) batchAddrs(z Zone) ([]string, error) {
	if len(z.BatchServers) > 0 {
		return z.BatchServers, nil
	}
	if c.BatchPort == 0 {
		return nil, nil
	}
	out := make([]string, len(z.Servers))
	for i, s := range z.Servers {
		network, address, _ := addr.Parse(s)
		if network != "tcp" {
			return nil, fmt.Errorf("client: zone %q: cannot derive a batch port for %s: list batch_servers", z.Name, s)
		}
		host, _, _ := net.SplitHostPort(address)
		out[i] = net.JoinHostPort(host, strconv.Itoa(c.BatchPort))
	}
	return out, nil
}
