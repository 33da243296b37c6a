package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/moneta-cache/moneta/shared/mctest"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and unmounts
// it when the test ends (after the processes the test started, whose
// cleanups run first). It skips the test where mounting is not permitted.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for the disk-full test (needs root or CAP_SYS_ADMIN): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillTo grows (or creates) the file path until the file system holding it
// has at most free bytes available.
func fillTo(t *testing.T, path string, free int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	buf := make([]byte, 1<<20)
	for n := avail - free; n > 0; n -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(n, int64(len(buf)))]); err != nil {
			t.Fatalf("filling %s: %v", path, err)
		}
	}
}

// healthz returns the status code and body of /healthz.
func healthz(t *testing.T, admin string) (int, string) {
	t.Helper()
	return mctest.Get(t, "http://"+admin+"/healthz")
}

// TestDiskFull is issue 11 item 6 with a real full disk (a 64 MiB tmpfs):
// mnemonic stays up, refuses writes with SERVER_ERROR, serves reads, reports
// it in /healthz, /metrics and stats, starts (read-only) on the full disk
// after kill -9, and takes writes again by itself once space is freed.
func TestDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, 64<<20)
	data := filepath.Join(mnt, "data")
	filler := filepath.Join(mnt, "filler")
	admin := freeAddr(t)
	args := []string{"-admin", admin, "-max-disk-bytes", fmt.Sprint(32 << 20), "-min-free-disk-bytes", fmt.Sprint(4 << 20)}
	p := startMnemonic(t, data, args...)
	c := dialText(t, p.Addr)
	for i := 0; i < 50; i++ {
		c.do(fmt.Sprintf("set early%d 0 0 6\r\nearly%d\r\n", i, i%10), "STORED")
	}

	// Leave 12 MiB, then write 8 KiB values until mnemonic refuses.
	fillTo(t, filler, 12<<20)
	val := strings.Repeat("v", 8<<10)
	refused, stored := "", 0
	for i := 0; i < 5000 && refused == ""; i++ {
		c.send(fmt.Sprintf("set fill%d 0 0 %d\r\n%s\r\n", i, len(val), val))
		switch l := c.line(); l {
		case "STORED":
			stored++
		default:
			refused = l
		}
	}
	if refused != "SERVER_ERROR out of disk space, writes refused" {
		t.Fatalf("after %d stored values: %q, want the disk-full SERVER_ERROR", stored, refused)
	}
	t.Logf("%d values of 8 KiB stored before the disk-full refusal", stored)
	// The refusal came from mnemonic's own account, before the disk was
	// really full. Now something else takes the rest of the disk.
	fillTo(t, filler, 2<<20)
	eventually(t, 5*time.Second, "/healthz to report the full disk", func() bool {
		code, _ := healthz(t, admin)
		return code == http.StatusServiceUnavailable
	})
	c.do("delete early1\r\n", "SERVER_ERROR out of disk space, writes refused")
	c.do("get early1 fill0\r\n", "VALUE early1 0 6", "early1", fmt.Sprintf("VALUE fill0 0 %d", len(val)), val, "END")
	if code, body := healthz(t, admin); code != http.StatusServiceUnavailable || !strings.Contains(body, "disk full") {
		t.Fatalf("/healthz on a full disk: %d %s", code, body)
	}
	m := scrape(t, admin)
	if m["mnemonic_disk_full"] != 1 || m["mnemonic_disk_full_refused_total"] < 2 {
		t.Fatalf("metrics on a full disk: disk_full %v refused %v", m["mnemonic_disk_full"], m["mnemonic_disk_full_refused_total"])
	}
	if st := textStats(c, ""); st["disk_full"] != "true" || st["disk_full_refused"] == "0" {
		t.Fatalf("stats on a full disk: disk_full %q refused %q", st["disk_full"], st["disk_full_refused"])
	}

	// kill -9, fill the disk to the last megabyte, start again: read-only.
	p.crash()
	fillTo(t, filler, 1<<20)
	p = startMnemonic(t, data, args...)
	c = dialText(t, p.Addr)
	c.do("get early2\r\n", "VALUE early2 0 6", "early2", "END")
	// A multi-key get spans both read-only shards (one MultiGet each).
	var keys, want []string
	for i := 10; i < 30; i++ {
		keys = append(keys, fmt.Sprint("early", i))
		want = append(want, fmt.Sprintf("VALUE early%d 0 6", i), fmt.Sprintf("early%d", i%10))
	}
	c.do("get "+strings.Join(keys, " ")+"\r\n", append(want, "END")...)
	c.do("set new 0 0 1\r\nx\r\n", "SERVER_ERROR out of disk space, writes refused")
	if code, body := healthz(t, admin); code != http.StatusServiceUnavailable || !strings.Contains(body, "read-only") {
		t.Fatalf("/healthz after a start on a full disk: %d %s", code, body)
	}

	// Free the space: writes resume without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 10*time.Second, "writes to resume", func() bool {
		c.send("set new 0 0 1\r\nx\r\n")
		return c.line() == "STORED"
	})
	t.Logf("writes resumed %v after the filler was deleted", time.Since(start).Round(time.Millisecond))
	c.do("get new early3\r\n", "VALUE new 0 1", "x", "VALUE early3 0 6", "early3", "END")
	if code, body := healthz(t, admin); code != http.StatusOK {
		t.Fatalf("/healthz after space was freed: %d %s", code, body)
	}
	if m := scrape(t, admin); m["mnemonic_shard_reopens_total"] < 2 || m["mnemonic_disk_full"] != 0 {
		t.Fatalf("metrics after recovery: reopens %v disk_full %v", m["mnemonic_shard_reopens_total"], m["mnemonic_disk_full"])
	}
	p.stop()
}

