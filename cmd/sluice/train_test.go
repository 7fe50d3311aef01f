package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

// bayesFixtures holds the messages the CLI and daemon tests learn.
const bayesFixtures = "../../testdata/bayes"

func fixture(parts ...string) string {
	return filepath.Join(append([]string{bayesFixtures}, parts...)...)
}

// testRegistry is the shipped registry plus the test filters.
func testRegistry() filters.Registry {
	reg := registry()
	for k, v := range filtertest.Registry() {
		reg[k] = v
	}
	return reg
}

// cliResult is what one run of the command line gave.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs sluice with args in-process, stdin as its standard input,
// and returns its output and exit status as main would set it.
func runCLI(t testing.TB, stdin string, args ...string) cliResult {
	t.Helper()
	root := newRootCmd(testRegistry())
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	err := run(root, args)
	r := cliResult{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		r.code = exitCode(err)
		var ee *exitError
		if !errors.As(err, &ee) || ee.err != nil {
			r.stderr += "sluice: " + err.Error() + "\n"
		}
	}
	return r
}

// trainFixtures trains a new store at db on the fixtures.
func trainFixtures(t testing.TB, db string) {
	t.Helper()
	for _, class := range []string{"spam", "ham"} {
		r := runCLI(t, "", "train", "--db", db, "--"+class, fixture(class))
		if r.code != 0 || !strings.HasPrefix(r.stdout, "14 messages: 14 learned as "+class) {
			t.Fatalf("train %s: %+v", class, r)
		}
	}
}

func TestTrainRelearnMoveUnlearn(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bayes.db")
	trainFixtures(t, db)

	// Learning the same messages again is a no-op.
	r := runCLI(t, "", "train", "--db", db, "--ham", fixture("ham"))
	if want := "14 messages: 0 learned as ham, 14 already learned, 0 moved from spam to ham, 0 errors\n"; r.stdout != want || r.code != 0 {
		t.Errorf("relearn: %+v, want %q", r, want)
	}
	stats := func() string {
		t.Helper()
		r := runCLI(t, "", "db", "stats", "--db", db)
		if r.code != 0 {
			t.Fatalf("stats: %+v", r)
		}
		m := regexp.MustCompile(`messages: +(\d+ spam, \d+ ham)`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("stats output: %q", r.stdout)
		}
		return m[1]
	}
	if got := stats(); got != "14 spam, 14 ham" {
		t.Fatalf("after relearn: %s", got)
	}

	// A misfiled message: learned as spam, then trained as ham, moves.
	msg := fixture("check", "ham.eml")
	r = runCLI(t, "", "train", "--db", db, "--spam", msg)
	if !strings.HasPrefix(r.stdout, "1 message: 1 learned as spam,") {
		t.Errorf("learn: %+v", r)
	}
	r = runCLI(t, "", "train", "--db", db, "--ham", msg)
	if want := "1 message: 0 learned as ham, 0 already learned, 1 moved from spam to ham, 0 errors\n"; r.stdout != want {
		t.Errorf("move: %q, want %q", r.stdout, want)
	}
	if got := stats(); got != "14 spam, 15 ham" {
		t.Errorf("after move: %s", got)
	}
	// The same message from standard input, with an mbox From_ line and
	// CRLF line ends, as procmail pipes it, is the same message.
	raw, _ := os.ReadFile(msg)
	crlf := "From alice@lab.example Mon Jan  1 10:00:00 2024\r\n" + strings.ReplaceAll(string(raw), "\n", "\r\n")
	r = runCLI(t, crlf, "train", "--db", db, "--ham")
	if !strings.Contains(r.stdout, "1 already learned") {
		t.Errorf("stdin relearn: %+v", r)
	}

	// Unlearning removes it; unlearning again finds nothing.
	r = runCLI(t, "", "train", "--db", db, "--ham", "--unlearn", msg)
	if want := "1 message: 1 unlearned from ham, 0 not learned as ham, 0 errors\n"; r.stdout != want {
		t.Errorf("unlearn: %q", r.stdout)
	}
	r = runCLI(t, "", "train", "--db", db, "--ham", "--unlearn", msg)
	if !strings.Contains(r.stdout, "0 unlearned from ham, 1 not learned as ham") {
		t.Errorf("unlearn twice: %q", r.stdout)
	}
	if got := stats(); got != "14 spam, 14 ham" {
		t.Errorf("after unlearn: %s", got)
	}
}

