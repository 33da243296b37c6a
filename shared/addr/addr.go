// Package addr parses the address syntax used on every moneta command line
// and config file: "host:port" for TCP, "unix:/path/to.sock" (or a bare path
// starting with "/" or ".") for a Unix socket.
package addr

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Parse splits s into a network ("tcp" or "unix") and an address for net.Dial
// or net.Listen.
func Parse(s string) (network, address string, err error) {
	switch {
	case s == "":
		return "", "", fmt.Errorf("empty address")
	case strings.HasPrefix(s, "unix:"):
		p := strings.TrimPrefix(s, "unix:")
		if p == "" {
			return "", "", fmt.Errorf("address %q: empty socket path", s)
		}
		return "unix", p, nil
	case strings.HasPrefix(s, "/"), strings.HasPrefix(s, "./"), strings.HasPrefix(s, "../"):
		return "unix", s, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return "", "", fmt.Errorf("address %q: want host:port or unix:/path: %w", s, err)
	}
	return "tcp", s, nil
}

// Dial connects to s with a timeout.
func Dial(ctx context.Context, s string, timeout time.Duration) (net.Conn, error) {
	network, address, err := Parse(s)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(ctx, network, address)
}

// Listen listens on s. For a Unix socket a stale socket file left by a
// previous process is removed first, and the socket's mode is set to mode
// (0 keeps the umask's choice).
func Listen(s string, mode os.FileMode) (net.Listener, error) {
	network, address, err := Parse(s)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			// Only remove it if nobody answers: a live server keeps its socket.
			if c, err := net.DialTimeout("unix", address, 100*time.Millisecond); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen %s: another process is serving on this socket", s)
			}
			os.Remove(address)
		}
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", s, err)
	}
	if network == "unix" && mode != 0 {
		if err := os.Chmod(address, mode); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chmod socket %s: %w", address, err)
		}
	}
	return ln, nil
}
