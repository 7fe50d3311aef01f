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

// The filters' own paths are files sluice writes or reads as well:
// "db: ~/bayes.db" opened a new, empty store (every message unsure) in a
// directory named "~" wherever sluice ran, and an archive or seen file
// went to "~" under state_dir. config check refuses each, naming the key.
func TestTildeFilterPathRefused(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "senders.rules")
	if err := os.WriteFile(rules, []byte("bad.example REJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, filter, key string }{
		{"bayes db", "type: bayes\n    options:\n      db: ~/bayes.db", "db"},
		{"redis password file", "type: bayes\n    options:\n      store: redis\n      redis:\n        addrs: [127.0.0.1:6379]\n        password_file: ~/redis.pass", "password_file"},
		{"redis CA file", "type: bayes\n    options:\n      store: redis\n      redis:\n        addrs: [127.0.0.1:6379]\n        tls:\n          ca_file: ~/ca.pem", "ca_file"},
		{"archive path", "type: archive\n    options:\n      targets:\n        default: ~/archive.mbox", "targets"},
		{"senders rules file", "type: senders\n    options:\n      files: [~/senders.rules]", "files"},
		{"senders seen file", "type: senders\n    options:\n      files: [" + rules + "]\n      seen_file: ~/senders.seen", "seen_file"},
	} {
		cfg := filepath.Join(dir, "sluice.yml")
		text := "state_dir: " + state + "\nmetrics:\n  listen: \"\"\nfilters:\n  - " + tc.filter + "\n"
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "", "--config", cfg, "config", "check")
		if r.code == 0 || !strings.Contains(r.stderr, tc.key) || !strings.Contains(r.stderr, "~ is not expanded") {
			t.Errorf("%s: config check: exit %d, stderr %q; want an error naming %s and ~", tc.name, r.code, r.stderr, tc.key)
		}
		for _, d := range []string{dir, state} {
			if _, err := os.Lstat(filepath.Join(d, "~")); err == nil {
				t.Errorf("%s: a directory named ~ was made in %s", tc.name, d)
				os.RemoveAll(filepath.Join(d, "~"))
			}
		}
	}
}