func TestTrainInputs(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	spam, _ := filepath.Glob(fixture("spam", "*.eml"))
	ham, _ := filepath.Glob(fixture("ham", "*.eml"))

	// An mbox of the first five spam messages, one with a body line the
	// writer had to quote.
	special, _ := os.ReadFile(spam[0])
	special = append(special, "From the desk of the director\n"...)
	specialPath := filepath.Join(dir, "special.eml")
	os.WriteFile(specialPath, special, 0o644)
	var mbox strings.Builder
	for i, p := range spam[:5] {
		raw, _ := os.ReadFile(p)
		if i == 0 {
			raw = bytes.Replace(special, []byte("\nFrom the desk"), []byte("\n>From the desk"), 1)
		}
		mbox.WriteString("From spammer@example.com Mon Jan  1 10:00:00 2024\n")
		mbox.Write(raw)
		mbox.WriteString("\n")
	}
	mboxPath := filepath.Join(dir, "spam.mbox")
	os.WriteFile(mboxPath, []byte(mbox.String()), 0o644)
	// A maildir of the next five.
	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, sub), 0o755)
	}
	for i, p := range spam[5:10] {
		raw, _ := os.ReadFile(p)
		sub := []string{"cur", "new"}[i%2]
		os.WriteFile(filepath.Join(md, sub, filepath.Base(p)+":2,S"), raw, 0o644)
	}
	// A list file naming the rest, plus a path that does not exist.
	list := filepath.Join(dir, "list")
	os.WriteFile(list, []byte(strings.Join(spam[10:], "\n")+"\n\n"+filepath.Join(dir, "missing.eml")+"\n"), 0o644)

	r := runCLI(t, "", "train", "--db", db, "--spam", "--list", list, mboxPath, md)
	if r.code != 1 {
		t.Errorf("a missing path gives status %d, want 1", r.code)
	}
	if want := "14 messages: 14 learned as spam, 0 already learned, 0 moved from ham to spam, 1 error\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "missing.eml") {
		t.Errorf("the missing file is not reported: %q", r.stderr)
	}

	// The same spam again, as plain files, is already known: the mbox
	// copies were read (and unquoted) as the messages they hold.
	r = runCLI(t, "", "train", "--db", db, "--spam", specialPath, spam[1], spam[2], spam[3], spam[4], md)
	if !strings.HasPrefix(r.stdout, "10 messages: 0 learned as spam, 10 already learned") {
		t.Errorf("relearn: %+v", r)
	}

	// --list - reads the list from standard input.
	r = runCLI(t, strings.Join(ham, "\n"), "train", "--db", db, "--ham", "--list", "-")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "14 messages: 14 learned as ham") {
		t.Errorf("list from stdin: %+v", r)
	}
	// Standard input as list and as message at once cannot work.
	r = runCLI(t, "", "train", "--db", db, "--ham", "--list", "-", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "only once") {
		t.Errorf("stdin twice: %+v", r)
	}
}

func TestTrainUsage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bayes.db")
	for _, args := range [][]string{
		{"train", "--db", db, fixture("spam")},
		{"train", "--db", db, "--spam", "--ham", fixture("spam")},
	} {
		r := runCLI(t, "", args...)
		if r.code == 0 {
			t.Errorf("%v: accepted", args)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("a usage error created the store")
	}
}

