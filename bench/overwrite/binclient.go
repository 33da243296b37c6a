package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/moneta-cache/moneta/shared/addr"
)

// Binary protocol opcodes used here.
const (
	opGet  = 0x00
	opSetQ = 0x11
	opNoop = 0x0a
	opStat = 0x10
)

// client is one binary-protocol connection with one request (or one
// pipelined batch) in flight at a time. It is deliberately minimal so that
// the benchmark measures the server, not a client library.
type client struct {
	nc  net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	hdr [24]byte
	buf []byte
}

func dial(a string) (*client, error) {
	nc, err := addr.Dial(context.Background(), a, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &client{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}, nil
}

func (c *client) close() { c.nc.Close() }

func (c *client) writeHeader(op byte, keyLen, extLen, bodyLen int) {
	h := c.hdr[:]
	clear(h)
	h[0] = 0x80
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(keyLen))
	h[4] = byte(extLen)
	binary.BigEndian.PutUint32(h[8:], uint32(bodyLen))
	c.w.Write(h)
}

// readResponse reads one response packet; the body stays in c.buf.
func (c *client) readResponse() (op byte, status uint16, keyLen, extLen int, err error) {
	if _, err = io.ReadFull(c.r, c.hdr[:]); err != nil {
		return
	}
	h := c.hdr[:]
	if h[0] != 0x81 {
		return 0, 0, 0, 0, fmt.Errorf("bad response magic %#x", h[0])
	}
	op, status = h[1], binary.BigEndian.Uint16(h[6:])
	keyLen, extLen = int(binary.BigEndian.Uint16(h[2:])), int(h[4])
	n := int(binary.BigEndian.Uint32(h[8:]))
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	_, err = io.ReadFull(c.r, c.buf)
	return
}

// get reports whether key was a hit.
func (c *client) get(key []byte) (bool, error) {
	c.writeHeader(opGet, len(key), 0, len(key))
	c.w.Write(key)
	if err := c.w.Flush(); err != nil {
		return false, err
	}
	_, status, _, _, err := c.readResponse()
	return status == 0, err
}

// setBatch stores val under every key with quiet sets closed by a noop, so
// the batch costs one round trip; any error reply fails it.
func (c *client) setBatch(keys [][]byte, val []byte) error {
	var extras [8]byte
	for _, k := range keys {
		c.writeHeader(opSetQ, len(k), 8, 8+len(k)+len(val))
		c.w.Write(extras[:])
		c.w.Write(k)
		c.w.Write(val)
	}
	c.writeHeader(opNoop, 0, 0, 0)
	if err := c.w.Flush(); err != nil {
		return err
	}
	for {
		op, status, _, _, err := c.readResponse()
		if err != nil {
			return err
		}
		if op == opNoop {
			return nil
		}
		if status != 0 {
			return fmt.Errorf("set failed: status %#x: %q", status, c.buf)
		}
	}
}

// stats returns the general stats group.
func (c *client) stats() (map[string]string, error) {
	c.writeHeader(opStat, 0, 0, 0)
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for {
		_, status, keyLen, extLen, err := c.readResponse()
		if err != nil {
			return nil, err
		}
		if status != 0 {
			return nil, fmt.Errorf("stat: status %#x", status)
		}
		if keyLen == 0 {
			return out, nil
		}
		body := c.buf[extLen:]
		out[string(body[:keyLen])] = string(body[keyLen:])
	}
}
