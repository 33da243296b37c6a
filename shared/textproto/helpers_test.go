package textproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moneta-cache/moneta/shared/protocol"
)

// testNow is the fixed clock of codec tests.
var testNow = time.Unix(1_700_000_000, 0)

// memItem and memHandler are a deliberately tiny store, enough to drive the
// codec end to end in tests (the reference store is shared/memstore). Its
// CAS values start at 1 per handler.
type memItem struct {
	value   []byte
	flags   uint32
	cas     uint64
	exptime int64
}

type memHandler struct {
	items   map[string]*memItem
	lastCAS uint64
}

func newMemHandler() *memHandler { return &memHandler{items: map[string]*memItem{}} }

func (m *memHandler) lookup(k []byte) *memItem {
	it := m.items[string(k)]
	if it != nil && it.exptime != 0 && it.exptime <= testNow.Unix() {
		delete(m.items, string(k))
		return nil
	}
	return it
}

func (m *memHandler) put(k []byte, it *memItem) {
	m.lastCAS++
	it.cas = m.lastCAS
	m.items[string(k)] = it
}

// touch sets a new expiry; a past one removes the item.
func (m *memHandler) touch(k []byte, it *memItem, exptime int64) {
	exp, past := protocol.AbsExpiry(exptime, testNow)
	if past {
		delete(m.items, string(k))
		return
	}
	it.exptime = exp
}

func (m *memHandler) Handle(_ context.Context, req *protocol.Request, resp *protocol.Response) error {
	resp.Status = protocol.StatusOK
	switch req.Command {
	case protocol.CmdGet, protocol.CmdGets, protocol.CmdGat, protocol.CmdGats:
		for i, k := range req.Keys {
			it := m.lookup(k)
			if it == nil && req.Vivify {
				it = &memItem{value: []byte{}}
				it.exptime, _ = protocol.AbsExpiry(req.Exptime, testNow)
				m.put(k, it)
				resp.AppendHit(i, it.value, it.flags, it.cas, it.exptime).Win = true
				continue
			}
			if it == nil {
				continue
			}
			resp.AppendHit(i, it.value, it.flags, it.cas, it.exptime)
			if req.HasExptime {
				m.touch(k, it, req.Exptime)
			}
		}
		if len(resp.Hits) == 0 && req.Opcode != 0 {
			resp.Status = protocol.StatusNotFound
		}
	case protocol.CmdTouch:
		it := m.lookup(req.Key())
		if it == nil {
			resp.Status = protocol.StatusNotFound
			return nil
		}
		m.touch(req.Key(), it, req.Exptime)
	case protocol.CmdSet, protocol.CmdAdd, protocol.CmdReplace, protocol.CmdAppend, protocol.CmdPrepend, protocol.CmdCas:
		old := m.lookup(req.Key())
		switch {
		case req.Command == protocol.CmdCas && old == nil:
			resp.Status = protocol.StatusNotFound
		case req.Command == protocol.CmdCas && old.cas != req.CAS:
			resp.Status = protocol.StatusExists
		case req.Command == protocol.CmdAdd && old != nil,
			req.Command != protocol.CmdSet && req.Command != protocol.CmdAdd && req.Command != protocol.CmdCas && old == nil:
			resp.Status = protocol.StatusNotStored
		case req.Command == protocol.CmdAppend:
			m.put(req.Key(), &memItem{value: append(append([]byte{}, old.value...), req.Value...), flags: old.flags, exptime: old.exptime})
		case req.Command == protocol.CmdPrepend:
			m.put(req.Key(), &memItem{value: append(append([]byte{}, req.Value...), old.value...), flags: old.flags, exptime: old.exptime})
		default:
			exp, past := protocol.AbsExpiry(req.Exptime, testNow)
			if past {
				delete(m.items, string(req.Key()))
				m.lastCAS++
				break
			}
			m.put(req.Key(), &memItem{value: append([]byte{}, req.Value...), flags: req.Flags, exptime: exp})
		}
		if resp.Status == protocol.StatusOK {
			resp.CAS = m.lastCAS
		}
	case protocol.CmdDelete:
		it := m.lookup(req.Key())
		switch {
		case it == nil:
			resp.Status = protocol.StatusNotFound
		case req.CAS != 0 && it.cas != req.CAS:
			resp.Status = protocol.StatusExists
		default:
			delete(m.items, string(req.Key()))
		}
	case protocol.CmdIncr, protocol.CmdDecr:
		it := m.lookup(req.Key())
		if it == nil {
			if !req.Vivify {
				resp.Status = protocol.StatusNotFound
				return nil
			}
			it = &memItem{value: strconv.AppendUint(nil, req.Initial, 10)}
			m.put(req.Key(), it)
			resp.Number, resp.CAS = req.Initial, it.cas
			return nil
		}
		if req.CAS != 0 && req.CAS != it.cas {
			resp.Status = protocol.StatusExists
			return nil
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(it.value)), 10, 64)
		if err != nil {
			resp.Status = protocol.StatusNonNumeric
			return nil
		}
		if req.Command == protocol.CmdIncr {
			v += req.Delta
		} else if req.Delta > v {
			v = 0
		} else {
			v -= req.Delta
		}
		digits := strconv.AppendUint(nil, v, 10)
		if len(digits) < len(it.value) {
			// memcached rewrites a shorter number in place, space padded.
			digits = append(digits, bytes.Repeat([]byte(" "), len(it.value)-len(digits))...)
		}
		it.value = digits
		m.lastCAS++
		it.cas = m.lastCAS
		resp.Number, resp.CAS = v, it.cas
	case protocol.CmdFlushAll:
		clear(m.items)
	case protocol.CmdVersion:
		resp.Message = "1.6.18"
	case protocol.CmdStats:
		switch string(req.Args) {
		case "":
			resp.Stats = append(resp.Stats, protocol.Stat{Name: "pid", Value: "1"})
		case "reset":
		default:
			resp.Status = protocol.StatusNotFound
		}
	case protocol.CmdVerbosity:
	}
	return nil
}

// serve runs input through a codec and handler the way the server loop
// does and returns everything written, and whether the connection closed
// on a codec decision (ErrClose or quit) rather than at the end of input.
func serve(c *ServerCodec, h protocol.Handler, r io.Reader, bufSize int) (out string, closed bool) {
	var buf bytes.Buffer
	br := bufio.NewReaderSize(r, bufSize)
	bw := bufio.NewWriter(&buf)
	c.Reset(br, bw)
	defer c.Reset(nil, nil)
	var req protocol.Request
	var resp protocol.Response
	for {
		err := c.ReadRequest(&req)
		if errors.Is(err, protocol.ErrReplied) {
			continue
		}
		if err != nil {
			bw.Flush()
			return buf.String(), errors.Is(err, protocol.ErrClose)
		}
		resp.Reset()
		if req.Command != protocol.CmdNoop && req.Command != protocol.CmdQuit {
			h.Handle(context.Background(), &req, &resp)
		}
		c.WriteResponse(&req, &resp)
		if req.Command == protocol.CmdQuit {
			bw.Flush()
			return buf.String(), true
		}
	}
}

func newTestCodec() *ServerCodec {
	c := NewServerCodec(protocol.Limits{})
	c.now = func() time.Time { return testNow }
	return c
}

// run serves input whole through a fresh codec and handler.
func run(input string) (string, bool) {
	return serve(newTestCodec(), newMemHandler(), strings.NewReader(input), 4096)
}
