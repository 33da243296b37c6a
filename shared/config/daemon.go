package config

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"time"
)

// Duration is a time.Duration written as "10s" in TOML and on flags.
type Duration time.Duration

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string      { return time.Duration(d).String() }
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// Parse builds a daemon's configuration from args the one way both mains
// do it: defaults, then the TOML file named by -config, then the flags the
// operator set (bind defines one flag per key, writing into its argument).
// -version makes showVersion true and returns no configuration; -h returns
// flag.ErrHelp. The result is not validated: each daemon knows its keys.
func Parse[T any](name string, args []string, defaults func() T, bind func(*flag.FlagSet, *T)) (cfg T, showVersion bool, err error) {
	var zero T
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fromFlags := defaults()
	path := fs.String("config", "", "TOML configuration file (flags override it)")
	ver := fs.Bool("version", false, "print the version and exit")
	bind(fs, &fromFlags)
	if err := fs.Parse(args); err != nil {
		return zero, false, err
	}
	if fs.NArg() > 0 {
		return zero, false, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *ver {
		return zero, true, nil
	}
	cfg = defaults()
	if *path != "" {
		if err := Load(*path, &cfg); err != nil {
			return zero, false, err
		}
	}
	// Copy each flag the operator set over the file's value.
	if err := Override(&cfg, &fromFlags, Set(fs)); err != nil {
		return zero, false, err
	}
	return cfg, false, nil
}

// Bad is the validation error for one setting, naming it as the TOML key
// and the flag, since either may have set it.
func Bad(key string, v any, want string) error {
	return fmt.Errorf("%s (-%s) %v: %s", key, strings.ReplaceAll(key, "_", "-"), v, want)
}

// CheckLog validates the log_level and log_format settings, returning the
// Bad errors (nil when both are good).
func CheckLog(level, format string) []error {
	var errs []error
	if format != "text" && format != "json" {
		errs = append(errs, Bad("log_format", fmt.Sprintf("%q", format), "want text or json"))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, Bad("log_level", fmt.Sprintf("%q", level), "want debug, info, warn or error"))
	}
	return errs
}

// NewLogger returns a daemon's logger writing to w: text or json (format
// validated by CheckLog), at level (validated), with the level returned as
// a LevelVar so that SIGHUP can change it.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.UnmarshalText([]byte(level))
	ho := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho)), lv
	}
	return slog.New(slog.NewTextHandler(w, ho)), lv
}

// Reloader applies a reread configuration to a running daemon, the same
// way for every daemon: log_level takes effect at once through Level;
// SetLimits (if set) applies max_conns and idle_timeout; every other
// changed key is reported as needing a restart. Prefix starts its log lines.
type Reloader struct {
	Log    *slog.Logger
	Level  *slog.LevelVar
	Prefix string
	// SetLimits applies max_conns and idle_timeout (server.SetLimits).
	SetLimits func(maxConns int, idle time.Duration)
}

// Apply compares *cur with next (structs of the same type with log_level,
// max_conns and idle_timeout fields; next validated) and applies what can
// change while serving, updating *cur with those keys only. A non-nil
// loadErr (the file did not load or validate) is logged and changes
// nothing. defaultMaxConns replaces a max_conns of 0.
func (r Reloader) Apply(cur, next any, loadErr error, defaultMaxConns int) {
	if loadErr != nil {
		r.Log.Error(r.Prefix+"SIGHUP: configuration not reloaded", "err", loadErr)
		return
	}
	applied, restart := Reload(cur, next, func(key string) bool {
		switch key {
		case "log_level":
			var lvl slog.Level
			lvl.UnmarshalText([]byte(field[string](next, "log_level"))) // validated by load
			r.Level.Set(lvl)
			return true
		case "max_conns", "idle_timeout":
			if r.SetLimits == nil {
				return false
			}
			maxConns := field[int](next, "max_conns")
			if maxConns == 0 {
				maxConns = defaultMaxConns
			}
			r.SetLimits(maxConns, time.Duration(field[Duration](next, "idle_timeout")))
			return true
		}
		return false
	})
	// At least info, so that the line shows whatever level was just set
	// (an operator who raised it to error still sees that it took).
	lvl := max(slog.LevelInfo, r.Level.Level())
	r.Log.Log(context.Background(), lvl, r.Prefix+"SIGHUP: configuration reloaded", "applied", applied, "needs_restart", restart)
}

// Need is nil when ok, else the Bad error for key holding v; errors.Join
// drops the nils, so a validator lists its rules as Need calls.
func Need(ok bool, key string, v any, want string) error {
	if ok {
		return nil
	}
	return Bad(key, v, want)
}

