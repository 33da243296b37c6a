package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
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
	c := dialText(t, p.addr)
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
	c = dialText(t, p.addr)
	c.do("get early2\r\n", "VALUE early2 0 6", "early2", "END")
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