// The store path defaults to the db option of the config's first bayes
// filter, else to bayes.db in state_dir.
func TestDBDefaultsFromConfig(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o755)
	named := filepath.Join(dir, "named.db")
	withFilter := filepath.Join(dir, "with-filter.yml")
	os.WriteFile(withFilter, []byte("state_dir: "+state+"\nfilters:\n  - type: script\n  - type: bayes\n    options:\n      db: "+named+"\n"), 0o644)
	stateOnly := filepath.Join(dir, "state-only.yml")
	os.WriteFile(stateOnly, []byte("state_dir: "+state+"\n"), 0o644)

	msg := fixture("check", "spam.eml")
	if r := runCLI(t, "", "--config", withFilter, "train", "--spam", msg); r.code != 0 {
		t.Fatalf("train: %+v", r)
	}
	if _, err := os.Stat(named); err != nil {
		t.Errorf("the filter's db was not used: %v", err)
	}
	if r := runCLI(t, "", "--config", stateOnly, "train", "--spam", msg); r.code != 0 {
		t.Fatalf("train: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(state, "bayes.db")); err != nil {
		t.Errorf("<state_dir>/bayes.db was not used: %v", err)
	}
	// --db wins over the config.
	other := filepath.Join(dir, "other.db")
	if r := runCLI(t, "", "--config", withFilter, "train", "--spam", "--db", other, msg); r.code != 0 {
		t.Fatalf("train: %+v", r)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("--db was not used: %v", err)
	}
	// A broken config is an error, not a silent default.
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("filters:\n  - type: bayes\n    options:\n      db: [x]\n"), 0o644)
	if r := runCLI(t, "", "--config", bad, "train", "--spam", msg); r.code == 0 {
		t.Errorf("broken config accepted: %+v", r)
	}
	// So is a misspelt option: training with other limits than the
	// daemon's would learn other tokens. The error names the file, the
	// line and the key as the daemon's does, not a line of the options
	// counted from their own start.
	os.WriteFile(bad, []byte("state_dir: "+state+"\nfilters:\n  - type: script\n  - type: bayes\n    options:\n      robx: 0.5\n      max_token: 10\n"), 0o644)
	want := bad + ":7: filters[1].options.max_token: unknown key"
	if r := runCLI(t, "", "--config", bad, "train", "--spam", msg); r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("misspelt option: want an error containing %q, got %+v", want, r)
	}
	os.WriteFile(bad, []byte("filters:\n  - type: bayes\n    options:\n      max_bytes: 10\n      max_size: lots\n"), 0o644)
	want = bad + ":5: filters[0].options.max_size: "
	if r := runCLI(t, "", "--config", bad, "classify", msg); r.code != statusError || !strings.Contains(r.stderr, want) {
		t.Errorf("bad option value: want status 3 and an error containing %q, got %+v", want, r)
	}
}

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	if isTerminal(&b) {
		t.Fatal("a buffer is a terminal")
	}
	p := &progressBar{w: &b, total: 1000, every: 0, start: time.Now().Add(-time.Second)}
	p.add(250)
	p.add(250)
	if !regexp.MustCompile(`\r\[#{15}\.{15}\]  50% 2 messages, \d+/s$`).MatchString(b.String()) {
		t.Errorf("bar %q", b.String())
	}
	p.clear()
	if !strings.HasSuffix(b.String(), "\r\033[K") {
		t.Errorf("clear %q", b.String())
	}
	var nilBar *progressBar
	nilBar.add(1) // no bar: nothing happens
	// /dev/null is a character device like a terminal; writing the bar
	// there is harmless.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if !isTerminal(null) {
		t.Error("character device not recognised")
	}
}

// --unlearn removes what a store learned: with no store at the path
// there is nothing to remove, and an empty store must not be created
// where the path was mistyped (as classify does not create one either).
func TestTrainUnlearnNeedsAStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "typo.db")
	r := runCLI(t, "", "train", "--db", db, "--spam", "--unlearn", fixture("check", "spam.eml"))
	if r.code != 1 || !strings.Contains(r.stderr, "no token store at "+db) {
		t.Errorf("unlearn from a missing store: %+v, want status 1 and \"no token store\"", r)
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("--unlearn created a store")
	}
}

