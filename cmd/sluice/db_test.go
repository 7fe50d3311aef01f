package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

func statsField(t *testing.T, db, field string) string {
	t.Helper()
	r := runCLI(t, "", "db", "stats", "--db", db)
	if r.code != 0 {
		t.Fatalf("stats: %+v", r)
	}
	m := regexp.MustCompile(`(?m)^` + field + `: +(.*)$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stats has no %s: %q", field, r.stdout)
	}
	return m[1]
}

func tokenCount(t *testing.T, db string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.Fields(statsField(t, db, "tokens"))[0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDBStatsDumpExportImport(t *testing.T) {
	db := trainedDB(t)
	if got := statsField(t, db, "messages"); got != "14 spam, 14 ham" {
		t.Errorf("messages: %q", got)
	}
	if got := statsField(t, db, "dialect"); got != "sluice" {
		t.Errorf("dialect: %q", got)
	}
	if got := statsField(t, db, "digests"); !strings.HasPrefix(got, "28 ") {
		t.Errorf("digests: %q", got)
	}
	if got := statsField(t, db, "features"); !strings.HasPrefix(got, "28 ") {
		t.Errorf("features: %q", got)
	}
	tokens := tokenCount(t, db)

	dump := runCLI(t, "", "db", "dump", "--db", db)
	lines := strings.Split(strings.TrimSuffix(dump.stdout, "\n"), "\n")
	if dump.code != 0 || len(lines) != tokens {
		t.Fatalf("dump: %d lines for %d tokens (%+v)", len(lines), tokens, dump.stderr)
	}
	// A token with white space (word pairs) is Go-quoted, as documented.
	line := regexp.MustCompile(`^(\S+|"(?:[^"\\]|\\.)*")\t\d+\t\d+\t\d{8}$`)
	for _, l := range lines {
		if !line.MatchString(l) {
			t.Fatalf("dump line %q", l)
		}
		if tok, _, _ := strings.Cut(l, "\t"); strings.HasPrefix(tok, `"`) {
			if _, err := strconv.Unquote(tok); err != nil {
				t.Fatalf("dump line %q: quoted token does not unquote: %v", l, err)
			}
		}
	}

	// export | import into a new store | export gives the same text.
	dir := t.TempDir()
	exp := filepath.Join(dir, "export.txt")
	if r := runCLI(t, "", "db", "export", "--db", db, exp); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	text, _ := os.ReadFile(exp)
	copyDB := filepath.Join(dir, "copy.db")
	r := runCLI(t, string(text), "db", "import", "--db", copyDB)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "imported "+strconv.Itoa(tokens)+" tokens, 28 digests, 14 spam and 14 ham messages") {
		t.Fatalf("import: %+v", r)
	}
	again := runCLI(t, "", "db", "export", "--db", copyDB)
	if again.code != 0 || again.stdout != string(text) {
		t.Errorf("export of the imported store differs (%d vs %d bytes)", len(again.stdout), len(text))
	}
	// The copy remembers what it learned: training the fixtures again
	// changes nothing.
	r = runCLI(t, "", "train", "--db", copyDB, "--spam", fixture("spam"))
	if !strings.Contains(r.stdout, "14 already learned") {
		t.Errorf("relearn into the copy: %+v", r)
	}
	// Classifying with the copy gives the same output.
	a := runCLI(t, "", "classify", "--db", db, "--format", "tsv", fixture("check"))
	b := runCLI(t, "", "classify", "--db", copyDB, "--format", "tsv", fixture("check"))
	if a.stdout == "" || a.stdout != b.stdout {
		t.Errorf("verdicts differ:\n%s\n%s", a.stdout, b.stdout)
	}
}

// The same export imported twice, as after an import whose n-gram fit
// failed though the import was whole: the second is refused, saying why,
// and the store keeps one count of each message.
func TestDBImportTwiceRefused(t *testing.T) {
	src := trainedDB(t)
	exp := runCLI(t, "", "db", "export", "--db", src)
	if exp.code != 0 {
		t.Fatalf("export: %+v", exp)
	}
	db := filepath.Join(t.TempDir(), "copy.db")
	if r := runCLI(t, exp.stdout, "db", "import", "--db", db); r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
	r := runCLI(t, exp.stdout, "db", "import", "--db", db)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "already learned 28 of the 28 messages") || !strings.Contains(r.stderr, "nothing was imported") {
		t.Errorf("import again: %+v, want exit status 1 naming the 28 messages learned already", r)
	}
	if again := runCLI(t, "", "db", "export", "--db", db); again.stdout != exp.stdout {
		t.Errorf("the refused import changed the store:\n%s", again.stdout[:min(len(again.stdout), 200)])
	}
}

