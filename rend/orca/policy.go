package orca

import (
	"fmt"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// Mode is the orchestration a listener runs (DESIGN §4).
type Mode uint8

const (
	// L1Only: no L2 configured; memcached holds everything (chunked).
	L1Only Mode = iota
	// L1L2: the regular port with L2 configured.
	L1L2
	// L1L2Batch: the batch port (bulk loaders, replication).
	L1L2Batch
)

func (m Mode) String() string {
	if int(m) < len(policies) {
		return policies[m].name
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode maps "l1only", "l1l2", "l1l2batch" to a Mode.
func ParseMode(s string) (Mode, error) {
	for i, p := range policies {
		if p.name == s {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q (want l1only, l1l2 or l1l2batch)", s)
}

// policy is everything that differs between the modes, as data (STYLE
// practice 15): the handlers (read.go, write.go, meta.go) and the cache
// helpers (cache.go) read these fields and are otherwise shared by all
// three modes. Which layer is the record (record.go) follows from cache.
type policy struct {
	name string

	// cache says L1 is a cache in front of a separate record, L2
	// (mnemonic), which holds every item and owns its version (the CAS
	// clients see). Then every write takes L1's copy out, is applied to L2
	// and reaches L1 only after L2 accepted it (cache.go); a read's L1
	// misses go to L2; an L1 failure is not the request's (L2 answers) and
	// an L2 failure holds the keys. Without it (l1only) the record is L1
	// itself (l1Record: rend applies the item semantics and hands out
	// versions): nothing is taken out, put back or filled, a read ends at
	// L1 and an L1 failure fails the request.
	cache bool

	// l1Write is how a write accepted by L2 reaches L1 (the result of the
	// write, with L2's version; every write first takes L1's copy out):
	//   CmdSet on the regular port: L1 is a write-through copy, so the new
	//     value goes in whether or not L1 had the key.
	//   CmdReplace on the batch port: bulk loads must not evict the hot set,
	//     so only keys L1 had before the write are put back; cold keys stay
	//     L2-only.
	// Either way a failed L1 update deletes the key from L1 and the client
	// still gets L2's answer: a missing L1 copy costs one refill, a stale one
	// would be served. Unused without cache.
	l1Write protocol.Command

	// fill says whether an L2 read hit is copied into L1 (with add, so a fill
	// racing a newer write never overwrites it; see lookup). Off on the
	// batch port for the same reason as l1Write.
	fill bool

	// stateInL1 says L1 items may carry meta state (stale, W sent): in
	// l1only the chunk header is the record and keeps it. Then every meta
	// gat, and a meta read whose L1 hit shows state, is answered through
	// the record's item semantics (recordRead). In the L2 modes L1 holds
	// plain copies only (see meta.go).
	stateInL1 bool
}

// policies is indexed by Mode. It is a constant table, never written.
var policies = [...]policy{
	L1Only:    {name: "l1only", cache: false, fill: false, stateInL1: true},
	L1L2:      {name: "l1l2", cache: true, l1Write: protocol.CmdSet, fill: true, stateInL1: false},
	L1L2Batch: {name: "l1l2batch", cache: true, l1Write: protocol.CmdReplace, fill: false, stateInL1: false},
}
