package config

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
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
