package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sluice senders test prints the rules that can never take effect, as the
// daemon logs them and config check prints them: an administrator who
// tests an address against an edited access file learns that the rule
// they added is hidden by an earlier one, instead of reading only that
// the earlier rule decides. The warnings go to standard error, so the
// lookups on standard output stay as they were, and the exit status
// stays 0.
func TestSendersTestPrintsRulesWithoutEffect(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "access")
	if err := os.WriteFile(rules, []byte("spam.example REJECT\nmail.spam.example OK\nspam.example DISCARD\nHelo:bob@example.com REJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "senders", "test", "x@spam.example", "--file", rules)
	if r.code != 0 {
		t.Fatalf("senders test: %+v, want exit status 0", r)
	}
	for _, want := range []string{
		rules + ":3: spam.example",
		rules + ":4: Helo:bob@example.com never matches",
		"rule has no effect",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("senders test's standard error lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stdout, "no effect") || !strings.Contains(r.stdout, rules+":1: spam.example REJECT") {
		t.Errorf("senders test's standard output should hold the lookups only:\n%s", r.stdout)
	}

	// The configuration's filters too, each warning once per filter.
	cfg := filepath.Join(dir, "sluice.yml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+dir+"\nmetrics:\n  listen: \"\"\nfilters:\n  - type: senders\n    options:\n      files:\n        - path: "+rules+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "--config", cfg, "senders", "test", "x@spam.example")
	if r.code != 0 || strings.Count(r.stderr, rules+":3: spam.example") != 1 {
		t.Errorf("senders test with the configuration: %+v, want exit status 0 and the hidden rule on standard error once", r)
	}

	if err := os.WriteFile(rules, []byte("spam.example REJECT\nmail.spam.example OK\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", "senders", "test", "x@spam.example", "--file", rules); r.code != 0 || r.stderr != "" {
		t.Errorf("senders test of rules that all take effect: %+v, want exit status 0 and nothing on standard error", r)
	}
}
