package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/filtertest"
)

// unknownGroup is a group name no host has.
const unknownGroup = "sluice-no-such-group"

// A unix socket's group that this host does not know stops the start.
// "sluice config check" passed such a file, and a reload applied it (the
// listener itself waits for a restart): the daemon ran on, and could not
// start again at its next restart or reboot, leaving the MTA without its
// milter. Both refuse it now, naming the key and its line.
func TestUnknownSocketGroupRefused(t *testing.T) {
	t.Run("config check", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "sluice.yml")
		os.WriteFile(path, []byte("listen:\n  - address: unix:"+dir+"/s.sock\n    group: "+unknownGroup+"\n"), 0o644)
		root := newRootCmd(filtertest.Registry())
		root.SetOut(io.Discard)
		root.SetArgs([]string{"config", "check", path})
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "sluice.yml:3: listen[0].group") || !strings.Contains(err.Error(), unknownGroup) {
			t.Errorf("config check with an unknown socket group: error %v, want one at sluice.yml:3 naming listen[0].group", err)
		}
	})
	t.Run("reload", func(t *testing.T) {
		dir := t.TempDir()
		td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
		cfg := strings.Replace(daemonConfig, "%s", "X-Second", 1) + "  - type: script\n    name: second\n"
		cfg = strings.Replace(cfg, "  - address: inet:127.0.0.1:0\n", "  - address: inet:127.0.0.1:0\n  - address: unix:"+dir+"/s.sock\n    group: "+unknownGroup+"\n", 1)
		os.WriteFile(td.config, []byte(cfg), 0o644)
		td.signal(t, syscall.SIGHUP)
		waitFor(t, func() bool {
			return strings.Contains(td.log.String(), "config reload failed") || strings.Contains(td.log.String(), "config reloaded")
		})
		if log := td.log.String(); !strings.Contains(log, "config reload failed") || !strings.Contains(log, "listen[1].group") {
			t.Errorf("a reload naming an unknown socket group did not fail naming listen[1].group:\n%s", log)
		}
		if !strings.Contains(td.metrics(t), `sluice_config_reloads_total{result="failed"} 1`) {
			t.Error("the failed reload is not counted")
		}
		if name, _ := td.addedHeader(t); name != "X-First" {
			t.Errorf("after the refused reload: header %q, want the running X-First", name)
		}
		// The file the reload refused would not start either.
		d := &daemon{cli: &cli{configPath: td.config, configSet: true, reg: filtertest.Registry()}, stderr: io.Discard}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.run(ctx, nil, nil); err == nil || !strings.Contains(err.Error(), unknownGroup) {
			t.Errorf("start with the refused file: %v, want an error naming the group", err)
		}
	})
}
