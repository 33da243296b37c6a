package main

import (
	"github.com/moneta-cache/moneta/shared/config"
	"github.com/moneta-cache/moneta/shared/server"
)

// reload rereads the configuration (file, then the original flags) on
// SIGHUP and applies what can change while serving: the log level, and
// max_conns and idle_timeout (server.SetLimits). The listener, data
// directory and RocksDB options are fixed once the store is open, so a
// changed value there is logged as needing a restart and not applied. A
// file that does not load or validate changes nothing.
func (p *daemon) reload(load func() (Config, error)) {
	next, err := load()
	cur := *p.effective.Load()
	if err == nil {
		// Compare like with like: the effective config has the store's
		// defaults filled in.
		next = next.effective(next.storeOptions(version, p.log))
		// The same descriptor budget as at start, so a reload cannot give
		// connections RocksDB's reserve (warned about at start already).
		applyFDBudget(&next, nil)
	}
	config.Reloader{Log: p.log, Level: p.level, SetLimits: p.srv.SetLimits}.Apply(&cur, next, err, server.DefaultMaxConns)
	p.effective.Store(&cur)
}
