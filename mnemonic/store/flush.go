package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// flushState is the flush_all in force: from effective (unix ns) on, every
// record whose stamp is below cutoff is gone. A later flush_all replaces an
// earlier one, as in memcached.
type flushState struct {
	cutoff    uint64 // stamps below this are flushed
	effective int64  // unix nanoseconds from which the flush applies
}

// covers reports whether a record with stamp is flushed at nowNano.
func (f *flushState) covers(stamp uint64, nowNano int64) bool {
	return f != nil && stamp < f.cutoff && nowNano >= f.effective
}

// flusher owns the persisted flush state. Without persistence a restart
// would bring flushed items back.
type flusher struct {
	state atomic.Pointer[flushState]
	mu    sync.Mutex // serialises set
	path  string
}

func openFlusher(dir string) (*flusher, error) {
	f := &flusher{path: filepath.Join(dir, "FLUSH")}
	b, err := os.ReadFile(f.path)
	switch {
	case err == nil && len(b) == 16:
		f.state.Store(&flushState{
			cutoff:    binary.LittleEndian.Uint64(b),
			effective: int64(binary.LittleEndian.Uint64(b[8:])),
		})
	case err == nil:
		return nil, fmt.Errorf("%s: corrupt (%d bytes)", f.path, len(b))
	case !os.IsNotExist(err):
		return nil, err
	}
	return f, nil
}

func (f *flusher) load() *flushState { return f.state.Load() }

// set persists st, then publishes it. Persisting first means a flush_all
// that was answered OK is never forgotten by a restart.
func (f *flusher) set(st flushState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], st.cutoff)
	binary.LittleEndian.PutUint64(b[8:], uint64(st.effective))
	tmp := f.path + ".tmp"
	if err := writeFileSync(tmp, b[:]); err != nil {
		return err
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return err
	}
	f.state.Store(&st)
	return nil
}

// writeFileSync writes b to path and fsyncs it.
func writeFileSync(path string, b []byte) error {
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
