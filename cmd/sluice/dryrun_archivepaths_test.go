package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Without --archive, the report names where the daemon would write each
// copy, in JSON as paths a script can use: the mbox file, or the
// maildir's directory. They are where --archive then writes: the mbox
// itself, the message's file in that maildir's new/. An mbox in a
// directory named new is an mbox, not a maildir.
func TestDryRunWouldArchivePaths(t *testing.T) {
	dir := t.TempDir()
	cfg := dryRunConfig(t, `state_dir: `+dir+`
filters:
  - type: archive
    name: box
    options:
      targets:
        default: copies/new/all.mbox
  - type: archive
    name: dir
    options:
      format: maildir
      targets:
        default: copies/all.maildir
`)
	type report struct {
		Archived     []string `json:"archived"`
		WouldArchive []string `json:"would_archive"`
	}
	run := func(args ...string) report {
		t.Helper()
		r := runCLI(t, dryRunMessage("bob@lab.example"), append([]string{"test", "--config", cfg, "--format", "json"}, args...)...)
		var rep report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
			t.Fatalf("exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		return rep
	}
	would := run().WouldArchive
	archived := run("--archive").Archived
	if len(archived) != 2 {
		t.Fatalf("--archive wrote %q, want an mbox copy and a maildir copy", archived)
	}
	want := []string{archived[0], filepath.Dir(filepath.Dir(archived[1])) + string(filepath.Separator)}
	if !slices.Equal(would, want) {
		t.Errorf("would_archive %q, want %q (--archive wrote %q)", would, want, archived)
	}

	r := runCLI(t, dryRunMessage("bob@lab.example"), "test", "--config", cfg)
	for _, line := range []string{
		"archive:  would write " + filepath.Join(dir, "copies", "new", "all.mbox") + " (dry run",
		"archive:  would write " + filepath.Join(dir, "copies", "all.maildir") + "/ (maildir) (dry run",
	} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("text report lacks %q:\n%s", line, r.stdout)
		}
	}
}
