package binproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// memHandler is a tiny in-memory store with memcached's semantics, enough
// for the codec's tests (the full reference store lives elsewhere).
type memHandler struct {
	mu    sync.Mutex
	items map[string]*memItem
	cas   uint64
	now   func() time.Time
}

type memItem struct {
	value []byte
	flags uint32
	cas   uint64
	exp   int64 // absolute unix seconds, 0 never
}

func newMemHandler() *memHandler {
	return &memHandler{items: map[string]*memItem{}, now: time.Now}
}

func (m *memHandler) nextCAS() uint64 {
	m.cas++
	return m.cas
}

// lookup returns a live item, dropping an expired one.
func (m *memHandler) lookup(k string) *memItem {
	it := m.items[k]
	if it == nil {
		return nil
	}
	if it.exp != 0 && it.exp <= m.now().Unix() {
		delete(m.items, k)
		return nil
	}
	return it
}

func (m *memHandler) Handle(_ context.Context, req *protocol.Request, resp *protocol.Response) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	k := string(req.Key())
	switch req.Command {
	case protocol.CmdGet, protocol.CmdGets, protocol.CmdGat, protocol.CmdGats:
		for i, key := range req.Keys {
			it := m.lookup(string(key))
			if it == nil {
				continue
			}
			if req.Command == protocol.CmdGat || req.Command == protocol.CmdGats {
				abs, expired := protocol.AbsExpiry(req.Exptime, now)
				if expired {
					// memcached returns the hit, then it is gone.
					resp.AppendHit(i, it.value, it.flags, it.cas, it.exp)
					delete(m.items, string(key))
					continue
				}
				it.exp = abs
			}
			resp.AppendHit(i, it.value, it.flags, it.cas, it.exp)
		}
		if len(resp.Hits) == 0 {
			resp.Status = protocol.StatusNotFound
		}
	case protocol.CmdTouch:
		it := m.lookup(k)
		if it == nil {
			resp.Status = protocol.StatusNotFound
			break
		}
		it.exp, _ = protocol.AbsExpiry(req.Exptime, now)
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdCas:
		old := m.lookup(k)
		switch {
		case req.Command == protocol.CmdAdd && old != nil,
			req.Command == protocol.CmdReplace && old == nil:
			resp.Status = protocol.StatusNotStored
			return nil
		case req.Command == protocol.CmdCas && old == nil:
			resp.Status = protocol.StatusNotFound
			return nil
		case req.Command == protocol.CmdCas && old.cas != req.CAS:
			resp.Status = protocol.StatusExists
			return nil
		}
		abs, expired := protocol.AbsExpiry(req.Exptime, now)
		it := &memItem{value: append([]byte(nil), req.Value...), flags: req.Flags, cas: m.nextCAS(), exp: abs}
		if expired {
			delete(m.items, k)
		} else {
			m.items[k] = it
		}
		resp.CAS = it.cas
	case protocol.CmdAppend, protocol.CmdPrepend:
		old := m.lookup(k)
		if old == nil {
			resp.Status = protocol.StatusNotStored
			return nil
		}
		if req.CAS != 0 && req.CAS != old.cas {
			resp.Status = protocol.StatusExists
			return nil
		}
		if req.Command == protocol.CmdAppend {
			old.value = append(append([]byte(nil), old.value...), req.Value...)
		} else {
			old.value = append(append([]byte(nil), req.Value...), old.value...)
		}
		old.cas = m.nextCAS()
		resp.CAS = old.cas
	case protocol.CmdDelete:
		old := m.lookup(k)
		switch {
		case old == nil:
			resp.Status = protocol.StatusNotFound
		case req.CAS != 0 && req.CAS != old.cas:
			resp.Status = protocol.StatusExists
		default:
			delete(m.items, k)
		}
	case protocol.CmdIncr, protocol.CmdDecr:
		old := m.lookup(k)
		if old == nil {
			if !req.Vivify {
				resp.Status = protocol.StatusNotFound
				return nil
			}
			abs, _ := protocol.AbsExpiry(req.Exptime, now)
			it := &memItem{value: strconv.AppendUint(nil, req.Initial, 10), cas: m.nextCAS(), exp: abs}
			m.items[k] = it
			resp.Number, resp.CAS = req.Initial, it.cas
			return nil
		}
		if req.CAS != 0 && req.CAS != old.cas {
			resp.Status = protocol.StatusExists
			return nil
		}
		n, err := strconv.ParseUint(strings.TrimRight(string(old.value), " "), 10, 64)
		if err != nil || len(old.value) == 0 {
			resp.Status = protocol.StatusNonNumeric
			return nil
		}
		if req.Command == protocol.CmdIncr {
			n += req.Delta
		} else if req.Delta > n {
			n = 0
		} else {
			n -= req.Delta
		}
		v := strconv.AppendUint(nil, n, 10)
		if len(v) < len(old.value) {
			// memcached rewrites a shorter number in place, space padded.
			v = append(v, bytes.Repeat([]byte{' '}, len(old.value)-len(v))...)
		}
		old.value = v
		old.cas = m.nextCAS()
		resp.Number, resp.CAS = n, old.cas
	case protocol.CmdFlushAll:
		if req.Exptime == 0 {
			clear(m.items)
		}
	case protocol.CmdStats:
		switch {
		case len(req.Args) == 0:
			resp.Stats = append(resp.Stats, protocol.Stat{Name: "pid", Value: "1"}, protocol.Stat{Name: "curr_items", Value: strconv.Itoa(len(m.items))})
		case bytes.HasPrefix(req.Args, []byte("reset")):
		default:
			resp.Status = protocol.StatusNotFound
		}
	case protocol.CmdVersion:
		resp.Message = "1.6.18"
	default:
		resp.ServerError("unexpected command")
	}
	return nil
}

