package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// reserveWindow is how far the durable reservation runs ahead of the
// versions handed out, in the counter's unit (nanoseconds). It bounds two
// things: after a crash and a quick restart, versions may lead the wall clock
// by up to this much (so a delayed flush_all due in that first second may
// spare a write it should cover); and the reservation file is rewritten about
// twice per window while writes come in, off the request path.
const reserveWindow = uint64(time.Second)

// versions hands out CAS values and write stamps: unique, increasing, and
// increasing across restarts, and following the wall clock in unix
// nanoseconds (see the package doc).
//
// A version is max(previous + 1, now in ns). It tracks the clock so that a
// delayed flush_all, which is a point in wall time, can be compared with the
// stamp of a record. (Until this was so, the counter only advanced by one per
// write from its seed at start, fell behind the clock within a second, and a
// delayed flush_all then covered every later write too.) It never goes back:
// when the clock steps back, versions keep counting up from the last one.
//
// The counter may only pass a value after a reservation at or above it is
// durable on disk, so a restart (seeded from that reservation) can never
// hand out a value again even if the clock went backwards.
type versions struct {
	last atomic.Uint64 // last value handed out
	// reserved is the durable reservation: values <= reserved are safe.
	reserved atomic.Uint64

	mu        sync.Mutex  // serialises extending the reservation
	extending atomic.Bool // an asynchronous extension is running
	wg        sync.WaitGroup
	path      string
}

func openVersions(dir string, now time.Time) (*versions, error) {
	v := &versions{path: filepath.Join(dir, "VERSIONS")}
	var persisted uint64
	b, err := os.ReadFile(v.path)
	switch {
	case err == nil && len(b) == 8:
		persisted = binary.LittleEndian.Uint64(b)
	case err == nil:
		return nil, fmt.Errorf("%s: corrupt (%d bytes)", v.path, len(b))
	case !os.IsNotExist(err):
		return nil, err
	}
	seed := max(uint64(now.UnixNano()), persisted)
	v.last.Store(seed)
	// On a full disk the store starts read-only: without a reservation
	// (reserved stays 0) every write tries to persist one and fails until
	// space is freed, so no version is handed out unreserved.
	if err := v.persist(seed + reserveWindow); err != nil && !isNoSpace(err) {
		return nil, err
	}
	return v, nil
}

// next returns a fresh version for a write happening at now.
func (v *versions) next(now time.Time) (uint64, error) {
	t := uint64(now.UnixNano())
	var n uint64
	for {
		l := v.last.Load()
		n = max(l+1, t)
		if v.last.CompareAndSwap(l, n) {
			break
		}
	}
	r := v.reserved.Load()
	if n <= r {
		// Extend ahead of need, in the background, so that writers do
		// not wait for the fsync while the clock moves on.
		if r-n < reserveWindow/2 && v.extending.CompareAndSwap(false, true) {
			v.wg.Add(1)
			go v.extendAhead()
		}
		return n, nil
	}
	// The clock outran the reservation (idle for a while, or the
	// background extension is late): this writer persists it.
	if err := v.extend(n + reserveWindow); err != nil {
		return 0, err
	}
	return n, nil
}

// extendAhead moves the reservation a window past the last version.
func (v *versions) extendAhead() {
	defer v.wg.Done()
	defer v.extending.Store(false)
	// An error here is not lost: a writer that needs the reservation
	// extends it itself and reports the failure.
	v.extend(max(v.last.Load(), uint64(time.Now().UnixNano())) + reserveWindow)
}

// extend makes the reservation at least r.
func (v *versions) extend(r uint64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	// The reservation only grows: a slower extension must not lower it.
	if r <= v.reserved.Load() {
		return nil
	}
	return v.persist(r)
}

// close waits for a background extension, so nothing writes in the data
// directory once the store is closed.
func (v *versions) close() { v.wg.Wait() }

// persist makes r the durable reservation: write a temporary file, fsync,
// rename, so a crash leaves either the old or the new reservation.
func (v *versions) persist(r uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], r)
	tmp := v.path + ".tmp"
	if err := writeFileSync(tmp, b[:]); err != nil {
		return err
	}
	if err := os.Rename(tmp, v.path); err != nil {
		return err
	}
	v.reserved.Store(r)
	return nil
}