// randomValue returns n bytes that do not compress, so table files are as
// large (and as few) as on real data.
func randomValue(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rng.IntN(26))
	}
	return string(b)
}

// TestFDLimitReservesRocksDB is issue 11 item 7 at start: under `ulimit -n
// 256`, mnemonic lowers max_conns (with a warning) so that connections
// cannot take RocksDB's descriptors; with every connection slot taken,
// writes that flush memtables and switch WAL files keep working.
func TestFDLimitReservesRocksDB(t *testing.T) {
	const limit = 256
	t.Setenv(nofileEnv, fmt.Sprint(limit))
	admin := freeAddr(t)
	p := startMnemonic(t, "", "-admin", admin, "-max-disk-bytes", fmt.Sprint(32<<20), "-log-level", "info")
	_, maxConns, _ := fdBudget(limit, 2, 1024, 65536)
	if !strings.Contains(p.Log(), "max_conns lowered") || !strings.Contains(p.Log(), fmt.Sprintf("lowered_to=%d", maxConns)) {
		t.Fatalf("no warning lowering max_conns to %d:\n%s", maxConns, p.Log())
	}
	// Take every connection slot, and try for more than the limit.
	accepted, rejected := 0, 0
	var w *textConn
	for i := 0; i < limit; i++ {
		c := dialText(t, p.Addr)
		// A refused connection gets its reply and is closed at once, so
		// the write may fail; the reply is read either way.
		c.NC.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c.NC, "version\r\n")
		l, err := c.R.ReadString('\n')
		switch {
		case strings.HasPrefix(l, "VERSION"):
			accepted++
			if w == nil {
				w = c
			}
		case l == "SERVER_ERROR too many open connections\r\n":
			rejected++
			c.NC.Close()
		default:
			t.Fatalf("connection %d: %q %v", i, l, err)
		}
	}
	if accepted > maxConns || rejected == 0 {
		t.Fatalf("%d connections accepted, %d rejected; max_conns %d", accepted, rejected, maxConns)
	}
	// The first connection writes 24 MiB: 1 MiB memtables flush and FIFO
	// drops old files all along, each needing descriptors.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		w.do(fmt.Sprintf("set k%d 0 0 8192\r\n%s\r\n", i, randomValue(rng, 8192)), "STORED")
	}
	w.send("get k2999\r\n")
	w.expect("VALUE k2999 0 8192")
	w.line()
	w.expect("END")
	if code, body := healthz(t, admin); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	p.stop()
}

