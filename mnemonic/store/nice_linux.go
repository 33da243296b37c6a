//go:build linux

package store

import (
	"log/slog"
	"syscall"
)

// setThreadNice raises the calling thread's nice value by delta (at most
// to 19). On Linux, setpriority(PRIO_PROCESS, tid) applies to one thread.
func setThreadNice(delta int, log *slog.Logger) {
	tid := syscall.Gettid()
	// The raw getpriority returns 20 - nice.
	cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		log.Warn("store: write thread keeps its priority", "err", err)
		return
	}
	nice := min(20-cur+delta, 19)
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
		log.Warn("store: write thread keeps its priority", "err", err)
	}
}
