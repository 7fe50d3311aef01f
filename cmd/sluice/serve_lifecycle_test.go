package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/filtertest"
)

// The unix socket is gone once the daemon has stopped, even when the stop
// signal arrives the moment it listens: the MTA must find no socket file
// rather than one nobody answers on, and the next start must not have to
// guess whether it is stale.
func TestServeStopRemovesSocketAtOnce(t *testing.T) {
	for i := 0; i < 20; i++ {
		dir := t.TempDir()
		sock := filepath.Join(dir, "s.sock")
		path := filepath.Join(dir, "sluice.yml")
		cfg := "listen:\n  - address: unix:" + sock + "\nmetrics:\n  listen: \"\"\nfilters:\n  - type: script\n    options:\n      header: X-Tag\n"
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		sigs := make(chan os.Signal, 1)
		log := &syncBuffer{}
		d := &daemon{cli: &cli{configPath: path, configSet: true, reg: filtertest.Registry()}, stderr: log}
		done := make(chan error, 1)
		go func() {
			done <- d.run(context.Background(), sigs, func(ready) { sigs <- syscall.SIGTERM })
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("daemon: %v\n%s", err, log)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("daemon did not stop")
		}
		if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("run %d: socket file after stop: %v", i, err)
		}
	}
}