// serve runs the connection loop the server package runs, reduced to what
// the codec contract says: read, handle, write, flush when nothing more is
// buffered, close on ErrClose, quit or I/O errors.
func serve(conn io.ReadWriteCloser, h protocol.Handler, lim protocol.Limits, bufSize int) {
	defer conn.Close()
	r := bufio.NewReaderSize(conn, bufSize)
	w := bufio.NewWriter(conn)
	c := NewServerCodec(lim)
	// Each run has a budget of its own, small enough that values over
	// about 1000 bytes are refused.
	budget := protocol.NewBudget(900)
	c.SetBudget(budget)
	defer func() {
		c.Reset(nil, nil)
		if u := budget.Used(); u != 0 {
			panic(fmt.Sprintf("the value budget still holds %d bytes after the connection", u))
		}
	}()
	c.Reset(r, w)
	var req protocol.Request
	var resp protocol.Response
	for {
		err := c.ReadRequest(&req)
		switch {
		case err == nil:
			resp.Reset()
			if req.Command != protocol.CmdNoop && req.Command != protocol.CmdQuit {
				if herr := h.Handle(context.Background(), &req, &resp); herr != nil && resp.Status == protocol.StatusOK {
					resp.ServerError("handler failed")
				}
			}
			if werr := c.WriteResponse(&req, &resp); werr != nil {
				return
			}
			if req.Command == protocol.CmdQuit {
				w.Flush()
				return
			}
		case errors.Is(err, protocol.ErrReplied):
		case errors.Is(err, protocol.ErrClose):
			w.Flush()
			return
		default:
			w.Flush()
			return
		}
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}

// runCodec feeds input through the codec with handler h and returns what it
// wrote and the requests it parsed. wrap lets tests chunk the input.
func runCodec(input []byte, h protocol.Handler, lim protocol.Limits, wrap func(io.Reader) io.Reader, bufSize int) (out []byte, reqs []string) {
	var buf bytes.Buffer
	rd := io.Reader(bytes.NewReader(input))
	if wrap != nil {
		rd = wrap(rd)
	}
	r := bufio.NewReaderSize(rd, bufSize)
	w := bufio.NewWriter(&buf)
	c := NewServerCodec(lim)
	c.Reset(r, w)
	var req protocol.Request
	var resp protocol.Response
	for {
		err := c.ReadRequest(&req)
		if err == nil {
			reqs = append(reqs, describe(&req))
			resp.Reset()
			if req.Command != protocol.CmdNoop && req.Command != protocol.CmdQuit {
				h.Handle(context.Background(), &req, &resp)
			}
			c.WriteResponse(&req, &resp)
			if req.Command == protocol.CmdQuit {
				reqs = append(reqs, "<quit>")
				break
			}
			continue
		}
		if errors.Is(err, protocol.ErrReplied) {
			reqs = append(reqs, "<replied>")
			continue
		}
		reqs = append(reqs, "<"+err.Error()+">")
		break
	}
	w.Flush()
	return buf.Bytes(), reqs
}

// describe renders the request fields a codec sets, for comparisons.
func describe(r *protocol.Request) string {
	var b strings.Builder
	b.WriteString(r.Command.String())
	for _, k := range r.Keys {
		b.WriteString(" k=" + strconv.Quote(string(k)))
	}
	if r.Value != nil {
		b.WriteString(" v=" + strconv.Quote(string(r.Value)))
	}
	b.WriteString(" flags=" + strconv.FormatUint(uint64(r.Flags), 10))
	if r.HasExptime {
		b.WriteString(" exp=" + strconv.FormatInt(r.Exptime, 10))
	}
	b.WriteString(" cas=" + strconv.FormatUint(r.CAS, 10))
	if r.Command == protocol.CmdIncr || r.Command == protocol.CmdDecr {
		b.WriteString(" delta=" + strconv.FormatUint(r.Delta, 10) + " init=" + strconv.FormatUint(r.Initial, 10) + " viv=" + strconv.FormatBool(r.Vivify))
	}
	b.WriteString(" want=" + strconv.Itoa(int(r.Want)))
	if r.Args != nil {
		b.WriteString(" args=" + strconv.Quote(string(r.Args)))
	}
	b.WriteString(" q=" + strconv.FormatBool(r.Quiet))
	b.WriteString(" op=" + Opcode(r.Opcode).String())
	b.WriteString(" opaque=" + strconv.FormatUint(uint64(r.Opaque), 16))
	return b.String()
}

// startOurs serves the codec with h on a Unix socket for the test's lifetime.
func startOurs(t testing.TB, h protocol.Handler, lim protocol.Limits) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ours.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(conn, h, lim, 4096)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return "unix:" + sock
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", strings.TrimPrefix(addr, "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// decodeAll splits a reply stream into packets (the tail, if incomplete, is
// returned as an error).
func decodeAll(b []byte) ([]Response, error) {
	r := bufio.NewReader(bytes.NewReader(b))
	var out []Response
	for {
		resp, err := ReadResponse(r, nil)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, resp)
	}
}