func TestDBPrune(t *testing.T) {
	db := trainedDB(t)
	before := tokenCount(t, db)
	singular, err := strconv.Atoi(regexp.MustCompile(`\((\d+) seen in one message only\)`).FindStringSubmatch(statsField(t, db, "tokens"))[1])
	if err != nil || singular == 0 {
		t.Fatalf("singular tokens: %v", err)
	}
	if r := runCLI(t, "", "db", "prune", "--db", db); r.code == 0 {
		t.Errorf("prune without criteria: %+v", r)
	}
	// Everything was learned today: nothing is older than a day.
	if r := runCLI(t, "", "db", "prune", "--db", db, "--older-than", "1", "--max-count", "1"); r.code != 0 || !strings.HasPrefix(r.stdout, "pruned 0 tokens") {
		t.Errorf("prune old and rare: %+v", r)
	}
	// An age that is no day (zero or negative, or further back than the
	// calendar goes) is an error: ignored, the rare tokens of any age
	// (those learned today too) would go, and a cut-off before year 1
	// wrapped round to a date after every token.
	for _, days := range []string{"0", "-5", "99999999", "9223372036854775807"} {
		r := runCLI(t, "", "db", "prune", "--db", db, "--older-than", days, "--max-count", "1")
		if r.code != statusUsage || !strings.Contains(r.stderr, "--older-than "+days) {
			t.Errorf("--older-than %s: %+v", days, r)
		}
		if after := tokenCount(t, db); after != before {
			t.Fatalf("--older-than %s pruned %d tokens", days, before-after)
		}
	}
	r := runCLI(t, "", "db", "prune", "--db", db, "--max-count", "1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "pruned "+strconv.Itoa(singular)+" tokens") {
		t.Errorf("prune rare: %+v (want %d)", r, singular)
	}
	if after := tokenCount(t, db); after != before-singular {
		t.Errorf("%d tokens after pruning %d of %d", after, singular, before)
	}
}

// --max-count 0 names no rare token (none is seen in fewer than one
// message), so it must not pass for no --max-count at all: with
// --older-than it pruned every old token, however often seen, where
// docs/training.md promises that both flags delete only the old and rare
// ones. It is an error, as --older-than 0 is, and prunes nothing.
func TestDBPruneMaxCountZero(t *testing.T) {
	dir := t.TempDir()
	export := filepath.Join(dir, "export.txt")
	if r := runCLI(t, "", "db", "export", "--db", trainedDB(t), export); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	text, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	// Every token last seen years ago, so that --older-than matches all.
	old := regexp.MustCompile(`(?m) \d{8}$`).ReplaceAll(text, []byte(" 20200101"))
	if err := os.WriteFile(export, old, 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "old.db")
	if r := runCLI(t, "", "db", "import", "--db", db, export); r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
	before := tokenCount(t, db)
	for _, args := range [][]string{
		{"--older-than", "90", "--max-count", "0"},
		{"--max-count", "0"},
	} {
		r := runCLI(t, "", append([]string{"db", "prune", "--db", db}, args...)...)
		if r.code != statusUsage || !strings.Contains(r.stderr, "--max-count 0") {
			t.Errorf("prune %v: %+v, want exit status %d naming --max-count 0", args, r, statusUsage)
		}
		if after := tokenCount(t, db); after != before {
			t.Fatalf("prune %v deleted %d of %d tokens", args, before-after, before)
		}
	}
}

