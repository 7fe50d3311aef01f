package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
)

// Retraining a message from the archive, found by its queue id, changes
// the store exactly as retraining the message the daemon saw: the
// archive's own fields (X-Sluice-*, the mbox "From " line, and the
// Return-Path at the top of a maildir copy, which the daemon never saw)
// add no token and take none away. Here the daemon had learned a ham as
// spam; one store is corrected from the archive, the other from the
// message itself, and the two must hold the same counts.
func TestArchiveRetrainMovesWhatWasLearned(t *testing.T) {
	for _, format := range []string{"mbox", "maildir"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			msg := fixture("ham", "00.eml")
			var dumps []string
			for i, how := range []string{"archive", "message"} {
				db := filepath.Join(dir, fmt.Sprintf("bayes-%d.db", i))
				trainFixtures(t, db)
				if r := runCLI(t, "", "train", "--db", db, "--no-refit", "--spam", msg); r.code != 0 {
					t.Fatalf("precondition: %+v", r)
				}
				var r cliResult
				if how == "archive" {
					state := filepath.Join(dir, "state-"+format)
					f, err := archive.New(filters.Env{Name: "archive", StateDir: state}, archive.Config{
						Format: format, Targets: map[string]string{"spam": "spam"}})
					if err != nil {
						t.Fatal(err)
					}
					archiveAs(t, f, msg, "4ZkQ8m1xYz", "Spam", "bob@lab.example")
					r = runCLI(t, "", "train", "--db", db, "--no-refit", "--ham", "--queue-id", "4ZkQ8m1xYz", filepath.Join(state, "spam"))
				} else {
					r = runCLI(t, "", "train", "--db", db, "--no-refit", "--ham", msg)
				}
				if want := "1 message: 0 learned as ham, 0 already learned, 1 moved from spam to ham, 0 errors\n"; r.code != 0 || r.stdout != want {
					t.Fatalf("train --ham from the %s: %+v, want %q", how, r, want)
				}
				d := runCLI(t, "", "db", "dump", "--db", db)
				if d.code != 0 {
					t.Fatalf("db dump: %+v", d)
				}
				dumps = append(dumps, d.stdout)
			}
			if dumps[0] != dumps[1] {
				a, m := strings.Split(dumps[0], "\n"), strings.Split(dumps[1], "\n")
				in := map[string]bool{}
				for _, l := range m {
					in[l] = true
				}
				var extra []string
				for _, l := range a {
					if !in[l] {
						extra = append(extra, l)
					}
				}
				t.Errorf("retrained from the %s archive, the store differs from one retrained from the message; its lines not in the other:\n%s",
					format, strings.Join(extra, "\n"))
			}
		})
	}
}