// Daemon holds the keys every moneta daemon has: its client connections
// and its log. A daemon's configuration struct embeds it, and its keys read
// as that struct's own: in the TOML file, on the command line (BindFlags),
// in "stats settings" (Settings) and for SIGHUP (Reloader: log_level,
// max_conns and idle_timeout apply without a restart).
type Daemon struct {
	MaxConns        int      `toml:"max_conns"`
	MaxValueBytes   int64    `toml:"max_value_bytes"`
	IdleTimeout     Duration `toml:"idle_timeout"`
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	LogLevel        string   `toml:"log_level"`
	LogFormat       string   `toml:"log_format"`
	// NetLoop is server.Config.NetLoop: "goroutine" or "epoll" (the
	// default on Linux, the only system that has it).
	NetLoop string `toml:"net_loop"`
	// SocketIO is how sockets are read and written: "raw" (raw syscalls,
	// package rawio; the default) or "runtime" (the runtime's syscall
	// path): server.Config.RuntimeSyscalls and mcclient's.
	SocketIO string `toml:"socket_io"`
}

// DefaultDaemon is what a daemon runs with when neither file nor flag sets
// these keys: the server's connection limit (max_conns 0), no idle
// timeout, 10 s to drain at SIGTERM, info-level text logs.
func DefaultDaemon() Daemon {
	d := Daemon{ShutdownTimeout: Duration(10 * time.Second), LogLevel: "info", LogFormat: "text", NetLoop: "goroutine", SocketIO: "raw"}
	if runtime.GOOS == "linux" {
		d.NetLoop = "epoll"
	}
	return d
}

// BindFlags defines the flags of d's keys on fs, writing into d, with d's
// current values as the defaults -h shows.
func (d *Daemon) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&d.MaxConns, "max-conns", d.MaxConns, "maximum client connections over all ports (0: 65536)")
	fs.Int64Var(&d.MaxValueBytes, "max-value-bytes", d.MaxValueBytes, "request value bytes being read over all connections; past it a write is refused (0: 256 MiB, -1: no limit)")
	fs.Var(&d.IdleTimeout, "idle-timeout", "close client connections idle this long (0: never)")
	fs.Var(&d.ShutdownTimeout, "shutdown-timeout", "how long SIGTERM lets in-flight requests finish")
	fs.StringVar(&d.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error (SIGHUP rereads it from -config)")
	fs.StringVar(&d.LogFormat, "log-format", d.LogFormat, "text or json")
	fs.StringVar(&d.SocketIO, "socket-io", d.SocketIO, "how sockets are read and written: raw (raw syscalls) or runtime (the Go runtime's syscall path)")
	fs.StringVar(&d.NetLoop, "net-loop", d.NetLoop, "how client connections wait: goroutine (one each) or epoll (Linux: event loops that batch the gets of all ready clients)")
}

// Check returns the Bad error of each of d's keys that cannot work, for a
// daemon's Validate to join with its own.
func (d *Daemon) Check() []error {
	return append([]error{
		Need(d.MaxConns >= 0, "max_conns", d.MaxConns, "want 0 (the default limit) or more"),
		Need(d.IdleTimeout >= 0, "idle_timeout", d.IdleTimeout, "want 0 (never) or more"),
		Need(d.ShutdownTimeout >= 0, "shutdown_timeout", d.ShutdownTimeout, "want 0 or more"),
		Need(d.NetLoop == "goroutine" || d.NetLoop == "epoll", "net_loop", d.NetLoop, "want goroutine or epoll"),
		Need(d.SocketIO == "raw" || d.SocketIO == "runtime", "socket_io", d.SocketIO, "want raw or runtime"),
	}, CheckLog(d.LogLevel, d.LogFormat)...)
}

// Serve holds the keys of where a daemon serves and how large a value it
// takes: listen, admin and max_item_size. Both daemons have them, with
// their own defaults and their own words for what listen serves.
type Serve struct {
	Listen      string `toml:"listen"`
	Admin       string `toml:"admin"`
	MaxItemSize int    `toml:"max_item_size"`
}

// BindFlags defines -listen, -admin and -max-item-size on fs, writing into
// s, with s's current values as the defaults -h shows.
func (s *Serve) BindFlags(fs *flag.FlagSet, listenHelp, adminHelp string) {
	fs.StringVar(&s.Listen, "listen", s.Listen, listenHelp)
	fs.StringVar(&s.Admin, "admin", s.Admin, adminHelp)
	fs.IntVar(&s.MaxItemSize, "max-item-size", s.MaxItemSize, "largest value accepted, in bytes")
}