// A bogofilter word list (bogoutil -d) imports into an empty store, which
// then tokenises and scores as bogofilter does.
func TestDBImportBogoutil(t *testing.T) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "wordlist.txt")
	os.WriteFile(dump, []byte(".MSG_COUNT 20 30 20240101\n"+
		".ROBX 520000 0 20240101\n"+
		"casino 15 0 20240101\n"+
		"jackpot 12 1 20240101\n"+
		"meeting 0 25 20240101\n"+
		"agenda 1 22 20240101\n"+
		"subj:casino 9 0 20240101\n"), 0o644)
	db := filepath.Join(dir, "bogo.db")
	r := runCLI(t, "", "db", "import", "--db", db, "--bogoutil", dump)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "imported 5 tokens, 0 digests, 20 spam and 30 ham messages") {
		t.Fatalf("import: %+v", r)
	}
	if got := statsField(t, db, "dialect"); got != "bogofilter" {
		t.Errorf("dialect %q", got)
	}
	spam := "From: x@example.com\nSubject: casino\n\ncasino jackpot casino\n"
	ham := "From: y@example.com\nSubject: notes\n\nmeeting agenda meeting\n"
	if r := runCLI(t, spam, "classify", "--db", db, "--format", "tsv"); r.code != 0 || !strings.HasSuffix(r.stdout, "\tspam\n") {
		t.Errorf("spam: %+v", r)
	}
	if r := runCLI(t, ham, "classify", "--db", db, "--format", "tsv"); r.code != 1 || !strings.HasSuffix(r.stdout, "\tham\n") {
		t.Errorf("ham: %+v", r)
	}
	// A sluice export cannot go into a bogofilter store.
	sl := trainedDB(t)
	exp := runCLI(t, "", "db", "export", "--db", sl)
	if r := runCLI(t, exp.stdout, "db", "import", "--db", db, "-"); r.code == 0 || !strings.Contains(r.stderr, "into a new store (--db NEWFILE)") {
		t.Errorf("mixed dialects: %+v; want an error that says what to do", r)
	}
	// Nor a bogofilter list into a trained sluice store, the store the
	// configuration names by default.
	if r := runCLI(t, "", "db", "import", "--db", sl, "--bogoutil", dump); r.code == 0 || !strings.Contains(r.stderr, "into a new store (--db NEWFILE)") {
		t.Errorf("bogoutil into a sluice store: %+v; want an error that says what to do", r)
	}
}

// The same bogofilter word list imported twice, as a migration script
// run again does, counted every token and message twice: a word list has
// no digests of learned messages to show the store has it. The second
// import is refused, with exit status 1, saying when the first was and
// what to do, and changes nothing; so is the export of a store that holds
// only such a list, imported twice into another. A later dump imports,
// and --again imports the same list on purpose.
func TestDBImportBogoutilTwiceRefused(t *testing.T) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "wordlist.txt")
	later := filepath.Join(dir, "wordlist-later.txt")
	os.WriteFile(dump, []byte(".MSG_COUNT 20 30 20240101\ncasino 15 0 20240101\nmeeting 0 25 20240101\n"), 0o644)
	os.WriteFile(later, []byte(".MSG_COUNT 21 30 20240102\ncasino 16 0 20240102\nmeeting 0 25 20240101\n"), 0o644)
	db := filepath.Join(dir, "bogo.db")
	if r := runCLI(t, "", "db", "import", "--db", db, "--bogoutil", dump); r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
	refused := func(db string, stdin string, args ...string) {
		t.Helper()
		before := runCLI(t, "", "db", "export", "--db", db).stdout
		r := runCLI(t, stdin, append([]string{"db", "import", "--db", db}, args...)...)
		if r.code != 1 || r.stdout != "" || !regexp.MustCompile(`was imported into the store already, at 20\d\d-\d\d-\d\dT`).MatchString(r.stderr) ||
			!strings.Contains(r.stderr, "nothing was imported") || !strings.Contains(r.stderr, "import it with --again") {
			t.Errorf("import %v again: %+v, want exit status 1 saying when it was imported and what to do", args, r)
		}
		if after := runCLI(t, "", "db", "export", "--db", db).stdout; after != before {
			t.Errorf("the refused import changed the store:\n%s", after)
		}
	}
	refused(db, "", "--bogoutil", dump)
	if got := statsField(t, db, "messages"); got != "20 spam, 30 ham" {
		t.Errorf("spam after the refused import: %q, want 20", got)
	}

	exp := runCLI(t, "", "db", "export", "--db", db)
	moved := filepath.Join(dir, "moved.db")
	if r := runCLI(t, exp.stdout, "db", "import", "--db", moved); r.code != 0 {
		t.Fatalf("import of the export: %+v", r)
	}
	refused(moved, exp.stdout)

	if r := runCLI(t, "", "db", "import", "--db", db, "--bogoutil", later); r.code != 0 || !strings.HasPrefix(r.stdout, "imported 2 tokens, 0 digests, 21 spam and 30 ham messages") {
		t.Errorf("a later dump: %+v", r)
	}
	if r := runCLI(t, "", "db", "import", "--db", db, "--bogoutil", "--again", dump); r.code != 0 {
		t.Errorf("--again: %+v", r)
	}
	if got := statsField(t, db, "messages"); got != "61 spam, 90 ham" {
		t.Errorf("spam after a later dump and --again: %q, want 61", got)
	}
}

