package mctest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
)

// Binaries are the moneta programs a system test runs, built by BuildMoneta.
type Binaries struct {
	Rend, Mnemonic string
}

// BuildMoneta builds bin/rend and bin/mnemonic of this workspace into dir
// (TestMain calls it once per test binary; the RocksDB cgo build is cached).
func BuildMoneta(dir string) (Binaries, error) {
	var b Binaries
	var err error
	if b.Rend, err = Build(dir, "github.com/moneta-cache/moneta/rend/cmd/rend"); err != nil {
		return b, err
	}
	b.Mnemonic, err = Build(dir, "github.com/moneta-cache/moneta/mnemonic/cmd/mnemonic")
	return b, err
}

// Host is one moneta host on loopback, as a cache host runs it: memcached
// (L1) on a temp Unix socket, mnemonic (L2) on its own socket and data
// directory, and rend with its regular, batch and admin ports on free
// loopback TCP ports. Everything stops when the test ends.
type Host struct {
	// Regular, Batch and Admin are rend's addresses ("127.0.0.1:port").
	Regular, Batch, Admin string
	// MnemonicAdmin is mnemonic's admin HTTP address (its /metrics).
	MnemonicAdmin string
	L1            *Memcached
	Mnemonic      *Mnemonic
	Rend          *Proc
	// Data is mnemonic's data directory, which outlives restarts.
	Data string
}

// StartHost starts the three processes of one host. l1MB is memcached's -m
// (0 for 64).
func StartHost(tb testing.TB, bin Binaries, l1MB int) *Host {
	tb.Helper()
	if l1MB <= 0 {
		l1MB = 64
	}
	dir := tb.TempDir()
	var addrs []string
	for _, p := range FreePorts(tb, 4) {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	h := &Host{
		Regular:       addrs[0],
		Batch:         addrs[1],
		Admin:         addrs[2],
		MnemonicAdmin: addrs[3],
		Data:          filepath.Join(dir, "data"),
	}
	h.L1 = Start(tb, "-m", strconv.Itoa(l1MB))
	// Small RocksDB caches and buffers: a test host holds little data and
	// several hosts share the machine.
	h.Mnemonic = StartMnemonic(tb, bin.Mnemonic, h.Data, "-shards", "2", "-admin", h.MnemonicAdmin,
		"-block-cache-bytes", strconv.Itoa(16<<20), "-write-buffer-bytes", strconv.Itoa(8<<20))
	h.Rend = StartProc(tb, "rend", h.Regular, bin.Rend,
		"-listen", h.Regular, "-batch-listen", h.Batch, "-admin", h.Admin,
		"-l1", h.L1.Addr, "-l2", h.Mnemonic.Addr, "-backend-timeout", "2s")
	return h
}

// Mnemonic is a mnemonic process a test owns, on a Unix socket of its own.
type Mnemonic struct {
	*Proc
	// Addr is its socket ("unix:/..."); Data is its data directory, which
	// outlives restarts.
	Addr, Data string
}

// NewMnemonic prepares the mnemonic program at path, not started yet (set
// Env for a test binary that runs as mnemonic, then Start): listening on a
// fresh socket, its data in data (a fresh directory if empty), no admin
// listener, then extra (a later flag wins over an earlier one). Everything
// else is the program's default or its -config file's.
func NewMnemonic(tb testing.TB, path, data string, extra ...string) *Mnemonic {
	tb.Helper()
	if data == "" {
		data = filepath.Join(tb.TempDir(), "data")
	}
	m := &Mnemonic{Addr: "unix:" + filepath.Join(SocketDir(tb), "mn.sock"), Data: data}
	args := append([]string{"-listen", m.Addr, "-data", data, "-admin", ""}, extra...)
	m.Proc = NewProc(tb, "mnemonic", m.Addr, path, args...)
	return m
}

// StartMnemonic is NewMnemonic, started: it returns once mnemonic answers.
func StartMnemonic(tb testing.TB, path, data string, extra ...string) *Mnemonic {
	tb.Helper()
	m := NewMnemonic(tb, path, data, extra...)
	m.Start()
	return m
}
