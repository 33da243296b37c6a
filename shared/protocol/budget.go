package protocol

import (
	"io"
	"sync/atomic"
)

// Budget bounds the bytes that requests in flight may hold across all the
// connections of a process: the data blocks being read, before a handler
// has taken them. Codecs charge a block as its bytes arrive and give the
// bytes back once the request has been answered. A request that would go
// over the budget is refused (its block swallowed) instead of growing the
// process, so a crowd of clients that send headers declaring large values
// and then stall cannot exhaust memory.
//
// Small values (SmallValue bytes or less, most writes) may also use a
// reserve of an eighth of the limit beyond it, so that stalled large
// writes that fill the budget do not refuse everyone else's writes too.
// What the budget holds never exceeds Limit plus that reserve.
//
// A nil *Budget is unlimited. Methods are safe for concurrent use.
type Budget struct {
	limit   int64
	reserve int64
	used    atomic.Int64
	refused atomic.Uint64
}

// SmallValue is the largest value that may use the budget's reserve.
const SmallValue = 16 << 10

// NewBudget returns a budget of limit bytes (limit <= 0: unlimited).
func NewBudget(limit int64) *Budget {
	if limit <= 0 {
		return nil
	}
	return &Budget{limit: limit, reserve: limit / 8}
}

// TryAcquire takes n bytes for a value of size bytes if they fit, and
// reports whether they did.
func (b *Budget) TryAcquire(n, size int64) bool {
	if b == nil {
		return true
	}
	max := b.limit
	if size <= SmallValue {
		max += b.reserve
	}
	if b.used.Add(n) > max {
		b.used.Add(-n)
		b.refused.Add(1)
		return false
	}
	return true
}

// Release gives back n bytes taken with TryAcquire.
func (b *Budget) Release(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}

// Used is the number of bytes currently taken.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Refused counts the TryAcquire calls that did not fit.
func (b *Budget) Refused() uint64 {
	if b == nil {
		return 0
	}
	return b.refused.Load()
}

// Limit is the budget's size in bytes (0: unlimited).
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// ReadValue reads a value of n bytes from r into v's memory (reusing it
// while it is large enough), growing the buffer as bytes arrive: never by
// more than what has already arrived, or minStep, so a header that declares
// a huge value and then stalls holds little. Each growth is charged first
// (charge(step, n), normally a Budget behind the codec's own accounting);
// when a charge is refused ReadValue stops and returns refused with the
// bytes read so far, and the caller swallows the other n-len(value) bytes.
// On a read error value holds what arrived.
func ReadValue(r io.Reader, v []byte, n, minStep int, charge func(step, size int) bool) (value []byte, refused bool, err error) {
	v = v[:0]
	for len(v) < n {
		step := min(n-len(v), max(minStep, len(v)))
		if !charge(step, n) {
			return v, true, nil
		}
		m := len(v)
		if cap(v) < m+step {
			nv := make([]byte, m, m+step)
			copy(nv, v)
			v = nv
		}
		v = v[:m+step]
		if _, err := io.ReadFull(r, v[m:]); err != nil {
			return v, false, err
		}
	}
	return v, false, nil
}

// Hold is what one connection's codec holds of a Budget for the request it
// is reading. It is not safe for concurrent use: each codec owns its own.
type Hold struct{ n int64 }

// Charge takes n bytes for a value of size bytes on h's behalf, reporting
// whether they fit (always, for a nil Budget).
func (b *Budget) Charge(h *Hold, n, size int) bool {
	if b == nil {
		return true
	}
	if !b.TryAcquire(int64(n), int64(size)) {
		return false
	}
	h.n += int64(n)
	return true
}

// ReleaseHold gives back everything h holds.
func (b *Budget) ReleaseHold(h *Hold) {
	if h.n != 0 {
		b.Release(h.n)
		h.n = 0
	}
}