// A word list imported into a store with another list, the store
// exported and the export imported into a new store: the same word list
// imported into the new store counted twice there (the new store knew
// only the export's fingerprint, of both lists together). The export now
// carries the records of the store's imports, and the list is refused in
// the new store as in the first, on bbolt and on Redis; the export of the
// new store is the export it was made from.
func TestDBImportBogoutilTwiceRefusedAfterExport(t *testing.T) {
	dir := t.TempDir()
	dump := filepath.Join(dir, "wordlist.txt")
	other := filepath.Join(dir, "other.txt")
	os.WriteFile(dump, []byte(".MSG_COUNT 20 30 20240101\ncasino 15 0 20240101\nmeeting 0 25 20240101\n"), 0o644)
	os.WriteFile(other, []byte(".MSG_COUNT 5 2 20240301\ncasino 4 0 20240301\nlunch 0 2 20240301\n"), 0o644)
	srv := redistest.Start(t)
	for _, tc := range []struct{ name, first, moved string }{
		{"bolt", filepath.Join(dir, "first.db"), filepath.Join(dir, "moved.db")},
		{"redis", redisURL(srv, "first"), redisURL(srv, "moved")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, list := range []string{dump, other} {
				if r := runCLI(t, "", "db", "import", "--db", tc.first, "--bogoutil", list); r.code != 0 {
					t.Fatalf("import %s: %+v", list, r)
				}
			}
			exp := runCLI(t, "", "db", "export", "--db", tc.first)
			if exp.code != 0 {
				t.Fatalf("export: %+v", exp)
			}
			if r := runCLI(t, exp.stdout, "db", "import", "--db", tc.moved); r.code != 0 {
				t.Fatalf("import of the export: %+v", r)
			}
			r := runCLI(t, "", "db", "import", "--db", tc.moved, "--bogoutil", dump)
			if r.code != 1 || r.stdout != "" || !regexp.MustCompile(`this word list \(fingerprint [0-9a-f]{16}\.\.\.\) was imported into the store already, at 20\d\d-\d\d-\d\dT`).MatchString(r.stderr) ||
				!strings.Contains(r.stderr, "import it with --again") {
				t.Errorf("the list into the store made from the export: %+v, want exit status 1 saying it was imported", r)
			}
			if got := statsField(t, tc.moved, "messages"); got != "25 spam, 32 ham" {
				t.Errorf("messages after the refused import: %q, want 25 spam, 32 ham", got)
			}
			if again := runCLI(t, "", "db", "export", "--db", tc.moved); again.stdout != exp.stdout {
				t.Errorf("the export of the store made from the export:\n%s\nwant\n%s", again.stdout, exp.stdout)
			}
		})
	}
}

