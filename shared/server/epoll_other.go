//go:build !linux

package server

// The event loop is Linux only (epoll_linux.go); elsewhere every
// connection runs on its own goroutine and these are never reached.

const loopSupported = false

type looped struct {
	loop   *netLoop
	loopIO bool
	full   bool
}

type netLoop struct{}

func (l *netLoop) forget(*conn)              {}
func (s *Server) startLooped(*conn) bool     { return false }
func (s *Server) stopLoops()                 {}
func (c *conn) writeNow([]byte) (int, error) { panic("server: no event loop") }
