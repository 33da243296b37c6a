package conformance

import (
	"fmt"
	"strings"
	"time"
)

// stepKind is what a step does.
type stepKind uint8

const (
	stepSend    stepKind = iota // text request lines
	stepSendBin                 // binary packets described field by field
	stepSendHex                 // raw bytes in hex
	stepSleep
	stepClose
)

// defaultConn is the connection used when a step names none.
const defaultConn = "main"

// step is one directive of a script with its request and expected reply.
type step struct {
	kind stepKind
	line int    // 1-based line number of the directive
	text string // the directive line as written

	conn   string
	nosync bool
	shape  bool
	poll   time.Duration // > 0: repeat until the reply matches
	sleep  time.Duration

	body []string // request lines as written (escapes not yet applied)
	want []string // expected reply, rendered form

	// wantStart and wantEnd delimit, as 0-based line indexes [start, end),
	// the lines of the file holding "----" and the expected reply, so that a
	// rewrite can replace exactly them.
	wantStart, wantEnd int
}

// script is one parsed script file.
type script struct {
	group, name string
	path        string   // path inside the scripts file system
	lines       []string // the file's lines, for rewriting
	steps       []step
}

const separator = "----"

// parseScript parses a script file. path is used in error messages.
func parseScript(path string, data []byte) (*script, error) {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	text = strings.TrimSuffix(text, "\n")
	var lines []string
	if text != "" {
		lines = strings.Split(text, "\n")
	}
	s := &script{path: path, lines: lines}
	for i := 0; i < len(lines); {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			i++
			continue
		}
		st, err := parseDirective(l)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, i+1, err)
		}
		st.line = i + 1
		st.text = l
		i++
		if st.kind == stepSleep || st.kind == stepClose {
			s.steps = append(s.steps, st)
			continue
		}
		for i < len(lines) && lines[i] != separator {
			st.body = append(st.body, lines[i])
			i++
		}
		if i == len(lines) {
			return nil, fmt.Errorf("%s:%d: %q has no %q line", path, st.line, l, separator)
		}
		st.wantStart = i
		i++
		if i < len(lines) && lines[i] == separator {
			// Doubled separators: the block ends at the next pair.
			i++
			for {
				if i+1 >= len(lines) {
					return nil, fmt.Errorf("%s:%d: unterminated %s%s block", path, st.wantStart+1, separator, separator)
				}
				if lines[i] == separator && lines[i+1] == separator {
					i += 2
					break
				}
				st.want = append(st.want, lines[i])
				i++
			}
		} else {
			for i < len(lines) && lines[i] != "" {
				st.want = append(st.want, lines[i])
				i++
			}
		}
		st.wantEnd = i
		s.steps = append(s.steps, st)
	}
	return s, nil
}

// parseDirective parses a directive line into a step without body.
func parseDirective(l string) (step, error) {
	f := strings.Fields(l)
	st := step{conn: defaultConn}
	switch f[0] {
	case "send":
		st.kind = stepSend
	case "sendbin":
		st.kind = stepSendBin
	case "sendhex":
		st.kind = stepSendHex
	case "sleep":
		st.kind = stepSleep
		if len(f) != 2 {
			return st, fmt.Errorf("sleep wants one duration")
		}
		d, err := time.ParseDuration(f[1])
		if err != nil || d <= 0 || d > time.Minute {
			return st, fmt.Errorf("bad sleep duration %q", f[1])
		}
		st.sleep = d
		return st, nil
	case "close":
		st.kind = stepClose
	default:
		return st, fmt.Errorf("unknown directive %q", f[0])
	}
	for _, opt := range f[1:] {
		name, val, hasVal := strings.Cut(opt, "=")
		switch {
		case name == "conn" && hasVal && val != "":
			st.conn = val
		case st.kind == stepClose:
			return st, fmt.Errorf("close takes only conn=")
		case name == "nosync" && !hasVal:
			st.nosync = true
		case name == "shape" && !hasVal:
			st.shape = true
		case name == "poll" && hasVal:
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 || d > time.Minute {
				return st, fmt.Errorf("bad poll duration %q", val)
			}
			st.poll = d
		default:
			return st, fmt.Errorf("unknown option %q", opt)
		}
	}
	if st.poll > 0 && st.nosync {
		return st, fmt.Errorf("poll and nosync do not mix")
	}
	return st, nil
}

// formatWant renders the "----" block of an expectation.
func formatWant(want []string) []string {
	double := false
	for _, l := range want {
		if l == "" {
			double = true
		}
	}
	out := []string{separator}
	if double {
		out = append(out, separator)
	}
	out = append(out, want...)
	if double {
		out = append(out, separator, separator)
	}
	return out
}

// rewrite returns the script's text with the expectations replaced by wants
// (indexed like s.steps; nil entries keep the old block).
func (s *script) rewrite(wants [][]string) string {
	var out []string
	next := 0
	for i, st := range s.steps {
		if st.kind == stepSleep || st.kind == stepClose || wants[i] == nil {
			continue
		}
		out = append(out, s.lines[next:st.wantStart]...)
		out = append(out, formatWant(wants[i])...)
		next = st.wantEnd
	}
	out = append(out, s.lines[next:]...)
	return strings.Join(out, "\n") + "\n"
}