// The n-gram model: fitted by train, by import and by db refit, the same
// whatever the order of training, shown by db stats and used by classify;
// off in the configuration, neither fitted nor used.
func TestDBRefit(t *testing.T) {
	dir := t.TempDir()
	modelLine := regexp.MustCompile(`^model ([0-9a-f]{24}) fitted on (\d+) spam and (\d+) ham$`)
	model := func(db string) (id, counts string) {
		t.Helper()
		m := modelLine.FindStringSubmatch(statsField(t, db, "ngram"))
		if m == nil {
			t.Fatalf("%s: ngram %q", db, statsField(t, db, "ngram"))
		}
		return m[1], m[2] + "/" + m[3]
	}
	db := trainedDB(t) // spam first, then ham
	id, counts := model(db)
	if counts != "14/14" {
		t.Errorf("model fitted on %s, want 14/14", counts)
	}
	// Ham first, then spam, in two runs per class: the same model.
	other := filepath.Join(dir, "other.db")
	for _, class := range []string{"ham", "spam"} {
		files, _ := filepath.Glob(filepath.Join(fixture(class), "*.eml"))
		for _, part := range [][]string{files[:5], files[5:]} {
			if r := runCLI(t, "", append([]string{"train", "--db", other, "--" + class}, part...)...); r.code != 0 {
				t.Fatalf("train: %+v", r)
			}
		}
	}
	if id2, _ := model(other); id2 != id {
		t.Errorf("training order changed the model: %s vs %s", id2, id)
	}
	explain := func(db string, args ...string) string {
		t.Helper()
		r := runCLI(t, "", append([]string{"classify", "--db", db, "--format", "json", "--explain"}, append(args, fixture("check"))...)...)
		if r.stdout == "" {
			t.Fatalf("classify: %+v", r)
		}
		return r.stdout
	}
	before := explain(db)
	if !strings.Contains(before, `"name":"ngram"`) {
		t.Fatalf("classify --explain shows no n-gram part:\n%s", before)
	}
	// A refit of the same messages changes nothing.
	r := runCLI(t, "", "db", "refit", "--db", db)
	if r.code != 0 || r.stdout != "n-gram model fitted on 14 spam and 14 ham messages\n" {
		t.Errorf("refit: %+v", r)
	}
	if again, _ := model(db); again != id || explain(db) != before {
		t.Error("a refit of the same messages changed the model or the scores")
	}
	// Unlearning changes the model; learning back restores it exactly.
	spam := filepath.Join(fixture("spam"), "00.eml")
	if r := runCLI(t, "", "train", "--db", db, "--spam", "--unlearn", spam); r.code != 0 {
		t.Fatalf("unlearn: %+v", r)
	}
	if id3, counts := model(db); id3 == id || counts != "13/14" {
		t.Errorf("after unlearning one spam: model %s fitted on %s", id3, counts)
	}
	if r := runCLI(t, "", "train", "--db", db, "--spam", spam); r.code != 0 {
		t.Fatalf("learn: %+v", r)
	}
	if id4, _ := model(db); id4 != id {
		t.Errorf("learning the spam back gave model %s, want %s", id4, id)
	}
	// An export carries the n-grams; the imported store fits the same
	// model and scores the same.
	exp := runCLI(t, "", "db", "export", "--db", db)
	copyDB := filepath.Join(dir, "copy.db")
	if r := runCLI(t, exp.stdout, "db", "import", "--db", copyDB); r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
	if idc, _ := model(copyDB); idc != id || explain(copyDB) != before {
		t.Errorf("imported store: model %s (want %s) or scores differ", idc, id)
	}
	// ngram: off in the configuration: not used, not fitted.
	off := filepath.Join(dir, "off.yml")
	os.WriteFile(off, []byte("filters:\n  - type: bayes\n    options:\n      ngram: \"off\"\n"), 0o644)
	if out := explain(db, "--config", off); strings.Contains(out, `"name":"ngram"`) {
		t.Errorf("ngram off: classify shows an n-gram part:\n%s", out)
	}
	offDB := filepath.Join(dir, "off.db")
	if r := runCLI(t, "", "train", "--config", off, "--db", offDB, "--spam", fixture("spam")); r.code != 0 {
		t.Fatalf("train with ngram off: %+v", r)
	}
	if got := statsField(t, offDB, "ngram"); got != "no model" {
		t.Errorf("ngram off: stats say %q", got)
	}
	if r := runCLI(t, "", "db", "refit", "--config", off, "--db", offDB); r.code != 0 || !strings.Contains(r.stdout, "the n-gram model is off") {
		t.Errorf("refit with ngram off: %+v", r)
	}
}

// An export to a file that fails part way (here at a damaged token record)
// leaves the previous export as it was, with no half export or temporary
// file beside it; one that succeeds replaces it and keeps its mode, and a
// new export file is readable by its owner only.
func TestDBExportReplacesWholeOrNothing(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	exp := filepath.Join(dir, "backup.txt")
	if r := runCLI(t, "", "db", "export", "--db", db, exp); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	if fi, err := os.Stat(exp); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new export: %v, mode %v, want 0600", err, fi.Mode())
	}
	good, _ := os.ReadFile(exp)
	if len(good) == 0 {
		t.Fatal("empty export")
	}
	os.Chmod(exp, 0o640)

	damage := func(put bool) {
		t.Helper()
		bdb, err := bolt.Open(db, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer bdb.Close()
		err = bdb.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("tokens"))
			if put {
				// Late in byte order, so the export is well under way
				// when it meets the damage.
				return b.Put([]byte("zzzz-damaged"), []byte{0xff})
			}
			return b.Delete([]byte("zzzz-damaged"))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	damage(true)
	r := runCLI(t, "", "db", "export", "--db", db, exp)
	if r.code == 0 || !strings.Contains(r.stderr, "zzzz-damaged") {
		t.Fatalf("export of a damaged store: %+v", r)
	}
	if got, _ := os.ReadFile(exp); string(got) != string(good) {
		t.Errorf("failed export changed the previous one: %d bytes, was %d", len(got), len(good))
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("files beside the export after a failure: %v", names)
	}

	// Repaired, the export replaces the old one and keeps its mode.
	damage(false)
	os.WriteFile(exp, []byte("old\n"), 0o640)
	if r := runCLI(t, "", "db", "export", "--db", db, exp); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	if got, _ := os.ReadFile(exp); string(got) != string(good) {
		t.Errorf("export after repair: %d bytes, want %d", len(got), len(good))
	}
	if fi, _ := os.Stat(exp); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v after replacing, want 0640", fi.Mode())
	}
}

