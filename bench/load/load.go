// Package load is the engine of mcload, an mc-crusher-style load generator
// for memcached-protocol servers: many connections, pipelining, multi-gets,
// key distributions, value sizes, a get/set/gat/delete/incr mix, closed-loop
// (as fast as the server answers) or open-loop at a fixed rate with latency
// measured from each request's scheduled send time (no coordinated
// omission), and optional verification of every value read.
//
// Each active connection has a writer goroutine and a reader goroutine: the
// writer sends requests (at their scheduled times in open loop) into a
// window of at most Depth in flight; the reader matches replies in order.
package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moneta-cache/moneta/bench/hist"
	"github.com/moneta-cache/moneta/bench/keydist"
	"github.com/moneta-cache/moneta/shared/addr"
)

// Mix is the share of each operation; it need not sum to 1.
type Mix struct {
	Get, Set, Gat, Delete, Incr float64
}

// ParseMix reads "get=0.9,set=0.1".
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		f, err := strconv.ParseFloat(val, 64)
		if !ok || err != nil || f < 0 {
			return m, fmt.Errorf("mix %q: want op=share,... with shares >= 0", s)
		}
		switch name {
		case "get":
			m.Get = f
		case "set":
			m.Set = f
		case "gat":
			m.Gat = f
		case "delete":
			m.Delete = f
		case "incr":
			m.Incr = f
		default:
			return m, fmt.Errorf("mix %q: unknown op %q (get, set, gat, delete, incr)", s, name)
		}
	}
	if m.Get+m.Set+m.Gat+m.Delete+m.Incr == 0 {
		return m, fmt.Errorf("mix %q: all shares are zero", s)
	}
	return m, nil
}

func (m Mix) pick(r *rand.Rand) Op {
	x := r.Float64() * (m.Get + m.Set + m.Gat + m.Delete + m.Incr)
	for i, w := range [numOps]float64{m.Get, m.Set, m.Gat, m.Delete, m.Incr} {
		if x < w {
			return Op(i)
		}
		x -= w
	}
	return OpGet
}

// Config describes one load run.
type Config struct {
	Addr     string
	Proto    string // text, meta, binary
	Conns    int    // connections opened
	Active   int    // of which send load (0 = all); the rest stay open and idle
	Depth    int    // requests in flight per active connection (pipeline depth)
	MultiGet int    // keys per get/gat
	Keys     uint64 // key space size
	KeySize  int    // bytes per key (at least prefix + digits)
	Prefix   string
	Dist     string // uniform, seq, zipf, zipf:S
	ValueMin int
	ValueMax int
	Mix      Mix
	Rate     float64 // total requests per second; 0 = closed loop
	Duration time.Duration
	Warmup   time.Duration // run before measuring
	Exptime  int
	Verify   bool
	Timeout  time.Duration // per-connection dial and read deadline
	Seed     uint64
}

// EnsureDefaults fills zero fields.
func (c *Config) EnsureDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.Conns, 50)
	def(&c.Depth, 1)
	def(&c.MultiGet, 1)
	def(&c.KeySize, 16)
	def(&c.ValueMin, 1024)
	if c.Active <= 0 || c.Active > c.Conns {
		c.Active = c.Conns
	}
	if c.ValueMax < c.ValueMin {
		c.ValueMax = c.ValueMin
	}
	if c.Keys == 0 {
		c.Keys = 100000
	}
	if c.Proto == "" {
		c.Proto = "text"
	}
	if c.Dist == "" {
		c.Dist = "uniform"
	}
	if c.Prefix == "" {
		c.Prefix = "k:"
	}
	if c.Mix == (Mix{}) {
		c.Mix = Mix{Get: 0.9, Set: 0.1}
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
}

// Validate reports a configuration that cannot run.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return errors.New("no target address")
	}
	if _, err := newWire(c.Proto); err != nil {
		return err
	}
	if _, err := keydist.New(c.Dist, c.Keys); err != nil {
		return err
	}
	if c.KeySize < len(c.Prefix)+len(strconv.FormatUint(c.Keys-1, 10)) || c.KeySize > 250 {
		return fmt.Errorf("key size %d cannot hold prefix %q and %d keys (max 250)", c.KeySize, c.Prefix, c.Keys)
	}
	if c.Verify && c.ValueMin < MinVerifiable {
		return fmt.Errorf("verification needs values of at least %d bytes", MinVerifiable)
	}
	if c.Rate < 0 {
		return errors.New("negative rate")
	}
	return nil
}

