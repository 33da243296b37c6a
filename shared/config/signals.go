package config

import (
	"os"
	"os/signal"
	"syscall"
)

// Signals is a daemon's view of the signals systemd and operators send:
// SIGTERM and SIGINT stop it, SIGHUP (systemd's ExecReload) rereads its
// configuration. Catching SIGHUP matters: Go's default for it ends the
// process, so a reload sent before the handler exists would kill the
// daemon. Create it before announcing that the daemon serves, since
// whoever waits for that line may signal at once.
type Signals struct {
	// Stop receives SIGTERM and SIGINT.
	Stop <-chan os.Signal
	// Reload receives SIGHUP.
	Reload <-chan os.Signal
	stop   chan os.Signal
	reload chan os.Signal
}

// NotifySignals starts catching the daemon signals; Close stops it.
func NotifySignals() *Signals {
	s := &Signals{stop: make(chan os.Signal, 2), reload: make(chan os.Signal, 1)}
	s.Stop, s.Reload = s.stop, s.reload
	signal.Notify(s.stop, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(s.reload, syscall.SIGHUP)
	return s
}

// Close restores the default handling of the signals.
func (s *Signals) Close() {
	signal.Stop(s.stop)
	signal.Stop(s.reload)
}
