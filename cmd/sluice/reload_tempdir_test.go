package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A body.temp_dir that a cleaner of old files removed while the daemon
// ran (systemd-tmpfiles ages the unit's private /tmp and /var/tmp) is
// made again by the next body spilled there. A reload whose file names
// that same directory must not fail for it: the administrator changed
// something else (here the filter's header), and the reload would keep
// refusing it, "a reload does not create it", until a large message
// happened to make the directory again.
func TestReloadRemakesRemovedTempDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bodies")
	body := "body:\n  temp_dir: " + dir + "\n"
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1)+body)
	if err := os.Remove(dir); err != nil {
		t.Fatalf("the start did not make body.temp_dir: %v", err)
	}
	if err := os.WriteFile(td.config, []byte(strings.Replace(daemonConfig, "%s", "X-Second", 1)+body), 0o644); err != nil {
		t.Fatal(err)
	}
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool {
		log := td.log.String()
		return strings.Contains(log, "config reloaded") || strings.Contains(log, "config reload failed")
	})
	if strings.Contains(td.log.String(), "config reload failed") {
		t.Fatalf("the reload failed for the running body.temp_dir, removed meanwhile:\n%s", td.log)
	}
	if name, _ := td.addedHeader(t); name != "X-Second" {
		t.Errorf("after the reload: header %q, want the reloaded X-Second", name)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("body.temp_dir after the reload: %v", err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("body.temp_dir made again as %v, want a directory of mode 0700", fi.Mode())
	}
}