// With header.name set to another name than the default, the verdict
// field of a delivered message is left out as the default one is: the
// message learned as it was received (as the daemon auto-learns it) and
// retrained from the mailbox, where it carries the field, is moved, not
// learned twice; the field is no token; and --unlearn finds it.
func TestTrainCustomVerdictFieldLeftOut(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	cfg := filepath.Join(dir, "sluice.yml")
	conf := "state_dir: " + dir + "\nfilters:\n  - type: bayes\n    options:\n      db: " + db + "\n      header:\n        name: X-Junk-Verdict\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	received, delivered := fixture("retrain", "received.eml"), fixture("retrain", "delivered.eml")
	raw, err := os.ReadFile(delivered)
	if err != nil || !strings.Contains(string(raw), "\nX-Junk-Verdict: Spam,") {
		t.Fatalf("fixture %s: %v", delivered, err)
	}

	r := runCLI(t, "", "--config", cfg, "train", "--spam", received)
	if !strings.HasPrefix(r.stdout, "1 message: 1 learned as spam,") || r.code != 0 {
		t.Fatalf("learn as received: %+v", r)
	}
	r = runCLI(t, "", "--config", cfg, "train", "--ham", delivered)
	if want := "1 message: 0 learned as ham, 0 already learned, 1 moved from spam to ham, 0 errors\n"; r.stdout != want || r.code != 0 {
		t.Errorf("retrain as delivered: %+v, want %q", r, want)
	}
	// The store holds the message as ham only, and the field as no token.
	r = runCLI(t, "", "--config", cfg, "db", "dump")
	if r.code != 0 || r.stdout == "" {
		t.Fatalf("dump: %+v", r)
	}
	var bad []string
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[1] != "0" || f[2] != "1" {
			bad = append(bad, line)
		}
		if strings.Contains(strings.ToLower(f[0]), "junk-verdict") {
			t.Errorf("the verdict field was learned: %q", line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d tokens not of one ham message, e.g. %q", len(bad), bad[:min(len(bad), 3)])
	}
	r = runCLI(t, "", "--config", cfg, "train", "--ham", "--unlearn", delivered)
	if want := "1 message: 1 unlearned from ham, 0 not learned as ham, 0 errors\n"; r.stdout != want {
		t.Errorf("unlearn as delivered: %+v, want %q", r, want)
	}
}

// train --queue-id over a --list of many paths, none holding the message,
// ends in one short error line that says how many paths there were and
// names a few, as classify's "no messages found" does: a list of
// thousands made a line of hundreds of kilobytes.
func TestTrainNoMatchInManyPaths(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	listFile := emptyDirsList(t, dir, 500)
	r := runCLI(t, "", "train", "--db", db, "--spam", "--queue-id", "4XyZ1n2Kq7z", "--list", listFile)
	if r.code != 1 || !strings.Contains(r.stderr, "no message with queue id 4XyZ1n2Kq7z in the 500 paths given") ||
		!strings.Contains(r.stderr, "empty-directory-with-a-long-name-000") || len(r.stderr) > 500 {
		t.Errorf("exit %d, stderr (%d bytes) %.600q; want 1 and one short line", r.code, len(r.stderr), r.stderr)
	}
	// A few paths are all named, as before.
	one := filepath.Join(dir, "empty-directory-with-a-long-name-001")
	r = runCLI(t, "", "train", "--db", db, "--spam", "--queue-id", "4XyZ1n2Kq7z", one)
	if r.code != 1 || !strings.Contains(r.stderr, "no message with queue id 4XyZ1n2Kq7z in "+one+"\n") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// A train that learns nothing into a store it would create (a mistyped
// PATH, a --queue-id that matches no message) leaves no store behind, as
// a failed db import does not: classify would take the empty store for
// one that wants training and answer unsure, hiding the mistake, instead
// of reporting that there is no store. A store that was there before the
// run stays, empty or not, and so does its lock file: the daemon made
// it, as docs/training.md advises, for train to write into.
func TestTrainLearningNothingCreatesNoStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"missing path", []string{"--spam", filepath.Join(t.TempDir(), "Maildir", ".Junkk")}},
		{"no queue id matches", []string{"--spam", "--queue-id", "4XyZ1n2Kq7z", fixture("spam")}},
		{"empty directory", []string{"--ham", t.TempDir()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "new.db")
			r := runCLI(t, "", append([]string{"train", "--db", db}, tc.args...)...)
			if strings.Contains(r.stdout, "1 learned") {
				t.Fatalf("train learned something: %+v", r)
			}
			if names, _ := os.ReadDir(dir); len(names) != 0 {
				t.Errorf("train that learned nothing left %v in the store's directory", names)
			}
			r = runCLI(t, "", "classify", "--db", db, fixture("check", "spam.eml"))
			if r.code != 3 || !strings.Contains(r.stderr, "no token store at "+db) {
				t.Errorf("classify after it: %+v, want status 3 and \"no token store\"", r)
			}

			// A store made before the run, by the daemon, stays.
			st, err := classifier.OpenBolt(db, classifier.BoltOptions{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			runCLI(t, "", append([]string{"train", "--db", db}, tc.args...)...)
			for _, p := range []string{db, db + ".lock"} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("the store made before the run: %v", err)
				}
			}
		})
	}
}
