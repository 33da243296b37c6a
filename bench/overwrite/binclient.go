package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
	"github.com/moneta-cache/moneta/shared/binproto"
)

// client is one binary-protocol connection with one request (or one
// pipelined batch) in flight at a time. It encodes and decodes with
// shared/binproto and keeps no state beyond its buffers, so that the
// benchmark measures the server, not a client library.
type client struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	out []byte // encoded requests, reused
	buf []byte // last response body, reused
}

func dial(a string) (*client, error) {
	nc, err := addr.Dial(context.Background(), a, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}, nil
}

func (c *client) close() { c.nc.Close() }

func (c *client) send() error {
	c.w.Write(c.out)
	c.out = c.out[:0]
	return c.w.Flush()
}

func (c *client) read() (binproto.Response, error) {
	resp, err := binproto.ReadResponse(c.r, c.buf[:0])
	c.buf = resp.Body
	return resp, err
}

// get reports whether key was a hit.
func (c *client) get(key []byte) (bool, error) {
	c.out = binproto.AppendGet(c.out, binproto.OpGet, key, 0)
	if err := c.send(); err != nil {
		return false, err
	}
	resp, err := c.read()
	return err == nil && resp.Status == binproto.StatusOK, err
}

// setBatch stores val under every key with quiet sets closed by a noop, so
// the batch costs one round trip; any error reply fails it.
func (c *client) setBatch(keys [][]byte, val []byte) error {
	for _, k := range keys {
		c.out = binproto.AppendStore(c.out, binproto.OpSetQ, k, val, 0, 0, 0, 0)
	}
	c.out = binproto.AppendSimple(c.out, binproto.OpNoop, 0)
	if err := c.send(); err != nil {
		return err
	}
	for {
		resp, err := c.read()
		if err != nil {
			return err
		}
		if resp.Opcode == binproto.OpNoop {
			return nil
		}
		if resp.Status != binproto.StatusOK {
			return fmt.Errorf("set failed: status %s: %q", resp.Status, resp.Value)
		}
	}
}

// stats returns the general stats group.
func (c *client) stats() (map[string]string, error) {
	c.out = binproto.AppendStat(c.out, nil, 0)
	if err := c.send(); err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for {
		resp, err := c.read()
		if err != nil {
			return nil, err
		}
		if resp.Status != binproto.StatusOK {
			return nil, fmt.Errorf("stat: status %s", resp.Status)
		}
		if len(resp.Key) == 0 {
			return out, nil
		}
		out[string(resp.Key)] = string(resp.Value)
	}
}
