package client

import (
	"errors"
	"testing"
)

func TestSmoke(t *testing.T) {
	cl := startCluster(t, []string{"a", "b", "c"}, 2)
	cfg := cl.config("a")
	cfg.Policy = PolicyAll
	c := newTestClient(t, cfg)
	ctx := ctxT(t)
	if err := c.Set(ctx, &Item{Key: "hello", Value: []byte("world"), Flags: 7}); err != nil {
		t.Fatal(err)
	}
	it, err := c.Get(ctx, "hello")
	if err != nil || string(it.Value) != "world" || it.Flags != 7 {
		t.Fatalf("get: %+v %v", it, err)
	}
	for _, z := range cl.zones {
		if !holds(t, ownerIn(z, "hello"), "hello", "world") {
			t.Errorf("zone %s lacks the key", z.Name)
		}
	}
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, ErrCacheMiss) {
		t.Fatalf("miss: %v", err)
	}
	m, err := c.GetMulti(ctx, []string{"hello", "nope"})
	if err != nil || len(m) != 1 || string(m["hello"].Value) != "world" {
		t.Fatalf("getmulti %v %v", m, err)
	}
	t.Logf("%+v", c.Stats())
}
