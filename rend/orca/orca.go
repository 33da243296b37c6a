package orca

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/moneta-cache/moneta/rend/l1"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// Backend is a pipelined client to one memcached-protocol server
// (mcclient.Client implements it): L1, L2, and what Pending drains.
type Backend = l1.Backend

// errL1Down means the L1 Backend reported itself unhealthy (no connection
// up, or its circuit open), so the request was not sent at all.
var errL1Down = errors.New("orca: L1 down")

// Orca is the orchestrating protocol.Handler of one listener.
type Orca struct {
	pol     policy
	cfg     Config
	l1      *l1.Client
	l2      *l2Client // nil in l1only mode
	rec     record    // the record: l2, or L1 itself in l1only (record.go)
	locks   *Locks
	stats   *Stats
	pending *Pending
	log     *slog.Logger
	pool    *l1.Pool
	// fillSlots holds a token per L1 fill running behind its reply
	// (fillLater); waitMu serialises WaitFills.
	fillSlots chan struct{}
	fills     fillQueue // the fills behind replies (fill.go)
	// jobs recycles *fillJob; runs recycles *setScratch (sets.go).
	jobs   sync.Pool
	runs   sync.Pool
	waitMu sync.Mutex
	// flushTimer is the pending follow-up of a delayed flush_all
	// (flushLater), guarded by flushMu.
	flushMu    sync.Mutex
	flushTimer *time.Timer
}

// Stats returns the counters the orchestrator updates.
func (o *Orca) Stats() *Stats { return o.stats }

// Handle executes one client request.
func (o *Orca) Handle(ctx context.Context, req *protocol.Request, resp *protocol.Response) error {
	switch req.Command {
	case protocol.CmdGet, protocol.CmdGets:
		return o.get(ctx, req, resp)
	case protocol.CmdGat, protocol.CmdGats:
		if !req.HasExptime {
			return o.get(ctx, req, resp)
		}
		return o.gat(ctx, req, resp)
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdCas:
		return o.store(ctx, req, resp)
	case protocol.CmdAppend, protocol.CmdPrepend, protocol.CmdIncr, protocol.CmdDecr:
		return o.modify(ctx, req, resp)
	case protocol.CmdDelete, protocol.CmdTouch:
		return o.deleteOrTouch(ctx, req, resp)
	case protocol.CmdFlushAll:
		return o.flush(ctx, req, resp)
	case protocol.CmdStats:
		o.statsReply(ctx, req, resp)
		return nil
	case protocol.CmdVersion:
		resp.Message = o.cfg.Version
		return nil
	case protocol.CmdVerbosity:
		return nil
	case protocol.CmdCacheMemlimit:
		return o.memlimit(ctx, req, resp)
	}
	resp.ClientError("unsupported command")
	return nil
}

// errBackend wraps a backend failure for the server's log; the client sees
// only the fixed message set in the response.
type errBackend struct {
	layer string
	err   error
}

func (e *errBackend) Error() string { return "rend: " + e.layer + ": " + e.err.Error() }
func (e *errBackend) Unwrap() error { return e.err }

func (o *Orca) fail(resp *protocol.Response, layer string, err error) error {
	resp.Reset()
	resp.ServerError(layer + " unavailable")
	return &errBackend{layer: layer, err: err}
}

// memcExp turns a client exptime into the number rend sends to both layers:
// 0 never, -1 already expired, else an absolute unix time (which memcached
// and mnemonic read as absolute because it is above 30 days).
//
// Absolute times beyond 2038-01-19 (the binary protocol's unsigned
// exptimes reach 2106) are clamped to math.MaxInt32: memcached parses
// exptimes as 32-bit signed numbers and would read them as negative,
// i.e. already expired.
func memcExp(exptime int64, now time.Time) int64 {
	abs, expired := protocol.AbsExpiry(exptime, now)
	if expired {
		return -1
	}
	return min(abs, math.MaxInt32)
}
