package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A training run whose messages all went in, but whose fit of the n-gram
// model afterwards failed (the disk filled up with the model, which is
// larger than a small store), prints its summary and says that the
// messages are learned and that "sluice db refit" is the way to fit the
// model: training the same messages again learns nothing new, so it
// fits nothing either, and the store would go on with its old model.
func TestTrainRefitFailureSaysWhatIsLearned(t *testing.T) {
	// Room for the store, not for the model besides.
	disk := tinyDisk(t, 2<<20)
	db := filepath.Join(disk, "bayes.db")
	r := runCLI(t, "", "train", "--db", db, "--no-refit", "--spam", fixture("spam"))
	if r.code != 0 {
		t.Fatalf("train spam without a fit: %+v", r)
	}
	r = runCLI(t, "", "train", "--db", db, "--ham", fixture("ham"))
	if r.code != 1 {
		t.Fatalf("train whose refit fails: %+v, want exit status 1", r)
	}
	if !strings.Contains(r.stderr, "no space left") {
		t.Fatalf("train did not fail for want of space in the refit: %+v", r)
	}
	if want := "14 messages: 14 learned as ham, 0 already learned, 0 moved from spam to ham, 0 errors\n"; r.stdout != want {
		t.Errorf("standard output %q, want the run's summary %q", r.stdout, want)
	}
	for _, want := range []string{"the messages counted above are learned", "sluice db refit --db " + db} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("standard error %q does not say %q", r.stderr, want)
		}
	}
	stats := runCLI(t, "", "db", "stats", "--db", db)
	if !strings.Contains(stats.stdout, "messages:  14 spam, 14 ham\n") {
		t.Errorf("stats after the run: %+v", stats)
	}
}
