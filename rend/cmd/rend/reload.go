package main

import (
	"time"

	"github.com/moneta-cache/moneta/shared/config"
	"github.com/moneta-cache/moneta/shared/server"
)

// reload rereads the configuration (file, then the original flags) on
// SIGHUP and applies what can change safely while serving: the log level,
// max_conns and idle_timeout (server.SetLimits). The listeners, backends
// and sizes are fixed once serving starts, so a changed value there is
// logged as needing a restart and not applied. A file that does not load or
// validate changes nothing.
func (p *daemon) reload(load func() (Config, error)) {
	next, err := load()
	cur := *p.effective.Load()
	config.Reloader{Log: p.log, Level: p.level, Prefix: "rend: ",
		SetLimits: func(maxConns int, idle time.Duration) {
			for _, srv := range p.servers {
				srv.SetLimits(maxConns, idle)
			}
		}}.Apply(&cur, next, err, server.DefaultMaxConns)
	p.effective.Store(&cur)
}
