package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters/filtertest"
)

// A path that starts with ~ is not a home directory to sluice: no shell
// expands it. body.temp_dir: ~/spool made a directory named "~" in the
// directory sluice was started in, and spilled bodies went there; the
// start, config check and a reload refuse it instead, at its line.
func TestTildePathRefused(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	for _, tc := range []struct{ key, text, line string }{
		{"body.temp_dir", "body:\n  temp_dir: ~/spool\n", "6"},
		{"state_dir", "state_dir: ~/sluice\n", "5"},
	} {
		path := filepath.Join(wd, "sluice.yml")
		text := "listen:\n  - address: inet:127.0.0.1:0\nmetrics:\n  listen: \"\"\n" + tc.text
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		d := &daemon{cli: &cli{configPath: path, configSet: true, reg: filtertest.Registry()}, stderr: io.Discard}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a daemon that starts stops again at once
		err := d.run(ctx, make(chan os.Signal), nil)
		if err == nil || !strings.Contains(err.Error(), path+":"+tc.line+": "+tc.key+": ") {
			t.Errorf("%s with ~: serve returned %v, want an error at %s:%s naming the key", tc.key, err, path, tc.line)
		}
		if _, err := os.Lstat(filepath.Join(wd, "~")); err == nil {
			t.Errorf("%s with ~: a directory named ~ was made in the working directory", tc.key)
			os.RemoveAll(filepath.Join(wd, "~"))
		}
	}
}