// docs/install.md has the administrator import a bogofilter word list as
// the daemon's user, reading it from standard input: every file the
// import creates is then that user's, and no chown by root is needed
// (one would follow a symbolic link the daemon's user put in a file's
// place). A lock file left to root (mode 0640) would keep the daemon,
// which opens it for writing, from the store.
func TestDocInstallImportAsDaemonUser(t *testing.T) {
	doc := readDoc(t, "docs/install.md")
	imp := regexp.MustCompile(`(?m)^\s*runuser -u sluice -- sluice db import --db /var/lib/sluice/(\S+) --bogoutil - < \S+$`).FindStringSubmatch(doc)
	if imp == nil {
		t.Fatal("docs/install.md has no 'runuser -u sluice -- sluice db import --db /var/lib/sluice/... --bogoutil - < FILE'")
	}
	if line := regexp.MustCompile(`(?m)^\s*(chown|chmod) .*$`).FindString(doc); line != "" {
		t.Errorf("docs/install.md still hands files over as root: %q", strings.TrimSpace(line))
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the import as another user")
	}
	runuser := lookRunuser(t)
	bin := redisBuildSluice(t)
	const nobody = 65534
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	// The word list is root's alone: the import reads it on standard
	// input.
	dump := filepath.Join(t.TempDir(), "wordlist.txt")
	if err := os.WriteFile(dump, []byte(".MSG_COUNT 20 30 20240101\ncasino 15 0 20240101\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(runuser, "-u", "nobody", "--", bin, "db", "import", "--db", filepath.Join(dir, imp[1]), "--bogoutil", "-")
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("import as nobody: %v\n%s", err, out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 {
		t.Fatalf("the import made %d files, want the store and its lock file", len(entries))
	}
	for _, e := range entries {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody {
			t.Errorf("the import made %s owned by uid %d, not the daemon's user", e.Name(), st.Uid)
		}
	}
}

// db stats says when a store holds part of an import that did not
// finish: its counts are a fragment of the word list, and another import
// into it is refused.
func TestDBStatsShowsIncompleteImport(t *testing.T) {
	db := trainedDB(t)
	if r := runCLI(t, "", "db", "stats", "--db", db); r.code != 0 || strings.Contains(r.stdout, "import:") {
		t.Fatalf("stats of a whole store: %+v", r)
	}
	st, err := classifier.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	// What an import stopped between two batches leaves.
	if err := st.SetMeta(context.Background(), classifier.MetaImporting, "2026-12-05T20:00:00Z"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if got := statsField(t, db, "import"); !strings.Contains(got, "INCOMPLETE") || !strings.Contains(got, "2026-12-05T20:00:00Z") {
		t.Errorf("import line %q, want it to say the import begun 2026-12-05T20:00:00Z is incomplete", got)
	}
}

// A refused import into a store that did not exist leaves no file behind
// (neither the store nor its lock file): classify must go on reporting
// that there is no store rather than use an empty one. A refused import
// into a store that existed leaves it there.
func TestDBImportRefusedCreatesNoStore(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("sluice-classifier-export 2\ndialect sluice\ntotals 1 0\nt a 1 0 20240101\n"), 0o644)
	badBogo := filepath.Join(dir, "bad-bogo.txt")
	os.WriteFile(badBogo, []byte(".MSG_COUNT 1 0 20240101\na 1 0\nb x\n"), 0o644)
	for _, args := range [][]string{{bad}, {"-"}, {"--bogoutil", badBogo}} {
		db := filepath.Join(t.TempDir(), "bayes.db")
		stdin := ""
		if args[0] == "-" {
			stdin = "not an export\n"
		}
		r := runCLI(t, stdin, append([]string{"db", "import", "--db", db}, args...)...)
		if r.code == 0 {
			t.Fatalf("import %v: %+v, want a refusal", args, r)
		}
		if names, _ := os.ReadDir(filepath.Dir(db)); len(names) != 0 {
			t.Errorf("import %v left %v", args, names)
		}
		r = runCLI(t, "Subject: hi\n\nhello\n", "classify", "--db", db)
		if r.code == 0 || !strings.Contains(r.stderr, "no token store at "+db) {
			t.Errorf("classify after a refused import %v: %+v", args, r)
		}
	}
	db := trainedDB(t)
	if r := runCLI(t, "", "db", "import", "--db", db, bad); r.code == 0 {
		t.Fatalf("import into a trained store: %+v, want a refusal", r)
	}
	if got := statsField(t, db, "messages"); got != "14 spam, 14 ham" {
		t.Errorf("the trained store after a refused import: %q", got)
	}
}

// An export onto a symbolic link writes the file the link points to, as
// the archive filter appends through a link, creating that file if it
// does not exist yet (a link to a backup disk made before the first
// export): the link stays a link. A link owned by neither root nor this
// user is not followed, as in the archive and train: root's export must
// not write a file of another user's choosing. It is refused, and
// nothing is written.
func TestDBExportThroughSymlink(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	backup := filepath.Join(dir, "disk")
	os.Mkdir(backup, 0o755)
	target := filepath.Join(backup, "bayes.txt")
	link := filepath.Join(dir, "bayes.txt")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// Relative, and a link to the link.
	chain := filepath.Join(dir, "latest.txt")
	os.Symlink("bayes.txt", chain)
	for _, name := range []string{link, chain} {
		os.Remove(target)
		if r := runCLI(t, "", "db", "export", "--db", db, name); r.code != 0 {
			t.Fatalf("export to %s: %+v", name, r)
		}
		if fi, err := os.Lstat(name); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symbolic link: %v, %v", name, fi.Mode(), err)
		}
		if got, err := os.ReadFile(target); err != nil || !strings.HasPrefix(string(got), "sluice-classifier-export ") {
			t.Errorf("export through %s: the target holds %.40q, %v", name, got, err)
		}
	}

	// /dev/stdout, a pipe, is such a link, to a link of /proc whose
	// target ("pipe:[1234]") names no file: the pipe is written in place.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(pr)
		got <- b
	}()
	r := runCLI(t, "", "db", "export", "--db", db, "/proc/self/fd/"+strconv.Itoa(int(pw.Fd())))
	pw.Close()
	if b := <-got; r.code != 0 || !strings.HasPrefix(string(b), "sluice-classifier-export ") {
		t.Errorf("export to a pipe through /proc/self/fd: %+v, %d bytes", r, len(b))
	}
	pr.Close()

	if os.Geteuid() != 0 {
		t.Skip("a link owned by another user needs root to make")
	}
	os.Remove(target)
	other := filepath.Join(dir, "other.txt")
	os.Symlink(target, other)
	if err := os.Lchown(other, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "db", "export", "--db", db, other)
	if r.code == 0 || !strings.Contains(r.stderr, "neither root nor this user") {
		t.Errorf("export through another user's link: %+v, want a refusal", r)
	}
	if fi, err := os.Lstat(other); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the other user's link was replaced: %v", err)
	}
	if _, err := os.Stat(target); err == nil {
		t.Errorf("the export wrote through another user's link")
	}
}

