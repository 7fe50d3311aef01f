package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A log reader that goes away (a logger at the end of a pipe that was
// stopped or died, a stream journald closed) leaves the daemon writing
// its log to a pipe with no reader. Go ends a program on its first such
// write to standard error with SIGPIPE, unless the program handles that
// signal: the daemon died in the middle of its sessions, with not a line
// to say why, and systemd, which takes SIGPIPE for a clean exit, did not
// restart it under Restart=on-failure. Now the write fails like any
// other, its lines are lost, and the daemon goes on filtering mail and
// stops cleanly.
func TestServeOutlivesItsLogReader(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	config := filepath.Join(dir, "sluice.yml")
	cfg := "listen:\n  - address: unix:" + sock + "\nmetrics:\n  listen: \"\"\nlog:\n  level: debug\nshutdown_timeout: 2s\nfilters:\n  - type: script\n    options:\n      header: X-Tag\n"
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary runs as the daemon (see TestMain).
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+config)
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	// Read the log until the daemon serves, then stop reading for good.
	lines := bufio.NewScanner(r)
	for lines.Scan() && !strings.Contains(lines.Text(), "sluice started") {
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	r.Close()

	// Each message logs several lines, each of them now a write to a pipe
	// without a reader.
	addr := &net.UnixAddr{Net: "unix", Name: sock}
	for i := range 3 {
		select {
		case <-exited:
			t.Fatalf("the daemon ended once its log reader was gone, before message %d: %v", i, waitErr)
		default:
		}
		if name, _ := addedHeaderAt(t, addr); name != "X-Tag" {
			t.Fatalf("message %d after the log reader went away: header %q, want X-Tag", i, name)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("the daemon's exit after SIGTERM: %v, want status 0", waitErr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the daemon did not stop on SIGTERM")
	}
}
