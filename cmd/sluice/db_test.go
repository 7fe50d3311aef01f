package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
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
	// An age that is no day (negative, or further back than the calendar
	// goes) is an error: ignored, the rare tokens of any age would go, and
	// a cut-off before year 1 wrapped round to a date after every token.
	for _, days := range []string{"-5", "99999999", "9223372036854775807"} {
		r := runCLI(t, "", "db", "prune", "--db", db, "--older-than", days, "--max-count", "1")
		if r.code != 1 || !strings.Contains(r.stderr, "--older-than "+days) {
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
	if r := runCLI(t, exp.stdout, "db", "import", "--db", db, "-"); r.code == 0 {
		t.Errorf("mixed dialects accepted: %+v", r)
	}
}