// train --no-refit changes the counts but leaves the n-gram model as it
// was, and says nothing of an interruption; the next fit (db refit, or a
// train without the flag) catches up.
func TestTrainNoRefit(t *testing.T) {
	modelLine := regexp.MustCompile(`^model ([0-9a-f]{24}) fitted on (\d+) spam and (\d+) ham$`)
	model := func(db string) string {
		t.Helper()
		m := modelLine.FindStringSubmatch(statsField(t, db, "ngram"))
		if m == nil {
			t.Fatalf("ngram %q", statsField(t, db, "ngram"))
		}
		return m[1] + " " + m[2] + "/" + m[3]
	}
	db := trainedDB(t)
	full := model(db)
	spam := filepath.Join(fixture("spam"), "00.eml")
	r := runCLI(t, "", "train", "--db", db, "--spam", "--unlearn", "--no-refit", spam)
	if r.code != 0 || r.stdout != "1 message: 1 unlearned from spam, 0 not learned as spam, 0 errors\n" || r.stderr != "" {
		t.Fatalf("train --unlearn --no-refit: %+v", r)
	}
	if got := statsField(t, db, "messages"); got != "13 spam, 14 ham" {
		t.Errorf("after unlearning one spam: messages %q", got)
	}
	if got := model(db); got != full {
		t.Errorf("--no-refit changed the model: %s, was %s", got, full)
	}
	if r := runCLI(t, "", "db", "refit", "--db", db); r.code != 0 || r.stdout != "n-gram model fitted on 13 spam and 14 ham messages\n" {
		t.Fatalf("refit: %+v", r)
	}
	fitted := model(db)
	if !strings.HasSuffix(fitted, " 13/14") {
		t.Errorf("after db refit: model %s, want one fitted on 13/14", fitted)
	}
	// Learned back without a fit, then met again by a plain train: that
	// one fits, and the model is the first one again.
	if r := runCLI(t, "", "train", "--db", db, "--spam", "--no-refit", spam); r.code != 0 || !strings.HasPrefix(r.stdout, "1 message: 1 learned as spam") {
		t.Fatalf("train --no-refit: %+v", r)
	}
	if got := model(db); got != fitted {
		t.Errorf("--no-refit changed the model: %s, was %s", got, fitted)
	}
	if r := runCLI(t, "", "train", "--db", db, "--spam", spam); r.code != 0 || !strings.HasPrefix(r.stdout, "1 message: 0 learned as spam, 1 already learned") {
		t.Fatalf("train: %+v", r)
	}
	if got := model(db); got != full {
		t.Errorf("train without --no-refit: model %s, want %s", got, full)
	}
}

