package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
)

// A session runs one script: its connections, steps, variables and the
// rewrite of its expectations.

// clientConn is one connection of a script.
type clientConn struct {
	nc      net.Conn
	decided bool // the protocol is fixed (something was written)
	bin     bool
	buf     []byte // received, not yet consumed
	closed  bool   // the server closed it
	partial bool   // the last step was nosync: it may have left a request unfinished
}

// reporter is the part of testing.T a script run uses (a fake in this
// package's own tests).
type reporter interface {
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// session runs one script.
type session struct {
	t     reporter
	addr  string
	opts  runOptions
	s     *script
	conns map[string]*clientConn
	names *casNames
}

func runScript(t reporter, address string, s *script, opts runOptions) {
	if err := flushAll(address, opts.timeout); err != nil {
		t.Fatalf("%s: before the script: %v", s.path, err)
	}
	ss := &session{t: t, addr: address, opts: opts, s: s, conns: map[string]*clientConn{}, names: newCASNames()}
	defer ss.closeAll()
	wants := make([][]string, len(s.steps))
	for i := range s.steps {
		wants[i] = ss.step(&s.steps[i])
	}
	names := make([]string, 0, len(ss.conns))
	for name := range ss.conns {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ss.drain(name, ss.conns[name])
	}
	if opts.rewrite {
		ss.save(wants)
	}
}

// drain checks that nothing but the answer to one last request arrives on
// a connection the script leaves open: a reply the server sent beyond the
// expectations, too late to be seen by its step, shows up here. The last
// request is "version" on a text connection (its reply cannot be mistaken
// for a trailing MN) and the sync noop on a binary one.
func (ss *session) drain(name string, cc *clientConn) {
	if cc.closed || !cc.decided {
		return
	}
	req := []byte("version\r\n")
	if cc.bin {
		req = syncRequest(true)
	}
	deadline := time.Now().Add(ss.opts.timeout)
	cc.nc.SetDeadline(deadline)
	if _, err := cc.nc.Write(req); err != nil {
		ss.t.Fatalf("%s: connection %s after the last step: %v", ss.s.path, name, err)
	}
	end := func() int {
		if cc.bin {
			return syncAt(cc.buf, true)
		}
		if !bytes.HasSuffix(cc.buf, crlf) {
			return -1
		}
		start := 0
		if i := bytes.LastIndex(cc.buf[:len(cc.buf)-2], crlf); i >= 0 {
			start = i + 2
		}
		if bytes.HasPrefix(cc.buf[start:], []byte("VERSION ")) {
			return start
		}
		return -1
	}
	chunk := make([]byte, 4096)
	for {
		if n := end(); n >= 0 {
			if n > 0 {
				r := renderer{names: ss.names}
				ss.t.Fatalf("%s: connection %s: unexpected reply after the last step:\n    %s",
					ss.s.path, name, strings.Join(r.render(cc.buf[:n], cc.bin, false), "\n    "))
			}
			return
		}
		n, err := cc.nc.Read(chunk)
		cc.buf = append(cc.buf, chunk[:n]...)
		if err != nil {
			r := renderer{names: ss.names}
			ss.t.Fatalf("%s: connection %s after the last step: %v; received:\n    %s",
				ss.s.path, name, err, strings.Join(r.render(cc.buf, cc.bin, false), "\n    "))
		}
	}
}

// save writes the script with its new expectations if they changed.
func (ss *session) save(wants [][]string) {
	s := ss.s
	out := s.rewrite(wants)
	if out == strings.Join(s.lines, "\n")+"\n" {
		return
	}
	p := filepath.Join(ss.opts.dir, filepath.FromSlash(s.path))
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		ss.t.Fatalf("rewrite %s: %v", p, err)
	}
	ss.t.Logf("rewrote %s", p)
}

func (ss *session) closeAll() {
	for _, cc := range ss.conns {
		cc.nc.Close()
	}
}

// where prefixes a message with the step's position.
func (ss *session) where(st *step) string {
	return fmt.Sprintf("%s:%d: %s", ss.s.path, st.line, st.text)
}

// lookup resolves script variables.
func (ss *session) lookup(name string) (uint64, bool) {
	if name == "now" {
		return uint64(time.Now().Unix()), true
	}
	v, ok := ss.names.byName[name]
	return v, ok
}

// conn returns the named connection, dialing it if needed.
func (ss *session) conn(name string) *clientConn {
	if cc, ok := ss.conns[name]; ok && !cc.closed {
		return cc
	}
	ctx, cancel := context.WithTimeout(context.Background(), ss.opts.timeout)
	defer cancel()
	nc, err := addr.Dial(ctx, ss.addr, ss.opts.timeout)
	if err != nil {
		ss.t.Fatalf("%s: connect %s: %v", ss.s.path, name, err)
	}
	cc := &clientConn{nc: nc}
	ss.conns[name] = cc
	return cc
}