// setNofile sets the soft RLIMIT_NOFILE of process pid (prlimit(2)), keeping
// its hard limit, and returns the soft limit it had.
func setNofile(t *testing.T, pid int, soft uint64) uint64 {
	t.Helper()
	var old syscall.Rlimit
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, 0, uintptr(unsafe.Pointer(&old)), 0, 0); e != 0 {
		t.Skipf("prlimit: %v", e)
	}
	lim := syscall.Rlimit{Cur: soft, Max: old.Max}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		t.Skipf("prlimit: %v", e)
	}
	return old.Cur
}

// TestShardRecoversFromFDExhaustion is issue 11 item 7 at run time: when
// descriptors run out under mnemonic (its limit lowered to what it has open),
// the memtable flush or WAL switch that needs one fails, the shard stops
// taking writes, stats report it, reads go on; once descriptors are back the
// shard is reopened and writes resume without a restart.
func TestShardRecoversFromFDExhaustion(t *testing.T) {
	admin := freeAddr(t)
	p := startMnemonic(t, "", "-admin", admin, "-max-disk-bytes", fmt.Sprint(32<<20), "-log-level", "info")
	c := dialText(t, p.Addr)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 100; i++ {
		c.do(fmt.Sprintf("set early%d 0 0 5\r\nearly\r\n", i), "STORED")
	}
	pid := p.Pid()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	old := setNofile(t, pid, uint64(len(fds)))

	// 1 MiB memtables: within a few hundred 8 KiB writes a shard needs a
	// new WAL file or table file, and there is no descriptor for it.
	failed := ""
	stored := 0
	for i := 0; i < 3000 && failed == ""; i++ {
		c.send(fmt.Sprintf("set k%d 0 0 8192\r\n%s\r\n", i, randomValue(rng, 8192)))
		if l := c.line(); l == "STORED" {
			stored++
		} else {
			failed = l
		}
	}
	if !strings.HasPrefix(failed, "SERVER_ERROR") {
		t.Fatalf("%d writes stored without a descriptor to spare, then %q", stored, failed)
	}
	t.Logf("out of descriptors after %d writes: %s", stored, failed)
	c.do("get early7\r\n", "VALUE early7 0 5", "early", "END")
	eventually(t, 5*time.Second, "stats to report the stopped shard", func() bool {
		st := textStats(c, "")
		return st["shard_faults"] != "0" && (st["shard_0_down"] == "true" || st["shard_1_down"] == "true")
	})

	setNofile(t, pid, old)
	start := time.Now()
	eventually(t, 10*time.Second, "writes to resume", func() bool {
		c.send("set after 0 0 1\r\nx\r\n")
		return c.line() == "STORED"
	})
	t.Logf("writes resumed %v after descriptors were back", time.Since(start).Round(time.Millisecond))
	c.do("get early7 after\r\n", "VALUE early7 0 5", "early", "VALUE after 0 1", "x", "END")
	eventually(t, 5*time.Second, "/healthz 200", func() bool { code, _ := healthz(t, admin); return code == http.StatusOK })
	if m := scrape(t, admin); m["mnemonic_shard_reopens_total"] < 1 || m["mnemonic_shard_faults_total"] < 1 {
		t.Fatalf("metrics after recovery: faults %v reopens %v", m["mnemonic_shard_faults_total"], m["mnemonic_shard_reopens_total"])
	}
	if !strings.Contains(p.Log(), "shard reopened read-write") {
		t.Errorf("no reopen logged:\n%s", p.Log())
	}
	p.stop()
}

