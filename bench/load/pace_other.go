//go:build !linux

package load

import (
	"context"
	"time"
)

// pacer on platforms without timerfd: the runtime's timers.
type pacer struct{}

func newPacer() *pacer { return nil }

func (p *pacer) wait(ctx context.Context, t time.Time) bool { return waitTimer(ctx, t) }

func (p *pacer) close() {}
