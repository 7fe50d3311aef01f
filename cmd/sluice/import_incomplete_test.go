package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// markIncompleteImport leaves db as an import stopped between two of its
// batches does: marked (classifier.MetaImporting) with the time it began.
func markIncompleteImport(t *testing.T, db string) {
	t.Helper()
	st, err := classifier.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetMeta(context.Background(), classifier.MetaImporting, "2026-12-05T20:00:00Z"); err != nil {
		t.Fatal(err)
	}
}

// Training a store that holds part of an import is refused, learning and
// unlearning alike, with the way out: the store's counts are wrong, and
// what is trained into it now would be lost when it is replaced by a
// whole import. The store is left as it was.
func TestTrainRefusesIncompleteImport(t *testing.T) {
	db := trainedDB(t)
	markIncompleteImport(t, db)
	before := runCLI(t, "", "db", "stats", "--db", db)
	msg := fixture("check", "spam.eml")
	for _, args := range [][]string{
		{"train", "--db", db, "--ham", msg},
		{"train", "--db", db, "--spam", "--unlearn", fixture("spam")},
	} {
		r := runCLI(t, "", args...)
		if r.code != 1 {
			t.Errorf("%v: exit status %d, want 1\n%+v", args, r.code, r)
		}
		for _, want := range []string{db, "2026-12-05T20:00:00Z", "has not finished", "sluice db import --db NEWFILE"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v: stderr %q does not say %q", args, r.stderr, want)
			}
		}
		if r.stdout != "" {
			t.Errorf("%v: stdout %q, want nothing", args, r.stdout)
		}
	}
	if after := runCLI(t, "", "db", "stats", "--db", db); after.stdout != before.stdout {
		t.Errorf("the refused training changed the store:\n%s\nwas\n%s", after.stdout, before.stdout)
	}
}

// Classifying against such a store still answers, with the verdict's exit
// status (a procmail recipe must not read a warning as an error), and
// warns on standard error.
func TestClassifyWarnsOfIncompleteImport(t *testing.T) {
	db := trainedDB(t)
	msg := fixture("check", "spam.eml")
	whole := runCLI(t, "", "classify", "--db", db, msg)
	if whole.code != statusSpam || whole.stderr != "" {
		t.Fatalf("classify on a whole store: %+v", whole)
	}
	markIncompleteImport(t, db)
	r := runCLI(t, "", "classify", "--db", db, msg)
	if r.code != whole.code || r.stdout != whole.stdout {
		t.Errorf("classify on a half-imported store: %+v, want the verdict %+v", r, whole)
	}
	for _, want := range []string{"sluice classify: warning:", db, "2026-12-05T20:00:00Z", "has not finished", "sluice db import --db NEWFILE"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not say %q", r.stderr, want)
		}
	}
}

// The daemon on such a store starts, passes and classifies mail, and logs
// a warning that names the store: refusing to start would stop the mail,
// and the mark is also there while an import runs into the live store,
// which the db commands allow.
func TestServeWarnsOfIncompleteImport(t *testing.T) {
	db := trainedDB(t)
	markIncompleteImport(t, db)
	cfg := fmt.Sprintf("listen:\n  - address: inet:127.0.0.1:0\nmetrics:\n  listen: \"\"\nstate_dir: %s\nfilters:\n  - type: bayes\n    options:\n      db: %s\n",
		t.TempDir(), db)
	td := startDaemonReg(t, cfg, testRegistry())
	if name, value := td.addedHeader(t); name != "X-Sluice-Bayes" || value == "" {
		t.Errorf("added field %s: %q, want the verdict", name, value)
	}
	if err := td.stop(); err != nil {
		t.Fatal(err)
	}
	log := td.log.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "has not finished") ||
		!strings.Contains(log, "2026-12-05T20:00:00Z") || !strings.Contains(log, db) {
		t.Errorf("no warning naming the store and the import:\n%s", log)
	}
}