// Second is one progress sample.
type Second struct {
	T      float64 `json:"t"` // seconds since the measured phase began
	Ops    uint64  `json:"ops"`
	Errors uint64  `json:"errors"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	P999us float64 `json:"p999_us"`
}

// Result is what a run measured (after warm-up).
type Result struct {
	Config        Config                  `json:"config"`
	Elapsed       float64                 `json:"elapsed_s"`
	Ops           uint64                  `json:"ops"`
	OpsPerSec     float64                 `json:"ops_per_sec"`
	Hits          uint64                  `json:"hits"`
	Misses        uint64                  `json:"misses"`
	Errors        uint64                  `json:"errors"`
	IOErrors      uint64                  `json:"io_errors"`
	VerifyFailed  uint64                  `json:"verify_failed"`
	Latency       hist.Summary            `json:"latency"`
	PerOp         map[string]hist.Summary `json:"per_op"`
	Seconds       []Second                `json:"seconds"`
	ConnsOpen     int                     `json:"conns_open"`
	ConnectFailed int                     `json:"connect_failed"`
}

type stats struct {
	measuring            atomic.Bool
	ops, hits, misses    atomic.Uint64
	errors, ioErrors     atomic.Uint64
	verifyFailed         atomic.Uint64
	all, second          hist.Histogram
	perOp                [numOps]hist.Histogram
	secondOps, secondErr atomic.Uint64
}

// Run executes cfg against its target and reports progress lines to
// progress (nil for none) once a second.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w, _ := newWire(cfg.Proto)
	dist, _ := keydist.New(cfg.Dist, cfg.Keys)

	// Open every connection first: a 20k-connection run measures the
	// active ones while the idle ones are all established.
	conns := make([]net.Conn, 0, cfg.Conns)
	failed := 0
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < cfg.Conns; i++ {
		c, err := addr.Dial(ctx, cfg.Addr, cfg.Timeout)
		if err != nil {
			failed++
			if len(conns) == 0 {
				return nil, fmt.Errorf("connect %s: %w", cfg.Addr, err)
			}
			continue
		}
		conns = append(conns, c)
	}
	active := cfg.Active
	if active > len(conns) {
		active = len(conns)
	}

	st := &stats{}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration)
	defer cancel()
	start := time.Now()
	if cfg.Warmup > 0 {
		warm := time.AfterFunc(cfg.Warmup, func() { st.measuring.Store(true) })
		defer warm.Stop()
	} else {
		st.measuring.Store(true)
	}
	var wg sync.WaitGroup
	for i := 0; i < active; i++ {
		wk := &worker{
			cfg: &cfg, wire: w, dist: dist, st: st, conn: conns[i],
			rng:   rand.New(rand.NewPCG(cfg.Seed, uint64(i))),
			id:    uint64(i),
			start: start,
		}
		if cfg.Rate > 0 {
			// Each connection paces its own share, offset so the
			// connections' sends interleave instead of bunching.
			wk.interval = time.Duration(float64(time.Second) * float64(active) / cfg.Rate)
			wk.next = start.Add(wk.interval * time.Duration(i) / time.Duration(active))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk.run(runCtx)
		}()
	}

	res := &Result{Config: cfg, ConnsOpen: len(conns), ConnectFailed: failed, PerOp: map[string]hist.Summary{}}
	measureStart := start.Add(cfg.Warmup)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for loop := true; loop; {
		select {
		case <-done:
			loop = false
		case now := <-tick.C:
			s := Second{
				T:      now.Sub(measureStart).Seconds(),
				Ops:    st.secondOps.Swap(0),
				Errors: st.secondErr.Swap(0),
				P50us:  us(st.second.Quantile(0.5)),
				P99us:  us(st.second.Quantile(0.99)),
				P999us: us(st.second.Quantile(0.999)),
			}
			st.second.Reset()
			phase := "warmup"
			if st.measuring.Load() {
				phase = "run"
				res.Seconds = append(res.Seconds, s)
			}
			if progress != nil {
				fmt.Fprintf(progress, "%s t=%5.1fs ops/s=%8d p50=%7.1fus p99=%8.1fus p99.9=%8.1fus errors=%d\n",
					phase, s.T, s.Ops, s.P50us, s.P99us, s.P999us, s.Errors)
			}
		}
	}
	elapsed := time.Since(measureStart)
	if cfg.Warmup > 0 && elapsed > cfg.Duration {
		elapsed = cfg.Duration
	}
	res.Elapsed = elapsed.Seconds()
	res.Ops = st.ops.Load()
	res.OpsPerSec = float64(res.Ops) / res.Elapsed
	res.Hits, res.Misses = st.hits.Load(), st.misses.Load()
	res.Errors, res.IOErrors = st.errors.Load(), st.ioErrors.Load()
	res.VerifyFailed = st.verifyFailed.Load()
	res.Latency = st.all.Summarize()
	for op := Op(0); op < numOps; op++ {
		if st.perOp[op].Count() > 0 {
			res.PerOp[op.String()] = st.perOp[op].Summarize()
		}
	}
	return res, nil
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// slot is one request in flight.
type slot struct {
	req       request
	scheduled time.Time
	keyBuf    []byte
}

type worker struct {
	cfg      *Config
	wire     wire
	dist     keydist.Dist
	st       *stats
	conn     net.Conn
	rng      *rand.Rand
	id       uint64
	version  uint64
	start    time.Time
	interval time.Duration // open loop: time between this connection's sends
	next     time.Time
}

func (wk *worker) run(ctx context.Context) {
	cfg := wk.cfg
	// The window: free slots go writer -> reader -> free again, so at most
	// Depth requests are in flight and no slot is allocated after start.
	free := make(chan *slot, cfg.Depth)
	inflight := make(chan *slot, cfg.Depth)
	for i := 0; i < cfg.Depth; i++ {
		free <- &slot{keyBuf: make([]byte, 0, cfg.MultiGet*cfg.KeySize), req: request{keys: make([][]byte, 0, cfg.MultiGet)}}
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		wk.read(inflight, free)
	}()
	var pace *pacer
	if wk.interval > 0 {
		pace = newPacer()
		defer pace.close()
	}
	bw := bufio.NewWriterSize(wk.conn, 64<<10)
	value := make([]byte, cfg.ValueMax)
	var buf []byte
	defer func() {
		// Send what is buffered so every slot handed to the reader gets
		// its reply, then let the reader drain the window.
		bw.Flush()
		close(inflight)
		<-readerDone
	}()
	for {
		var s *slot
		select {
		case s = <-free:
		default:
			// Window full: push what is buffered so replies can come.
			if bw.Flush() != nil {
				return
			}
			select {
			case s = <-free:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if wk.interval > 0 {
			if d := time.Until(wk.next); d > 0 {
				if bw.Buffered() > 0 && bw.Flush() != nil {
					return
				}
				if !pace.wait(ctx, wk.next) {
					return
				}
			}
			s.scheduled = wk.next
			wk.next = wk.next.Add(wk.interval)
		} else {
			s.scheduled = time.Now()
		}
		op := cfg.Mix.pick(wk.rng)
		wk.fill(s, op)
		var v []byte
		if op == OpSet {
			n := cfg.ValueMin
			if cfg.ValueMax > cfg.ValueMin {
				n += wk.rng.IntN(cfg.ValueMax - cfg.ValueMin + 1)
			}
			v = value[:n]
			wk.version++
			FillValue(v, s.req.keys[0], wk.id<<40|wk.version)
		}
		buf = wk.wire.appendRequest(buf[:0], &s.req, v, cfg.Exptime)
		wk.conn.SetWriteDeadline(time.Now().Add(cfg.Timeout))
		if _, err := bw.Write(buf); err != nil {
			wk.st.ioErrors.Add(1)
			return
		}
		inflight <- s
		if wk.interval > 0 || len(free) == 0 {
			if bw.Flush() != nil {
				wk.st.ioErrors.Add(1)
				return
			}
		}
	}
}

// fill picks the op's keys into the slot.
func (wk *worker) fill(s *slot, op Op) {
	cfg := wk.cfg
	n := 1
	if op == OpGet || op == OpGat {
		n = cfg.MultiGet
	}
	s.req.op = op
	s.req.keys = s.req.keys[:0]
	s.keyBuf = s.keyBuf[:0]
	prefix := cfg.Prefix
	for i := 0; i < n; i++ {
		idx := wk.dist.Next(wk.rng)
		start := len(s.keyBuf)
		s.keyBuf = AppendKey(s.keyBuf, prefix, idx, cfg.KeySize)
		if op == OpIncr {
			// Counters live in their own key space: incr on a checksummed
			// value would only measure CLIENT_ERROR replies.
			s.keyBuf[start] = '#'
		}
		s.req.keys = append(s.req.keys, s.keyBuf[start:len(s.keyBuf):len(s.keyBuf)])
	}
}

// AppendKey appends prefix and idx zero-padded so the key is size bytes.
func AppendKey(dst []byte, prefix string, idx uint64, size int) []byte {
	dst = append(dst, prefix...)
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], idx, 10)
	for i := len(prefix) + len(d); i < size; i++ {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

func (wk *worker) read(inflight <-chan *slot, free chan<- *slot) {
	br := bufio.NewReaderSize(wk.conn, 64<<10)
	var scratch []byte
	broken := false
	for s := range inflight {
		if broken {
			free <- s
			continue
		}
		var check func(int, []byte) bool
		if wk.cfg.Verify {
			keys := s.req.keys
			check = func(i int, v []byte) bool { return i < len(keys) && CheckValue(v, keys[i]) }
		}
		wk.conn.SetReadDeadline(time.Now().Add(wk.cfg.Timeout))
		hits, misses, bad, err := wk.wire.readReply(br, &s.req, &scratch, check)
		lat := time.Since(s.scheduled)
		st := wk.st
		if st.measuring.Load() {
			st.ops.Add(1)
			st.hits.Add(uint64(hits))
			st.misses.Add(uint64(misses))
			st.verifyFailed.Add(uint64(bad))
			st.all.Record(lat)
			st.perOp[s.req.op].Record(lat)
		}
		st.secondOps.Add(1)
		st.second.Record(lat)
		switch {
		case errors.Is(err, errReply):
			if st.measuring.Load() {
				st.errors.Add(1)
			}
			st.secondErr.Add(1)
		case err != nil:
			// The stream cannot be trusted any more: stop this
			// connection's load, counting it, rather than misread.
			st.ioErrors.Add(1)
			wk.conn.Close()
			broken = true
		}
		free <- s
	}
}

// Preload writes every key once (sequentially, over conns connections) so
// reads measure hits; values are verifiable.
func Preload(ctx context.Context, cfg Config, progress io.Writer) error {
	cfg.EnsureDefaults()
	cfg.Dist = "seq"
	cfg.Mix = Mix{Set: 1}
	// A Rate paces the preload (open loop): a store that moves items to
	// flash in the background (memcached's extstore) drops items written
	// faster than it flushes them.
	rate := cfg.Rate
	cfg.Warmup = 0
	if cfg.Depth < 16 {
		cfg.Depth = 16
	}
	if cfg.Active > 16 {
		cfg.Active = 16
	}
	cfg.Conns = cfg.Active
	// Long enough for the whole key space; workers stop when the
	// sequence wraps.
	per := cfg.Keys
	cfg.Duration = 24 * time.Hour
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := cfg.Validate(); err != nil {
		return err
	}
	w, _ := newWire(cfg.Proto)
	seq := &keydist.Sequential{N: cfg.Keys}
	st := &stats{}
	st.measuring.Store(true)
	var wg sync.WaitGroup
	errc := make(chan error, cfg.Active)
	for i := 0; i < cfg.Active; i++ {
		c, err := addr.Dial(ctx, cfg.Addr, cfg.Timeout)
		if err != nil {
			return fmt.Errorf("preload connect: %w", err)
		}
		defer c.Close()
		wk := &worker{cfg: &cfg, wire: w, dist: limited{seq, per, cancel}, st: st, conn: c,
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i))), id: uint64(i) | 1<<20}
		if rate > 0 {
			wk.start = time.Now()
			wk.interval = time.Duration(float64(time.Second) * float64(cfg.Active) / rate)
			wk.next = wk.start.Add(wk.interval * time.Duration(i) / time.Duration(cfg.Active))
		}
		wg.Add(1)
		go func() { defer wg.Done(); wk.run(ctx) }()
	}
	wg.Wait()
	close(errc)
	if n := st.errors.Load() + st.ioErrors.Load(); n > 0 {
		return fmt.Errorf("preload: %d errors", n)
	}
	if progress != nil {
		fmt.Fprintf(progress, "preloaded %d keys\n", st.ops.Load())
	}
	return nil
}

// limited stops the run once the sequence has handed out n keys.
type limited struct {
	seq    *keydist.Sequential
	n      uint64
	cancel context.CancelFunc
}

func (l limited) Next(r *rand.Rand) uint64 {
	i := l.seq.Next(r)
	if i == l.n-1 {
		l.cancel()
	}
	return i
}

// waitTimer waits for t with the runtime's timers (false: ctx ended first).
func waitTimer(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
