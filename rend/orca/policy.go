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
// practice 15): the command handlers in orca.go read these fields and are
// otherwise shared by all three modes.
type policy struct {
	name string

	// l2 says L2 exists and is the system of record: every write goes to L2
	// first and reaches L1 only after L2 accepted it, and the CAS a client
	// sees is L2's version. Without it rend executes the command on L1 alone
	// and assigns versions itself.
	l2 bool

	// l1Write is how a write accepted by L2 reaches L1 (the result of the
	// write, with L2's version; every write first takes L1's copy out, see
	// takeOut in orca.go):
	//   CmdSet on the regular port: L1 is a write-through copy, so the new
	//     value goes in whether or not L1 had the key.
	//   CmdReplace on the batch port: bulk loads must not evict the hot set,
	//     so only keys L1 had before the write are put back; cold keys stay
	//     L2-only.
	// Either way a failed L1 update deletes the key from L1 and the client
	// still gets L2's answer: a missing L1 copy costs one refill, a stale one
	// would be served.
	l1Write protocol.Command

	// fill says whether an L2 read hit is copied into L1 (with add, so a fill
	// racing a newer write never overwrites it; see get). Off on the batch
	// port for the same reason as l1Write.
	fill bool
}

// policies is indexed by Mode. It is a constant table, never written.
var policies = [...]policy{
	L1Only:    {name: "l1only", l2: false, l1Write: protocol.CmdSet, fill: false},
	L1L2:      {name: "l1l2", l2: true, l1Write: protocol.CmdSet, fill: true},
	L1L2Batch: {name: "l1l2batch", l2: true, l1Write: protocol.CmdReplace, fill: false},
}
