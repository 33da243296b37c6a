// Command mcload is moneta's load generator for memcached-protocol servers
// (memcached, mnemonic, rend). See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/bench/load"
)

var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mcload:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("mcload", flag.ContinueOnError)
	var cfg load.Config
	var mix, values string
	var preload, jsonOut, showVersion bool
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:11211", "target: host:port or unix:/path")
	fs.StringVar(&cfg.Proto, "proto", "text", "protocol: text, meta or binary")
	fs.IntVar(&cfg.Conns, "conns", 50, "connections to open")
	fs.IntVar(&cfg.Active, "active", 0, "connections that send load (0 = all; the rest stay idle)")
	fs.IntVar(&cfg.Depth, "depth", 1, "requests in flight per active connection (pipeline depth)")
	fs.IntVar(&cfg.MultiGet, "multiget", 1, "keys per get")
	fs.Uint64Var(&cfg.Keys, "keys", 100000, "number of distinct keys")
	fs.IntVar(&cfg.KeySize, "key-size", 16, "key length in bytes")
	fs.StringVar(&cfg.Prefix, "prefix", "k:", "key prefix")
	fs.StringVar(&cfg.Dist, "dist", "uniform", "key distribution: uniform, seq, zipf (0.99) or zipf:S")
	fs.StringVar(&values, "value-size", "1024", "value size in bytes, or a range MIN-MAX")
	fs.StringVar(&mix, "mix", "get=0.9,set=0.1", "operation shares: get, set, gat, delete, incr")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total requests per second, paced (open loop); 0 = closed loop")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "unmeasured warm-up before the measured duration")
	fs.IntVar(&cfg.Exptime, "exptime", 0, "exptime sent with set and gat")
	fs.BoolVar(&cfg.Verify, "verify", false, "check every value read against its embedded checksum")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "dial and per-reply timeout")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed (0 = time)")
	fs.BoolVar(&preload, "preload", false, "write every key once before the run")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON on stdout (progress goes to stderr)")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if showVersion {
		fmt.Println("mcload", version)
		return nil
	}
	var err error
	if cfg.Mix, err = load.ParseMix(mix); err != nil {
		return err
	}
	if cfg.ValueMin, cfg.ValueMax, err = parseRange(values); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := os.Stdout
	if jsonOut {
		progress = os.Stderr
	}
	if preload {
		if err := load.Preload(ctx, cfg, progress); err != nil {
			return err
		}
	}
	res, err := load.Run(ctx, cfg, progress)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	l := res.Latency
	fmt.Printf("ops=%d ops/s=%.0f hits=%d misses=%d errors=%d io_errors=%d verify_failed=%d conns=%d\n",
		res.Ops, res.OpsPerSec, res.Hits, res.Misses, res.Errors, res.IOErrors, res.VerifyFailed, res.ConnsOpen)
	fmt.Printf("latency p50=%v p90=%v p99=%v p99.9=%v max=%v\n", l.P50, l.P90, l.P99, l.P999, l.Max)
	if res.IOErrors > 0 || res.VerifyFailed > 0 {
		return fmt.Errorf("%d I/O errors, %d values failed verification", res.IOErrors, res.VerifyFailed)
	}
	return nil
}

func parseRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = strconv.Atoi(a); err != nil || lo < 0 {
		return 0, 0, fmt.Errorf("value size %q: want N or MIN-MAX", s)
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil || hi < lo {
			return 0, 0, fmt.Errorf("value size %q: want N or MIN-MAX with MIN <= MAX", s)
		}
	}
	return lo, hi, nil
}