// An empty --db (a variable not set: --db "$NEWDB") is an error, as an
// empty --config is: taken for "not given", it named the configuration's
// store, and an import meant for a new store doubled the counts of the
// one the daemon uses, a prune pruned it, and training trained it.
func TestEmptyDBFlagIsAnError(t *testing.T) {
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)
	cfg := filepath.Join(t.TempDir(), "sluice.yml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+state+"\nfilters:\n  - type: bayes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(t.TempDir(), "export.txt")
	if r := runCLI(t, "", "db", "export", "--db", db, export); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"db", "import", "--db", "", export}, 2},
		{[]string{"db", "--db", "", "import", export}, 2},
		{[]string{"db", "prune", "--db", "", "--max-count", "1000"}, 2},
		{[]string{"db", "refit", "--db", ""}, 2},
		{[]string{"db", "stats", "--db="}, 2},
		{[]string{"train", "--db", "", "--ham", fixture("spam")}, 2},
		{[]string{"classify", "--db", "", fixture("spam", "00.eml")}, statusError},
	} {
		r := runCLI(t, "", append([]string{"--config", cfg}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, "--db is empty") {
			t.Errorf("sluice %q: exit %d, want %d and an error saying --db is empty\n%s%s", tc.args, r.code, tc.code, r.stdout, r.stderr)
		}
	}
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("the configuration's store changed")
	}
	if got := statsField(t, db, "messages"); got != "14 spam, 14 ham" {
		t.Errorf("the configuration's store after the commands: %q, want 14 spam, 14 ham", got)
	}
}

// "sluice db export FILE" names the file to write, not the store to
// export: given the store itself (as "sluice db export
// /var/lib/sluice/bayes.db" does with the default store), it replaced the
// store with its own text export, which the daemon then could not open.
// That is refused, through a symbolic link too, and the store is left as
// it was.
func TestDBExportOntoItsStoreRefused(t *testing.T) {
	db := trainedDB(t)
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{db, link} {
		r := runCLI(t, "", "db", "export", "--db", db, target)
		if r.code != 1 || !strings.Contains(r.stderr, "is the store being exported") {
			t.Errorf("export onto %s: %+v, want exit 1 saying it is the store", target, r)
		}
	}
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("the store changed")
	}
	if got := statsField(t, db, "messages"); got != "14 spam, 14 ham" {
		t.Errorf("the store after the refused exports: %q", got)
	}
}

// A store whose directory does not exist (a state_dir not made yet, which
// sluice does not create, or a mistyped --db) is reported as that: the
// lock file's error used to say that whoever writes the store must be
// able to write its lock file and should run as the store's owner, and
// config check named the random probe file it had tried to make there.
func TestStoreInMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	want := "directory " + missing + " does not exist"
	misleading := []string{"store's owner", ".sluice-check-"}

	cfg := filepath.Join(t.TempDir(), "sluice.yml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+missing+"\nfilters:\n  - type: bayes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"config", "check", cfg},
		{"train", "--spam", "--db", filepath.Join(missing, "bayes.db"), fixture("spam", "00.eml")},
		{"test", "--config", cfg, "--rcpt", "bob@lab.example", fixture("spam", "00.eml")},
	} {
		r := runCLI(t, "", args...)
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("%v: %+v, want exit status 1 and %q", args, r, want)
		}
		for _, m := range misleading {
			if strings.Contains(r.stderr, m) {
				t.Errorf("%v: the error speaks of %q: %s", args, m, r.stderr)
			}
		}
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directory was made, or: %v", err)
	}
}
