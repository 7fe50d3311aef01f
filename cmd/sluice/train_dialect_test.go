package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An administrator moving from bogofilter imports its word list into
// the new, empty store while a sluice train into that store (a cron job
// set up beforehand, or one started in another shell) is still reading
// its first messages. The train opened the store as sluice's and
// tokenises with sluice's tokenizer; once the import has made the store
// bogofilter's, what it learns must not go in: those tokens mean nothing
// to the bogofilter tokenizer the store is read with from then on, and
// could never be told apart from the word list's again. The run fails,
// names the cause, and leaves the store as the import made it; run
// again, it trains in bogofilter's dialect.
func TestTrainRefusesStoreImportedSinceItOpened(t *testing.T) {
	dir, bdir, spam, ham := fromLineSetup(t)
	bogofilterLearn(t, bdir, "-s", spam)
	bogofilterLearn(t, bdir, "-n", ham)
	list := filepath.Join(dir, "wordlist.txt")
	if err := os.WriteFile(list, bogofilterDump(t, bdir), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "bayes.db")
	const total = 40
	var imported cliResult
	in := &hookedMbox{n: total, at: 5, hook: func() {
		imported = runCLI(t, "", "db", "import", "--db", db, "--bogoutil", list)
	}}
	r := runTrainOn(t, context.Background(), in, db)
	if imported.code != 0 {
		t.Fatalf("import while train reads: %+v", imported)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "the store holds bogofilter tokens") {
		t.Errorf("train into a store imported from bogofilter since it opened it: exit %d, stdout %q, stderr %q; want exit 1 and the cause", r.code, r.stdout, r.stderr)
	}
	if got := statsField(t, db, "messages"); got != "15 spam, 15 ham" {
		t.Errorf("the store holds %s, want the word list's 15 spam, 15 ham alone", got)
	}
	if got := statsField(t, db, "digests"); !strings.HasPrefix(got, "0 ") {
		t.Errorf("digests: %s, want none learned", got)
	}

	// Run again, the train reads the store as bogofilter's and learns.
	var b strings.Builder
	for i := range total {
		b.WriteString(mboxMessage(i))
	}
	again := runCLI(t, b.String(), "train", "--spam", "--db", db)
	if again.code != 0 || !strings.HasPrefix(again.stdout, "40 messages: 40 learned as spam") {
		t.Fatalf("train again: %+v", again)
	}
	if got := statsField(t, db, "messages"); got != "55 spam, 15 ham" {
		t.Errorf("after training again the store holds %s, want 55 spam, 15 ham", got)
	}
}

// A word list keeps no record of which messages made its counts, so a
// message bogofilter learned before the import cannot be moved or
// unlearned by sluice, as docs/bayes.md says: --unlearn finds nothing
// to take away, and retrained as the other class it is only added there
// (bogofilter -Ns would also take it from ham).
func TestTrainCannotMoveWhatBogofilterLearned(t *testing.T) {
	dir, bdir, spam, ham := fromLineSetup(t)
	bogofilterLearn(t, bdir, "-s", spam)
	bogofilterLearn(t, bdir, "-n", ham)
	db := filepath.Join(dir, "bayes.db")
	importBogofilter(t, bdir, db)

	r := runCLI(t, "", "train", "--ham", "--unlearn", "--no-refit", "--db", db, ham)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "15 messages: 0 unlearned from ham, 15 not learned as ham") {
		t.Errorf("train --ham --unlearn on the ham bogofilter learned: %+v", r)
	}
	r = runCLI(t, "", "train", "--spam", "--no-refit", "--db", db, ham)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "15 messages: 15 learned as spam, 0 already learned, 0 moved from ham to spam") {
		t.Errorf("train --spam on the ham bogofilter learned: %+v", r)
	}
	if got := statsField(t, db, "messages"); got != "30 spam, 15 ham" {
		t.Errorf("the store holds %s, want 30 spam and bogofilter's 15 ham kept", got)
	}
}
