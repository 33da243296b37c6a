package orca

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/moneta-cache/moneta/rend/chunk"
	"github.com/moneta-cache/moneta/rend/l1"
)

// Config configures an orchestrator. Build it in main and pass it to New.
type Config struct {
	Mode Mode
	// L1 is the memcached backend (required).
	L1 Backend
	// L2 is the mnemonic backend (required unless Mode is L1Only).
	L2 Backend
	// L2Peer says L2 is mnemonic, which takes the meta flags only rend
	// sends (protocol.Limits.PeerFlags): classic reads then go with mg's G
	// and leave a stale item's W token alone, as memcached's get does, and
	// an md I first tells L2 the last access of L1's copy (mg's A).
	// False for a stock memcached standing in for L2 (tests), which would
	// refuse both.
	L2Peer bool
	// Locks are the striped key locks, shared by all orchestrators of the
	// process. Nil: New makes private ones (fine for a single listener).
	Locks *Locks
	// Stats receives the counters, shared by all orchestrators of the
	// process. Nil: New makes private ones.
	Stats *Stats
	// Pending holds the keys whose L1 copy could not be invalidated,
	// shared by all orchestrators of the process; main runs its Drain
	// loop. Nil: New makes a private one.
	Pending *Pending
	// ChunkSize is the data bytes per L1 chunk (default chunk.DefaultChunkSize).
	ChunkSize int
	// MaxItemSize is the largest value accepted (default 20 MiB).
	MaxItemSize int
	// Version is answered to "version".
	Version string
	// Started is the process start time reported by stats (default now).
	Started time.Time
	// Logger receives backend trouble. Nil: slog.Default().
	Logger *slog.Logger
}

// DefaultMaxItemSize is the largest value rend accepts by default.
const DefaultMaxItemSize = 20 << 20

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	if c.ChunkSize == 0 {
		c.ChunkSize = chunk.DefaultChunkSize
	}
	if c.MaxItemSize == 0 {
		c.MaxItemSize = DefaultMaxItemSize
	}
	if c.Locks == nil {
		c.Locks = NewLocks(0)
	}
	if c.Stats == nil {
		c.Stats = new(Stats)
	}
	if c.Pending == nil {
		c.Pending = new(Pending)
	}
	if c.Started.IsZero() {
		c.Started = time.Now()
	}
	if c.Version == "" {
		c.Version = "moneta-rend"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case int(c.Mode) >= len(policies):
		return fmt.Errorf("orca: unknown mode %d", c.Mode)
	case c.L1 == nil:
		return errors.New("orca: L1 backend required")
	case c.Mode != L1Only && c.L2 == nil:
		return fmt.Errorf("orca: mode %v needs an L2 backend", c.Mode)
	case c.Mode == L1Only && c.L2 != nil:
		return errors.New("orca: mode l1only with an L2 backend")
	case c.ChunkSize < 16 || c.ChunkSize > 512<<10:
		return fmt.Errorf("orca: chunk size %d out of range 16..%d", c.ChunkSize, 512<<10)
	case c.MaxItemSize < 1 || c.MaxItemSize > 1<<30:
		return fmt.Errorf("orca: max item size %d out of range 1..%d", c.MaxItemSize, 1<<30)
	}
	return nil
}

// New returns the orchestrator for cfg.
func New(cfg Config) (*Orca, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := new(l1.Pool)
	o := &Orca{
		pol: policies[cfg.Mode], cfg: cfg,
		locks: cfg.Locks, stats: cfg.Stats, pending: cfg.Pending, log: cfg.Logger, pool: p,
		fillSlots: make(chan struct{}, maxAsyncFills),
	}
	o.fills.wake = make(chan struct{}, 1)
	o.l1 = l1.New(cfg.L1, cfg.ChunkSize, cfg.MaxItemSize, &cfg.Stats.Counters, p)
	if o.pol.cache {
		o.l2 = &l2Client{be: cfg.L2, errs: &cfg.Stats.L2Errors, pool: p, peer: cfg.L2Peer}
		o.rec = o.l2
	} else {
		o.rec = &l1Record{c: o.l1, pool: p, maxItem: cfg.MaxItemSize}
	}
	return o, nil
}
