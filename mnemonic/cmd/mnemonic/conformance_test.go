package main

import (
	"testing"

	"github.com/moneta-cache/moneta/shared/conformance"
)

// TestConformance runs the shared wire-level suite (expectations recorded
// from a real memcached) against a real mnemonic process, for every group
// mnemonic supports: all of them (meta-stale too: the record keeps the
// stale-while-revalidate state, see shared/item).
func TestConformance(t *testing.T) {
	// memcached's default item size (-I 1m), which the limits scripts
	// were recorded with; mnemonic's own default is rend's 20 MiB.
	p := startMnemonic(t, "", "-max-item-size", "1048576")
	conformance.Run(t, conformance.Target{Name: "mnemonic", Addr: p.Addr, Groups: conformance.AllGroups(),
		Skip: map[string]string{
			"quirks/binary-unknown-body": "decided by shared/binproto (unknown opcode with a body), not by the store",
		}})
}
