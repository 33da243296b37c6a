package server

import "sync/atomic"

// workers runs the event loops' hand-offs (a connection served on a
// goroutine, a batch of gets) on goroutines kept parked between them,
// instead of a new goroutine each time. A new goroutine starts on the
// runtime's starting stack and grows it, copying, whenever a request needs
// more; the runtime adapts that starting size only at a GC, which a server
// that allocates nothing per request seldom runs. With L1-only sets (each a
// hand-off) rend spent ~6% of its CPU growing stacks, and 10 µs more per set
// when a bigger heap made GCs rarer (bench/results/hotpath.md).
type workers struct {
	jobs    chan func() // unbuffered: a send succeeds only to a parked worker
	idle    atomic.Int32
	maxIdle int32
	stop    <-chan struct{} // closed at shutdown: parked workers exit
}

func newWorkers(maxIdle int, stop <-chan struct{}) *workers {
	return &workers{jobs: make(chan func()), maxIdle: int32(maxIdle), stop: stop}
}

// spawn runs fn on a parked worker, or on a new one if none is parked.
func (w *workers) spawn(fn func()) {
	select {
	case w.jobs <- fn:
	default:
		go w.work(fn)
	}
}

// work runs fn, then parks for the next job while fewer than maxIdle
// workers are parked and the server is not shutting down.
func (w *workers) work(fn func()) {
	for {
		fn()
		if w.idle.Add(1) > w.maxIdle {
			w.idle.Add(-1)
			return
		}
		select {
		case fn = <-w.jobs:
			w.idle.Add(-1)
		case <-w.stop:
			w.idle.Add(-1)
			return
		}
	}
}
