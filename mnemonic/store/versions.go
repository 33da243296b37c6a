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

// reserveWindow is how many versions one persisted reservation covers. At a
// million writes per second that is one small synchronous file write every
// 16 seconds.
const reserveWindow = 1 << 24

// versions hands out CAS values and write stamps: unique, increasing, and
// increasing across restarts (see the package doc).
//
// The counter may only pass a value after a reservation at or above it is
// durable on disk, so a restart (seeded from that reservation) can never
// hand out a value again even if the clock went backwards.
type versions struct {
	last atomic.Uint64 // last value handed out
	// reserved is the durable reservation: values <= reserved are safe.
	reserved atomic.Uint64

	mu   sync.Mutex // serialises extending the reservation
	path string
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
	if err := v.persist(seed + reserveWindow); err != nil {
		return nil, err
	}
	return v, nil
}

// next returns a fresh version.
func (v *versions) next() (uint64, error) {
	n := v.last.Add(1)
	if n <= v.reserved.Load() {
		return n, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	// Another goroutine may have extended the reservation while we waited.
	if n <= v.reserved.Load() {
		return n, nil
	}
	if err := v.persist(n + reserveWindow); err != nil {
		return 0, err
	}
	return n, nil
}

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
