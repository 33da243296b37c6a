// Command moneta-copy copies items from one moneta host to another, keeping
// each item's value, client flags and remaining TTL: the warm-up and
// replication job that fills a new or emptied zone from a healthy one with
// plain memcached connections, no Go client in the application.
//
// It reads keys in pipelined batches from the source with meta get
// (mg <key> v f t: value, flags, seconds left) and writes the hits to the
// target's batch port with meta set (ms, the same flags, the remaining TTL),
// by default as add so that a key the target already has (written by the
// application meanwhile, hence newer) is left alone.
//
//	moneta-copy -from 10.0.1.1:11212 -to 10.0.2.1:11212 -keys keys.txt
//	some-key-lister | moneta-copy -from ... -to ... -keys - -rate 20000
//	moneta-copy -from ... -to ... -keys-from-l1 unix:/run/moneta/l1/memcached.sock
//
// The source is a host's batch port (reads there do not fill its L1) or,
// run on the source host, its mnemonic socket
// (-from unix:/run/moneta/l2/mnemonic.sock): the record of every write, read
// without going through rend, about twice as fast.
//
// Keys come from a file or stdin (one per line), or from the source's L1
// memcached ("lru_crawler metadump all", run on the source host): that lists
// the hot set only, not the keys that live only in L2. docs/operations.md
// discusses where a full key list comes from.
//
// Progress goes to stderr every -progress; the summary to stdout. The exit
// status is 0 when every key was copied, found already on the target,
// missing or expired on the source; 1 when some failed; 2 on bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/mcclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, with its streams passed in so tests can drive it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("moneta-copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	var keysFile, fromL1 string
	fs.StringVar(&o.From, "from", "", "source host: its batch port (host:port or unix:/path), so reads do not fill its L1")
	fs.StringVar(&o.To, "to", "", "target host's batch port")
	fs.StringVar(&keysFile, "keys", "", "file with one key per line; - for stdin")
	fs.StringVar(&fromL1, "keys-from-l1", "", "list keys with lru_crawler metadump on this memcached (the source's L1: hot set only)")
	fs.StringVar(&o.Mode, "mode", "add", "store command on the target: add (keep what the target has) or set (overwrite)")
	fs.IntVar(&o.Batch, "batch", DefaultBatch, "keys per pipelined read and write round")
	fs.IntVar(&o.Concurrency, "concurrency", DefaultConcurrency, "batches in flight")
	fs.IntVar(&o.Rate, "rate", 0, "at most this many keys per second (0: no limit)")
	fs.IntVar(&o.Conns, "conns", 0, "pipelined connections to each host (0: -concurrency)")
	fs.DurationVar(&o.Timeout, "timeout", DefaultTimeout, "one batch round trip")
	fs.IntVar(&o.Retries, "retries", DefaultRetries, "retries of a batch that failed on a connection error or timeout")
	fs.DurationVar(&o.Progress, "progress", 5*time.Second, "progress line interval on stderr (0: none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		fmt.Fprintln(stderr, "moneta-copy:", err)
		return 2
	}
	var src keySource
	switch {
	case keysFile != "" && fromL1 != "":
		fmt.Fprintln(stderr, "moneta-copy: give -keys or -keys-from-l1, not both")
		return 2
	case keysFile == "-":
		src = linesSource(stdin)
	case keysFile != "":
		f, err := os.Open(keysFile)
		if err != nil {
			fmt.Fprintln(stderr, "moneta-copy:", err)
			return 2
		}
		defer f.Close()
		src = linesSource(f)
	case fromL1 != "":
		src = l1Source(fromL1)
	default:
		fmt.Fprintln(stderr, "moneta-copy: -keys or -keys-from-l1 is required")
		return 2
	}
	sum, err := copyKeys(ctx, o, src, stderr)
	fmt.Fprintln(stdout, sum)
	if err != nil {
		fmt.Fprintln(stderr, "moneta-copy:", err)
		return 1
	}
	return 0
}

// Summary is what a finished copy reports.
type Summary struct {
	Copied, Exists, Missing, Expired, Failed, Invalid, Bytes int64
	Elapsed                                                  time.Duration
}

func (s Summary) String() string {
	read := s.Copied + s.Exists + s.Missing + s.Expired + s.Failed
	secs := max(s.Elapsed.Seconds(), 1e-9)
	return fmt.Sprintf("moneta-copy: %d keys in %.2fs (%.0f keys/s, %.1f MB/s of values): copied %d, already on target %d, "+
		"missing on source %d, expired %d, failed %d, invalid key lines %d",
		read, s.Elapsed.Seconds(), float64(read)/secs, float64(s.Bytes)/secs/1e6,
		s.Copied, s.Exists, s.Missing, s.Expired, s.Failed, s.Invalid)
}

// copyKeys runs the copy: the key source feeds batches to o.Concurrency
// workers; progress lines go to progress. The error is the source's, or the
// first key failure.
func copyKeys(ctx context.Context, o Options, src keySource, progress io.Writer) (Summary, error) {
	dial := func(a string) (*mcclient.Client, error) {
		cfg := mcclient.Config{Addr: a, Conns: o.Conns, RequestTimeout: o.Timeout,
			// A copy moves values of any size rend accepts.
			MaxValueSize: 64 << 20, Logger: slog.New(slog.DiscardHandler)}
		cfg.EnsureDefaults()
		return mcclient.New(cfg)
	}
	source, err := dial(o.From)
	if err != nil {
		return Summary{}, fmt.Errorf("source %s: %w", o.From, err)
	}
	defer source.Close()
	target, err := dial(o.To)
	if err != nil {
		return Summary{}, fmt.Errorf("target %s: %w", o.To, err)
	}
	defer target.Close()

	counts := &Counts{}
	c := &copier{opt: o, src: source, dst: target, counts: counts, pace: &pacer{rate: o.Rate}, now: time.Now}
	start := time.Now()
	batches := make(chan [][]byte, o.Concurrency)
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b bufs
			for keys := range batches {
				c.copyBatch(ctx, keys, &b)
			}
		}()
	}
	done := make(chan struct{})
	if o.Progress > 0 {
		go func() {
			t := time.NewTicker(o.Progress)
			defer t.Stop()
			last, lastAt := int64(0), start
			for {
				select {
				case <-done:
					return
				case now := <-t.C:
					read := counts.Read()
					fmt.Fprintf(progress, "moneta-copy: %d keys read (copied %d, already on target %d, missing %d, expired %d, failed %d), %.0f keys/s\n",
						read, counts.Copied.Load(), counts.Exists.Load(), counts.Missing.Load(), counts.Expired.Load(),
						counts.Failed.Load(), float64(read-last)/now.Sub(lastAt).Seconds())
					last, lastAt = read, now
				}
			}
		}()
	}
	invalid, srcErr := src(ctx, o.Batch, batches)
	close(batches)
	wg.Wait()
	close(done)
	sum := Summary{
		Copied: counts.Copied.Load(), Exists: counts.Exists.Load(), Missing: counts.Missing.Load(),
		Expired: counts.Expired.Load(), Failed: counts.Failed.Load(), Invalid: invalid,
		Bytes: counts.Bytes.Load(), Elapsed: time.Since(start),
	}
	switch {
	case srcErr != nil:
		return sum, srcErr
	case c.firstErr != nil:
		return sum, fmt.Errorf("%d keys failed, first: %w", sum.Failed, c.firstErr)
	case ctx.Err() != nil:
		return sum, ctx.Err()
	}
	return sum, nil
}