// newestWAL returns the path of the newest WAL file of a shard directory.
func newestWAL(t *testing.T, dir string) string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no WAL in %s: %v", dir, err)
	}
	sort.Strings(logs)
	return logs[len(logs)-1]
}

// TestGarbledWALAfterKill9 is issue 11 item 8: after kill -9, a damaged WAL
// record is not skipped silently. Recovery stops at it (kPointInTimeRecovery:
// the shard holds a prefix of the writes, and starts), logs an ERROR naming
// what it dropped, and counts it; every write before the damage survives.
func TestGarbledWALAfterKill9(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage garbles the WAL and returns it with the first key it
		// hits.
		damage func(t *testing.T, wal []byte) ([]byte, int)
		// torn: only a partly written last record (WARN, not ERROR).
		torn bool
	}{
		// The last record: the damage a torn write or a bad last sector does.
		{"tail", func(t *testing.T, wal []byte) ([]byte, int) {
			for i := len(wal) - 8; i < len(wal); i++ {
				wal[i] ^= 0xff
			}
			return wal, 199
		}, false},
		// The last record cut short, as a crash in the middle of the
		// write leaves it.
		{"torn", func(t *testing.T, wal []byte) ([]byte, int) {
			return wal[:len(wal)-5], 199
		}, true},
		// A record in the middle: recovery must stop there, not skip it.
		{"middle", func(t *testing.T, wal []byte) ([]byte, int) {
			i := bytes.Index(wal, []byte("value-120-"))
			if i < 0 {
				t.Fatal("value-120 not in the WAL")
			}
			wal[i+3] ^= 0xff
			return wal, 120
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			admin := freeAddr(t)
			args := []string{"-shards", "1", "-admin", admin}
			p := startMnemonic(t, data, args...)
			c := dialText(t, p.Addr)
			const n = 200
			for i := 0; i < n; i++ {
				v := fmt.Sprintf("value-%d-%s", i, strings.Repeat("v", 40))
				c.do(fmt.Sprintf("set key%d 0 0 %d\r\n%s\r\n", i, len(v), v), "STORED")
			}
			p.crash()

			path := newestWAL(t, filepath.Join(data, "shard-000"))
			wal, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			wal, first := tc.damage(t, wal)
			if err := os.WriteFile(path, wal, 0o644); err != nil {
				t.Fatal(err)
			}

			p = startMnemonic(t, data, args...)
			log := p.Log()
			switch {
			case tc.torn && !strings.Contains(log, "level=WARN msg=\"WAL ended in a partly written record"):
				t.Fatalf("no WARN about the torn record:\n%s", log)
			case !tc.torn && !strings.Contains(log, "level=ERROR msg=\"WAL recovery dropped records"):
				t.Fatalf("no ERROR about dropped WAL records:\n%s", log)
			}
			c = dialText(t, p.Addr)
			for i := 0; i < first; i++ {
				v := fmt.Sprintf("value-%d-%s", i, strings.Repeat("v", 40))
				c.do(fmt.Sprintf("get key%d\r\n", i), fmt.Sprintf("VALUE key%d 0 %d", i, len(v)), v, "END")
			}
			// A prefix: nothing at or after the damage was replayed.
			for i := first; i < n; i++ {
				c.do(fmt.Sprintf("get key%d\r\n", i), "END")
			}
			want, torn := n-first, 0
			if tc.torn {
				want, torn = 0, 1
			}
			m := scrape(t, admin)
			if m["mnemonic_wal_dropped_records_total"] != float64(want) || m["mnemonic_wal_torn_tails_total"] != float64(torn) {
				t.Fatalf("dropped %v torn %v, want %d and %d\n%s", m["mnemonic_wal_dropped_records_total"],
					m["mnemonic_wal_torn_tails_total"], want, torn, log)
			}
			if st := textStats(c, ""); st["wal_dropped_records"] != fmt.Sprint(want) {
				t.Fatalf("stats wal_dropped_records %s, want %d", st["wal_dropped_records"], want)
			}
			p.stop()
		})
	}
}
