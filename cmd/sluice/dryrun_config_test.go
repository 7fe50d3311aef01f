package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// A configuration the daemon refuses to build is refused by sluice test
// too (exit 1), not replayed with the scratch paths the dry run puts in
// place of the daemon's: a test that passes for a daemon that does not
// start tells the administrator the opposite of the truth.
func TestDryRunRefusesWhatTheDaemonRefuses(t *testing.T) {
	state := t.TempDir()
	rules := filepath.Join(t.TempDir(), "access")
	os.WriteFile(rules, []byte("watched.example\tWATCH\n"), 0o644)
	for _, tc := range []struct{ name, filters, want string }{
		{"seen_file in a missing directory", `  - type: senders
    options:
      files: [` + rules + `]
      seen_file: ` + filepath.Join(state, "missing", "senders.seen") + `
`, "does not exist"},
		{"filter name that is no file name", `  - type: senders
    name: team/a
    options:
      files: [` + rules + `]
`, "cannot be a file name"},
		{"archive into the root directory", `  - type: archive
    options:
      targets:
        default: /
`, "path is the root directory"},
	} {
		cfgPath := dryRunConfig(t, "state_dir: "+state+"\nfilters:\n"+tc.filters)
		// The daemon's own build of the configuration fails.
		c := &cli{configPath: cfgPath, configSet: true, reg: testRegistry()}
		cfg, err := c.loadConfig("")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p, err := config.Build(cfg, c.reg, slog.New(slog.DiscardHandler), nil); err == nil {
			p.Close()
			t.Fatalf("%s: the daemon's build succeeded", tc.name)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: the daemon's build: %v, want %q", tc.name, err, tc.want)
		}
		r := runCLI(t, dryRunMessage("bob@lab.example"), "test", "--config", cfgPath, "--from", "news@watched.example")
		if r.code != testExitError || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: sluice test exit %d, want 1 and %q:\n%s%s", tc.name, r.code, tc.want, r.stdout, r.stderr)
		}
	}
}

// An archive target the daemon cannot write (a directory where the mbox
// should be, a file where the maildir should be) fails the daemon's copy,
// and with on_failure: tempfail the message is deferred. The dry run
// writes its copies below a scratch directory, where nothing is in the
// way: it must still fail as the daemon does, for every message, not
// report the copy it "would write" and a delivery.
func TestDryRunArchiveTargetInTheWay(t *testing.T) {
	for _, tc := range []struct{ format, obstacle string }{{"mbox", "dir"}, {"maildir", "file"}} {
		state := t.TempDir()
		target := filepath.Join(state, "all")
		var err error
		if tc.obstacle == "dir" {
			err = os.Mkdir(target, 0o755)
		} else {
			err = os.WriteFile(target, nil, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		cfgPath := dryRunConfig(t, "state_dir: "+state+`
filters:
  - type: archive
    on_failure: tempfail
    options:
      format: `+tc.format+`
      targets:
        default: all
`)
		// The daemon's pipeline, run on the same message and envelope.
		c := &cli{configPath: cfgPath, configSet: true, reg: testRegistry()}
		cfg, err := c.loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		p, err := config.Build(cfg, c.reg, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		tf := testFlags{clientIP: "127.0.0.1", clientName: "unknown", mta: "postfix"}
		conn, _ := tf.conn()
		tx, err := tf.transaction(conn, []byte(dryRunMessage("bob@lab.example")), nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := milter.Replay(context.Background(), milter.Config{Pipeline: p}, tx, nil)
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.Action != filters.Tempfail {
			t.Fatalf("%s: the daemon's pipeline: %s, want tempfail", tc.format, res.Action)
		}

		// Two messages: the second meets the obstacle too.
		dir := t.TempDir()
		for _, name := range []string{"a.eml", "b.eml"} {
			os.WriteFile(filepath.Join(dir, name), []byte(dryRunMessage("bob@lab.example")), 0o644)
		}
		r := runCLI(t, "", "test", "--config", cfgPath, dir)
		if r.code != testExitTempfail || strings.Count(r.stdout, "verdict:  tempfail by archive") != 2 || strings.Contains(r.stdout, "would write") {
			t.Errorf("%s: sluice test: exit %d, want %d (tempfail) for both messages, as the daemon:\n%s%s", tc.format, r.code, testExitTempfail, r.stdout, r.stderr)
		}
	}
}
