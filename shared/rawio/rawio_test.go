package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns a connected TCP pair: a (the side under test) and b.
func pair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-done
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func TestReadWrite(t *testing.T) {
	a, b := pair(t)
	rc := Of(a)
	if rc == nil {
		t.Fatal("Of: nil for a TCP connection")
	}
	if Of(struct{}{}) != nil {
		t.Fatal("Of: a Conn for a value without a RawConn")
	}
	// Read waits for bytes written later.
	go func() {
		time.Sleep(20 * time.Millisecond)
		b.Write([]byte("hello"))
	}()
	p := make([]byte, 16)
	n, err := rc.Read(p)
	if err != nil || string(p[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", p[:n], err)
	}
	if n, err := rc.Write([]byte("world")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	q := make([]byte, 5)
	if _, err := io.ReadFull(b, q); err != nil || string(q) != "world" {
		t.Fatalf("peer read %q, %v", q, err)
	}
	// The read deadline holds.
	a.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := rc.Read(p); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v", err)
	}
	a.SetReadDeadline(time.Time{})
	// EOF when the peer closes.
	b.Close()
	if _, err := rc.Read(p); err != io.EOF {
		t.Fatalf("Read after close: %v, want EOF", err)
	}
	a.Close()
	if _, err := rc.Read(p); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read on a closed conn: %v", err)
	}
}

// TestWritevLarge writes more than the socket buffers hold, from more
// iovecs than one writev takes, while the peer reads slowly: every byte
// arrives, in order.
func TestWritevLarge(t *testing.T) {
	a, b := pair(t)
	a.SetWriteBuffer(8 << 10)
	rc := Of(a)
	var bufs [][]byte
	var want bytes.Buffer
	for i := 0; i < 3000; i++ {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%700)
		bufs = append(bufs, v)
		want.Write(v)
	}
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		p := make([]byte, 1000)
		for len(all) < want.Len() {
			time.Sleep(50 * time.Microsecond)
			n, err := b.Read(p)
			all = append(all, p[:n]...)
			if err != nil {
				break
			}
		}
		got <- all
	}()
	n, err := rc.Writev(bufs)
	if err != nil || n != int64(want.Len()) {
		t.Fatalf("Writev = %d, %v; want %d", n, err, want.Len())
	}
	if g := <-got; !bytes.Equal(g, want.Bytes()) {
		t.Fatalf("peer got %d bytes, not what was written (%d)", len(g), want.Len())
	}
	for i, v := range bufs {
		if len(v) != 1+i%700 {
			t.Fatal("Writev changed its argument")
		}
	}
	// Empty buffers and an empty list are fine.
	if n, err := rc.Writev([][]byte{nil, {}, []byte("x")}); n != 1 || err != nil {
		t.Fatalf("Writev with empty buffers = %d, %v", n, err)
	}
	if n, err := rc.Writev(nil); n != 0 || err != nil {
		t.Fatalf("Writev(nil) = %d, %v", n, err)
	}
}

// TestWriteDeadline: a write the peer never reads ends at the deadline.
func TestWriteDeadline(t *testing.T) {
	a, _ := pair(t)
	rc := Of(a)
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	big := make([]byte, 64<<20)
	n, err := rc.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(big) {
		t.Fatalf("Write to a peer that does not read = %d, %v", n, err)
	}
	if _, err := rc.Writev([][]byte{big}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Writev to a peer that does not read: %v", err)
	}
}

func TestAllocs(t *testing.T) {
	a, b := pair(t)
	rc := Of(a)
	bufs := [][]byte{[]byte("get "), []byte("k"), []byte("\r\n")}
	p := make([]byte, 64)
	q := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		rc.Writev(bufs)
		rc.Write(bufs[0])
		b.Write(q[:3])
		io.ReadFull(b, q[:10])
		rc.Read(p)
	}); n != 0 {
		t.Fatalf("%v allocations per round", n)
	}
}
