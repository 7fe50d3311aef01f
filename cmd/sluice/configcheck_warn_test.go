package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sluice config check prints the warnings the filters give as they are
// built, such as a senders rule that can never take effect, and still
// exits 0: an administrator who edits the access file and checks it
// learns of the rule, and a file Sendmail takes is not refused.
func TestConfigCheckPrintsFilterWarnings(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "access")
	cfg := filepath.Join(dir, "sluice.yml")
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg, "state_dir: "+dir+"\nmetrics:\n  listen: \"\"\nfilters:\n  - type: senders\n    options:\n      files:\n        - path: "+rules+"\n")

	write(rules, "spam.example REJECT\nmail.spam.example OK\nspam.example DISCARD\nHelo:bob@example.com REJECT\n")
	r := runCLI(t, "", "--config", cfg, "config", "check")
	if r.code != 0 {
		t.Fatalf("config check with rules that have no effect: %+v, want exit status 0", r)
	}
	for _, want := range []string{rules + ":3: spam.example", rules + ":4: Helo:bob@example.com never matches", "rule has no effect"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("config check's standard error lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "senders") {
		t.Errorf("config check printed no effective configuration:\n%s", r.stdout)
	}

	write(rules, "spam.example REJECT\nmail.spam.example OK\n")
	if r := runCLI(t, "", "--config", cfg, "config", "check"); r.code != 0 || r.stderr != "" {
		t.Errorf("config check of rules that all take effect: %+v, want exit status 0 and nothing on standard error", r)
	}
}