// Pruning or refitting a store that holds part of an import is refused as
// training is, with the same way out: the tokens pruned and the model
// fitted would be chosen by the counts of a fragment of the word list,
// and the work is lost when the store is replaced. Exporting it is
// refused too: the export carries no mark, and imported elsewhere the
// fragment would pass for a whole store. The store is left as it was.
func TestPruneRefitRefuseIncompleteImport(t *testing.T) {
	db := trainedDB(t)
	markIncompleteImport(t, db)
	before := runCLI(t, "", "db", "stats", "--db", db)
	for _, tc := range []struct {
		args    []string
		refusal string
	}{
		{[]string{"db", "prune", "--db", db, "--max-count", "1"}, "refusing to prune: "},
		{[]string{"db", "refit", "--db", db}, "refusing to refit the n-gram model: "},
		{[]string{"db", "export", "--db", db}, "refusing to export: "},
	} {
		r := runCLI(t, "", tc.args...)
		if r.code != 1 {
			t.Errorf("%v: exit status %d, want 1\n%+v", tc.args, r.code, r)
		}
		for _, want := range []string{tc.refusal, db, "2026-12-05T20:00:00Z", "has not finished", "sluice db import --db NEWFILE"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v: stderr %q does not say %q", tc.args, r.stderr, want)
			}
		}
		if r.stdout != "" {
			t.Errorf("%v: stdout %q, want nothing", tc.args, r.stdout)
		}
	}
	if after := runCLI(t, "", "db", "stats", "--db", db); after.stdout != before.stdout {
		t.Errorf("a refused command changed the store:\n%s\nwas\n%s", after.stdout, before.stdout)
	}
}

// An import stopped while the daemon runs is noticed without a reload: at
// the next measurement of the store the daemon logs the warning, once,
// and sluice_bayes_store_import_incomplete turns 1, for an alert.
func TestServeNoticesIncompleteImportWhileRunning(t *testing.T) {
	db := trainedDB(t)
	cfg := fmt.Sprintf("listen:\n  - address: inet:127.0.0.1:0\nmetrics:\n  listen: 127.0.0.1:0\nstate_dir: %s\nfilters:\n  - type: bayes\n    options:\n      db: %s\n      stats_interval: 50ms\n",
		t.TempDir(), db)
	td := startDaemonReg(t, cfg, testRegistry())
	const gauge = "sluice_bayes_store_import_incomplete"
	waitFor(t, func() bool { return dnsblMetric(td.metrics(t), gauge, `filter="bayes"`) == 0 })
	markIncompleteImport(t, db)
	waitFor(t, func() bool { return dnsblMetric(td.metrics(t), gauge, `filter="bayes"`) == 1 })
	// A few more measurements: still one warning.
	time.Sleep(200 * time.Millisecond)
	if err := td.stop(); err != nil {
		t.Fatal(err)
	}
	log := td.log.String()
	if n := strings.Count(log, "has not finished"); n != 1 || !strings.Contains(log, "2026-12-05T20:00:00Z") || !strings.Contains(log, db) {
		t.Errorf("%d warnings, want one naming the store and the import:\n%s", n, log)
	}
}

// An import records who runs it, so db stats and the refusals tell an
// import still running (wait for it) from one that was interrupted
// (import into a new store); a mark of an earlier version, the time
// alone, says it may be either (above).
func TestIncompleteImportRunningOrInterrupted(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pid      int
		stats    []string
		refusal  []string
		notAdvis string
	}{
		// This process, as the importer: start 0 is a start time
		// that could not be read, and the pid alone is believed.
		{"running", os.Getpid(),
			[]string{"IN PROGRESS", "2026-12-05T20:00:00Z", fmt.Sprintf("still running, as pid %d", os.Getpid())},
			[]string{"has not finished", fmt.Sprintf("still running, as pid %d", os.Getpid()), "wait for it to finish, then prune"},
			"NEWFILE"},
		{"interrupted", gone.Process.Pid,
			[]string{"INCOMPLETE", "2026-12-05T20:00:00Z", fmt.Sprintf("interrupted: pid %d is gone", gone.Process.Pid), "import into a new store"},
			[]string{"has not finished", fmt.Sprintf("interrupted: pid %d is gone", gone.Process.Pid), "sluice db import --db NEWFILE", "then prune that"},
			"wait for it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := trainedDB(t)
			st, err := classifier.Open(db)
			if err != nil {
				t.Fatal(err)
			}
			mark := fmt.Sprintf("2026-12-05T20:00:00Z pid=%d start=0 host=%s", tc.pid, host)
			if err := st.SetMeta(context.Background(), classifier.MetaImporting, mark); err != nil {
				t.Fatal(err)
			}
			st.Close()
			got := statsField(t, db, "import")
			for _, want := range tc.stats {
				if !strings.Contains(got, want) {
					t.Errorf("db stats import line %q does not say %q", got, want)
				}
			}
			r := runCLI(t, "", "db", "prune", "--db", db, "--max-count", "1")
			if r.code != 1 {
				t.Errorf("prune: exit status %d, want 1\n%+v", r.code, r)
			}
			for _, want := range tc.refusal {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("prune: stderr %q does not say %q", r.stderr, want)
				}
			}
			if strings.Contains(r.stderr, tc.notAdvis) {
				t.Errorf("prune: stderr %q says %q", r.stderr, tc.notAdvis)
			}
		})
	}
}
