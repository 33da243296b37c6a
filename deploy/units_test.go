// Package deploy holds the operator-facing files: systemd units and example
// configuration. Its tests check that they are valid as shipped.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitsVerify runs systemd-analyze verify on every unit. verify
// exits 0 on mere warnings, so any output on stderr fails the test. The
// units name /usr/local/bin/{rend,mnemonic}, which a build machine does not
// have, so they are verified from a copy that points at stand-in executables.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	units, err := filepath.Glob("systemd/*.service")
	if err != nil {
		t.Fatal(err)
	}
	targets, _ := filepath.Glob("systemd/*.target")
	units = append(units, targets...)
	if len(units) < 4 {
		t.Fatalf("expected at least 4 units, found %v", units)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rend", "mnemonic"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var copies []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/"), []byte(bin+"/"))
		dst := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, dst)
	}
	cmd := exec.Command(analyze, append([]string{"verify"}, copies...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if msg := strings.TrimSpace(stderr.String()); msg != "" || err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, msg)
	}
}

// TestUnitsAreSandboxed keeps the hardening directives from being dropped by
// a later edit.
func TestUnitsAreSandboxed(t *testing.T) {
	units, _ := filepath.Glob("systemd/*.service")
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"User=moneta", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "LimitNOFILE=", "Restart=on-failure"} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("%s lacks %s", u, want)
			}
		}
	}
}
