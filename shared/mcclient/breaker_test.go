package mcclient

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/mctest"
	"github.com/moneta-cache/moneta/shared/protocol"
)

// TestBreakerFrozenServer: a SIGSTOPped memcached still accepts
// connections (into the listen backlog) but answers nothing. The breaker
// opens after BreakerStall instead of letting every call wait
// RequestTimeout: the call in flight fails as a lost connection, later
// calls fail at once with ErrUnavailable, Healthy is false. After SIGCONT
// a probe closes it again without any caller's help.
func TestBreakerFrozenServer(t *testing.T) {
	m := mctest.Start(t)
	c := newClient(t, m.Addr, func(c *Config) {
		c.RequestTimeout = 30 * time.Second // far longer than the test may take
		c.BreakerStall = 200 * time.Millisecond
		c.BreakerOpen = 100 * time.Millisecond
		c.BackoffMax = 50 * time.Millisecond
	})
	set(t, c, "k", "v", 0, 0)
	pid := m.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	mctest.Eventually(t, 10*time.Second, "memcached to stop", func() bool { return mctest.ProcState(pid) == 'T' })

	err := c.Handle(context.Background(), rq(protocol.CmdGet, "", "k"), &protocol.Response{})
	if !errors.Is(err, ErrConnLost) || !strings.Contains(err.Error(), "circuit opened") {
		t.Fatalf("call in flight when the server froze: %v", err)
	}
	if c.Healthy() || c.BreakerState() == BreakerClosed {
		t.Fatalf("healthy %v, breaker %s", c.Healthy(), c.BreakerState())
	}
	// Open: no call reaches the frozen server (the probes time out there).
	for i := 0; i < 3; i++ {
		err := c.Handle(context.Background(), rq(protocol.CmdGet, "", "k"), &protocol.Response{})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("call while open: %v", err)
		}
	}
	syscall.Kill(pid, syscall.SIGCONT)
	mctest.Eventually(t, 10*time.Second, "breaker to close", func() bool { return c.Healthy() })
	wantValue(t, c, "k", "v")
	if st := c.Stats(); st.Breaker != BreakerClosed || st.BreakerOpens != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBreakerOff: BreakerFailures < 0 keeps calls waiting for their own
// timeout, as before the breaker existed.
func TestBreakerOff(t *testing.T) {
	m := mctest.Start(t)
	c := newClient(t, m.Addr, func(c *Config) {
		c.RequestTimeout = 300 * time.Millisecond
		c.BreakerFailures = -1
	})
	pid := m.Pid()
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGCONT)
	mctest.Eventually(t, 10*time.Second, "memcached to stop", func() bool { return mctest.ProcState(pid) == 'T' })
	for i := 0; i < 4; i++ {
		err := c.Handle(context.Background(), rq(protocol.CmdGet, "", "k"), &protocol.Response{})
		if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrConnLost) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if c.BreakerState() != BreakerClosed {
		t.Fatal("breaker opened while off")
	}
}