// request builds the bytes a step sends.
func (ss *session) request(st *step) ([]byte, error) {
	var out []byte
	for i, l := range st.body {
		var err error
		switch st.kind {
		case stepSend:
			var cont bool
			out, cont, err = unescape(out, l, ss.lookup)
			if err == nil && !cont {
				out = append(out, crlf...)
			}
		case stepSendBin:
			if strings.TrimSpace(l) == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
				continue
			}
			var pkt []byte
			pkt, err = buildBinLine(l, ss.lookup)
			out = append(out, pkt...)
		case stepSendHex:
			out, err = buildHexLine(out, l, ss.lookup)
		}
		if err != nil {
			return nil, fmt.Errorf("request line %d: %v", st.line+1+i, err)
		}
	}
	return out, nil
}

// step runs one step and returns what a rewrite records for it (nil: keep).
func (ss *session) step(st *step) []string {
	t := ss.t
	switch st.kind {
	case stepSleep:
		time.Sleep(st.sleep)
		return nil
	case stepClose:
		if cc, ok := ss.conns[st.conn]; ok {
			cc.nc.Close()
			delete(ss.conns, st.conn)
		}
		return nil
	}
	cc := ss.conn(st.conn)
	var end time.Time
	if st.poll > 0 {
		end = time.Now().Add(st.poll)
	}
	for {
		req, err := ss.request(st)
		if err != nil {
			t.Fatalf("%s: %v", ss.where(st), err)
		}
		x := ss.exchange(cc, req, st)
		if x.closed {
			cc.closed = true
			cc.nc.Close()
		}
		switch {
		case x.timedOut:
			t.Fatalf("%s: no complete reply within %v%s", ss.where(st), ss.opts.timeout, ss.diff(st, x.lines))
		case ss.opts.rewrite && st.poll == 0:
			if st.shape && len(st.want) > 0 {
				if !x.matched {
					t.Fatalf("%s: memcached's reply lacks expected lines%s", ss.where(st), ss.diff(st, x.lines))
				}
				return nil
			}
			return x.lines
		case x.matched:
			return nil
		case st.poll > 0 && !x.closed && time.Now().Before(end):
			time.Sleep(pollInterval)
			continue
		}
		what := "reply differs"
		if st.poll > 0 {
			what = fmt.Sprintf("reply still differs after polling for %v", st.poll)
		}
		t.Fatalf("%s: %s%s", ss.where(st), what, ss.diff(st, x.lines))
	}
}

// diff formats a mismatch for a failure message.
func (ss *session) diff(st *step, got []string) string {
	var sb strings.Builder
	sb.WriteString("\nrequest:\n")
	for _, l := range st.body {
		sb.WriteString("    " + l + "\n")
	}
	if st.shape {
		sb.WriteString("reply (shape: every - line must appear; -want +got):\n")
	} else {
		sb.WriteString("reply (-want +got):\n")
	}
	sb.WriteString(lineDiff(st.want, got))
	return sb.String()
}

// exchangeResult is the outcome of one request/reply exchange.
type exchangeResult struct {
	lines    []string // rendered reply
	matched  bool
	closed   bool
	timedOut bool
}

// syncRequest is what follows each request so that the end of its reply is
// recognisable.
func syncRequest(bin bool) []byte {
	if !bin {
		return []byte("mn\r\n")
	}
	p := make([]byte, binHeaderLen)
	p[0] = magicRequest
	p[1] = 0x0a // noop
	binary.BigEndian.PutUint32(p[12:], syncOpaque)
	return p
}

// syncAt returns where the reply to the synchronisation request starts in b
// if b ends with it, or -1.
func syncAt(b []byte, bin bool) int {
	if !bin {
		if bytes.HasSuffix(b, []byte("MN\r\n")) && (len(b) == 4 || b[len(b)-5] == '\n') {
			return len(b) - 4
		}
		return -1
	}
	isSync := func(p []byte) bool {
		h := parseBinHeader(p)
		return h.magic == magicReply && h.op == 0x0a && h.status == 0 && h.bodyLen == 0 && h.opaque == syncOpaque
	}
	pos := 0
	for pos+binHeaderLen <= len(b) && b[pos] == magicReply {
		total := binHeaderLen + int(binary.BigEndian.Uint32(b[pos+8:]))
		if pos+total > len(b) {
			return -1
		}
		if pos+total == len(b) && total == binHeaderLen && isSync(b[pos:]) {
			return pos
		}
		pos += total
	}
	// Not framed (garbage before it): accept a trailing sync reply anyway.
	if pos < len(b) && len(b) >= binHeaderLen && isSync(b[len(b)-binHeaderLen:]) {
		return len(b) - binHeaderLen
	}
	return -1
}

