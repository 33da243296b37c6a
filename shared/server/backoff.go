package server

import (
	"sync/atomic"
	"time"
)

// Accept back-off bounds: a failing Accept (EMFILE when the process is out
// of descriptors, ENFILE, ENOBUFS...) is retried after 5ms, doubling up to
// 1s, and the delay starts over after the next successful Accept. Retrying
// at once would spin a core while the condition lasts; giving up would take
// the whole cache down for a transient shortage (Rend crashed here).
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// nextAcceptBackoff returns the delay after an Accept failure that followed
// a delay of prev (0 after a success).
func nextAcceptBackoff(prev time.Duration) time.Duration {
	if prev < minAcceptBackoff {
		return minAcceptBackoff
	}
	next := 2 * prev
	if next > maxAcceptBackoff {
		next = maxAcceptBackoff
	}
	return next
}

// logLimiter lets one log line through per interval and counts the ones it
// held back, so a storm of identical failures (a backend down, EMFILE)
// cannot flood the log or slow every request down with logging.
type logLimiter struct {
	interval   time.Duration
	next       atomic.Int64 // unix nanos before which lines are suppressed
	suppressed atomic.Uint64
}

// allow reports whether a line may be logged now, and if so how many were
// suppressed since the last one that was.
func (l *logLimiter) allow(now time.Time) (ok bool, suppressed uint64) {
	n := now.UnixNano()
	next := l.next.Load()
	if n < next || !l.next.CompareAndSwap(next, n+int64(l.interval)) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
