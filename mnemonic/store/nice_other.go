//go:build !linux

package store

import "log/slog"

// setThreadNice does nothing here: only Linux sets one thread's priority.
func setThreadNice(int, *slog.Logger) {}
