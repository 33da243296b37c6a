package main

import (
	"testing"

	"github.com/moneta-cache/moneta/shared/conformance"
	"github.com/moneta-cache/moneta/shared/mctest"
)

// notDeclared are the conformance groups rend does not declare, with why;
// it declares every other group, in every mode.
var notDeclared = map[string]string{
	// rend accepts values up to its own -max-item-size (20 MiB by default,
	// it chunks them), where memcached's scripts expect 1 MiB.
	"limits": "item size limit is 20 MiB, not 1 MiB",
}

// skip are scripts of declared groups that fail for reasons outside rend.
var skip = map[string]string{
	"quirks/binary-unknown-body": "shared binproto codec answers an unknown opcode with a body (memcached closes silently)",
}

// l1onlySkip are further scripts the l1only mode fails, with why (README,
// "Differences from memcached").
var l1onlySkip = map[string]string{
	"quirks/binary-unknown-body": skip["quirks/binary-unknown-body"],
}

// l1onlyNotDeclared are further groups the l1only mode does not declare
// (none: the chunk header keeps the meta state, see rend/orca/l1only.go).
var l1onlyNotDeclared = map[string]string{}

func rendGroups(more map[string]string) []string {
	var gs []string
	for _, g := range conformance.AllGroups() {
		_, skip := notDeclared[g]
		_, skip2 := more[g]
		if !skip && !skip2 {
			gs = append(gs, g)
		}
	}
	return gs
}

func TestConformance(t *testing.T) {
	groups, l1onlyGroups := rendGroups(nil), rendGroups(l1onlyNotDeclared)
	t.Logf("declared groups: %v (l1only: %v)", groups, l1onlyGroups)
	// One rend per target, each with backends of its own: the runner
	// flushes before every script, so targets sharing a backend could not
	// run side by side. The batch-port target's rend serves the regular port
	// too; only its batch port is exercised.
	l1only := startRend(t, mctest.Start(t, "-m", "64").Addr, "")
	regular := startRend(t, mctest.Start(t, "-m", "64").Addr, startMnemonic(t).Addr)
	batch := startRend(t, mctest.Start(t, "-m", "64").Addr, startMnemonic(t).Addr)
	for _, tgt := range []conformance.Target{
		{Name: "rend-l1only", Addr: l1only.regular, Groups: l1onlyGroups, Skip: l1onlySkip},
		{Name: "rend-l1l2", Addr: regular.regular, Groups: groups, Skip: skip},
		{Name: "rend-l1l2batch", Addr: batch.batch, Groups: groups, Skip: skip},
	} {
		// The three targets are independent servers; most of the time is
		// spent waiting for TTLs, so they run side by side.
		t.Run(tgt.Name, func(t *testing.T) {
			t.Parallel()
			conformance.Run(t, tgt)
		})
	}
}