// exchange writes req (plus the sync request) and reads the reply.
func (ss *session) exchange(cc *clientConn, req []byte, st *step) exchangeResult {
	if !cc.decided {
		cc.decided = true
		cc.bin = len(req) > 0 && req[0] == magicRequest
	} else if len(req) > 0 && (req[0] == magicRequest) != cc.bin && !st.nosync && !cc.partial {
		proto := map[bool]string{false: "text", true: "binary"}
		ss.t.Fatalf("%s: connection %q speaks %s (its first byte chose); use conn=NAME for %s requests",
			ss.where(st), st.conn, proto[cc.bin], proto[!cc.bin])
	}
	// After a nosync step the server may be inside a request, and the
	// next bytes continue it whatever they look like.
	cc.partial = st.nosync
	payload := req
	if !st.nosync {
		payload = append(slices.Clip(req), syncRequest(cc.bin)...)
	}
	deadline := time.Now().Add(ss.opts.timeout)
	// Write from another goroutine: a server may answer a large pipeline
	// while we are still writing it, and must not block on us.
	werr := make(chan error, 1)
	cc.nc.SetWriteDeadline(deadline)
	go func() {
		_, err := cc.nc.Write(payload)
		werr <- err
	}()
	defer func() { <-werr }()

	// render uses a copy of the CAS names, committed only if the reply is
	// accepted, so a reply judged too early leaves no trace.
	render := func(b []byte, closed bool) ([]string, *casNames) {
		r := renderer{names: ss.names.clone(), shape: st.shape}
		return r.render(b, cc.bin, closed), r.names
	}
	check := func(lines []string) bool {
		if ss.opts.rewrite && st.poll == 0 && !(st.shape && len(st.want) > 0) {
			return false
		}
		return matches(st.want, lines, st.shape)
	}
	finish := func(n int, closed, timedOut bool) exchangeResult {
		lines, names := render(cc.buf[:n], closed)
		x := exchangeResult{lines: lines, closed: closed, timedOut: timedOut}
		if timedOut {
			x.lines = append(x.lines, timeoutMarker)
		}
		x.matched = !timedOut && matches(st.want, lines, st.shape)
		if x.matched || (ss.opts.rewrite && st.poll == 0) {
			ss.names = names
		}
		cc.buf = cc.buf[len(cc.buf):]
		return x
	}
	chunk := make([]byte, 64<<10)
	for {
		limit := deadline
		if !st.nosync {
			if n := syncAt(cc.buf, cc.bin); n >= 0 {
				lines, _ := render(cc.buf[:n], false)
				if check(lines) && !(!cc.bin && len(lines) > 0 && lines[len(lines)-1] == "MN") {
					return finish(n, false, false)
				}
				// Not a match (or recording), or a text reply that ends
				// with MN: what looks like the sync reply may be the step's
				// own; wait briefly for more.
				limit = time.Now().Add(settle)
			}
		} else {
			if lines, _ := render(cc.buf, false); check(lines) && len(cc.buf) > 0 {
				return finish(len(cc.buf), false, false)
			}
			limit = time.Now().Add(nosyncIdle)
		}
		if limit.After(deadline) {
			limit = deadline
		}
		cc.nc.SetReadDeadline(limit)
		n, err := cc.nc.Read(chunk)
		cc.buf = append(cc.buf, chunk[:n]...)
		if n > 0 {
			continue
		}
		var ne net.Error
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err):
			end := len(cc.buf)
			if !st.nosync {
				if n := syncAt(cc.buf, cc.bin); n >= 0 {
					end = n
				}
			}
			return finish(end, true, false)
		case errors.As(err, &ne) && ne.Timeout():
			if st.nosync {
				return finish(len(cc.buf), false, false)
			}
			if n := syncAt(cc.buf, cc.bin); n >= 0 {
				return finish(n, false, false)
			}
			return finish(len(cc.buf), false, true)
		default:
			ss.t.Fatalf("%s: read: %v", ss.where(st), err)
		}
	}
}

// isReset reports a connection reset by the peer, which a server that closes
// with unread input causes.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// lineDiff renders a line diff of want and got (-want +got), from a longest
// common subsequence.
func lineDiff(want, got []string) string {
	n, m := len(want), len(got)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == got[j]:
			sb.WriteString("    " + want[i] + "\n")
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			sb.WriteString("  + " + got[j] + "\n")
			j++
		default:
			sb.WriteString("  - " + want[i] + "\n")
			i++
		}
	}
	if n == 0 && m == 0 {
		sb.WriteString("    (both empty)\n")
	}
	return sb.String()
}
