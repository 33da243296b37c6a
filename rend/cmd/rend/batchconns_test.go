package main

import (
	"fmt"
	"testing"
)

// TestBatchPortOwnConnections: the batch port's writes reach L1 and L2 over
// connections of their own, so a bulk load never queues in front of a
// regular-port read on a backend connection; regular traffic keeps using
// the regular ones.
func TestBatchPortOwnConnections(t *testing.T) {
	s := newStack(t, true)
	c, batch := dial(t, s.rend.regular), dial(t, s.rend.batch)
	const (
		l1, l2   = `rend_pool_requests_total{layer="l1"}`, `rend_pool_requests_total{layer="l2"}`
		bl1, bl2 = `rend_pool_requests_total{layer="l1_batch"}`, `rend_pool_requests_total{layer="l2_batch"}`
	)
	m0 := scrape(t, s.rend.admin)
	for i := range 20 {
		batch.set(fmt.Sprintf("bulk%d", i), []byte("v"), 0, 0)
	}
	m1 := scrape(t, s.rend.admin)
	if d := m1[bl2] - m0[bl2]; d < 20 {
		t.Errorf("batch-port sets: %v requests on the batch L2 connections, want >= 20", d)
	}
	if d := m1[bl1] - m0[bl1]; d < 1 {
		t.Errorf("batch-port sets: %v requests on the batch L1 connections, want >= 1", d)
	}
	if d1, d2 := m1[l1]-m0[l1], m1[l2]-m0[l2]; d1 != 0 || d2 != 0 {
		t.Errorf("batch-port sets used the regular connections: L1 %v, L2 %v requests", d1, d2)
	}
	if _, _, _, ok := c.get("bulk3"); !ok { // L1 miss (cold batch write), L2 hit
		t.Fatal("bulk3 missing on the regular port")
	}
	m2 := scrape(t, s.rend.admin)
	if d := m2[l2] - m1[l2]; d < 1 {
		t.Errorf("regular-port read: %v requests on the regular L2 connections, want >= 1", d)
	}
	if d := m2[bl2] - m1[bl2]; d != 0 {
		t.Errorf("regular-port read used the batch L2 connections (%v requests)", d)
	}
	if st := c.stats(""); st["l2_batch_conns_up"] == "" || st["l2_batch_conns_up"] == "0" {
		t.Errorf("stats l2_batch_conns_up = %q", st["l2_batch_conns_up"])
	}
}
