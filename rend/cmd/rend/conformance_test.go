package main

import (
	"testing"

	"github.com/moneta-cache/moneta/shared/conformance"
	"github.com/moneta-cache/moneta/shared/mctest"
)

// rendGroups are the conformance groups rend declares, in every mode.
// Not declared: meta-stale (rend keeps no stale items: md I / ms I act as
// plain delete/set) and limits (rend accepts values up to its own
// -max-item-size, 20 MiB by default, where memcached's scripts expect 1 MiB).
var rendGroups = []string{"text", "text-badline", "meta", "binary", "ttl", "stats", "verbosity"}

func TestConformance(t *testing.T) {
	mc := mctest.Start(t, "-m", "64")
	mn := startMnemonic(t)
	// One rend per mode; flush_all before each script clears both layers.
	l1only := startRend(t, mctest.Start(t, "-m", "64").Addr, "")
	both := startRend(t, mc.Addr, mn.ready)
	for _, tgt := range []conformance.Target{
		{Name: "rend-l1only", Addr: l1only.regular, Groups: rendGroups},
		{Name: "rend-l1l2", Addr: both.regular, Groups: rendGroups},
		{Name: "rend-l1l2batch", Addr: both.batch, Groups: rendGroups},
	} {
		t.Run(tgt.Name, func(t *testing.T) { conformance.Run(t, tgt) })
	}
}
