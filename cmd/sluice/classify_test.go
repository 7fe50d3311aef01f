package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/mailbox"
)

// trainedDB returns a store trained on the fixtures.
func trainedDB(t *testing.T) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "bayes.db")
	trainFixtures(t, db)
	return db
}

// The exit status with one message is bogofilter's: 0 spam, 1 ham,
// 2 unsure, 3 error.
func TestClassifyExitStatus(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	// A configuration whose bayes filter needs far more training than the
	// store has: every verdict is unsure.
	needMore := filepath.Join(dir, "need-more.yml")
	os.WriteFile(needMore, []byte("filters:\n  - type: bayes\n    options:\n      min_spam: 1000\n"), 0o644)
	empty := filepath.Join(dir, "empty.eml")
	os.WriteFile(empty, nil, 0o644)
	blank := filepath.Join(dir, "blank.eml")
	os.WriteFile(blank, []byte("\n\n"), 0o644)
	spam, _ := os.ReadFile(fixture("check", "spam.eml"))
	// A ham piped by procmail, with its From_ line, holding a patch as
	// git format-patch writes it: one message, whose verdict is the
	// status.
	ham, _ := os.ReadFile(fixture("check", "ham.eml"))
	patched := "From ann@example.org  Sun Dec  6 01:00:00 2026\n" + string(ham) +
		"\nFrom 3f2a9c1b4d5e6f708192a3b4c5d6e7f8091a2b3c Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n"
	emptyDir := filepath.Join(dir, "no-mail")
	os.Mkdir(emptyDir, 0o755)
	emptyDB := filepath.Join(dir, "empty.db")
	os.WriteFile(emptyDB, nil, 0o640)

	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		out   string // regexp of stdout
	}{
		{"spam", "", []string{"classify", "--db", db, fixture("check", "spam.eml")}, 0, `^.*spam\.eml: spam, spamicity=(0\.9\d{5}|1\.000000)\n$`},
		{"ham", "", []string{"classify", "--db", db, fixture("check", "ham.eml")}, 1, `: ham, spamicity=0\.[0-2]\d{5}\n$`},
		{"unsure", "", []string{"--config", needMore, "classify", "--db", db, fixture("check", "spam.eml")}, 2, `: unsure, spamicity=\S+ \(not enough training[^)]*1000[^)]*\)\n$`},
		{"stdin ham with a patch", patched, []string{"classify", "--db", db}, 1, `^-: ham, `},
		{"stdin spam", string(spam), []string{"classify", "--db", db, "--format", "tsv"}, 0, `^-\t(0\.9\d{5}|1\.000000)\tspam\n$`},
		{"blank message", "", []string{"classify", "--db", db, "--format", "tsv", blank}, 3, `blank\.eml\t-\terror\n$`},
		// An empty file is an mbox holding no message: no verdict.
		{"empty file", "", []string{"classify", "--db", db, "--format", "tsv", empty}, 3, `^$`},
		{"missing file", "", []string{"classify", "--db", db, filepath.Join(dir, "nope.eml")}, 3, `nope\.eml: error: `},
		{"missing store", "", []string{"classify", "--db", filepath.Join(dir, "nope.db"), fixture("check", "spam.eml")}, 3, `^$`},
		// An empty file (touched, or made by "install /dev/null" for its
		// owner and mode) is no store either: classify must not write one
		// into it and answer unsure for want of training.
		{"empty store file", "", []string{"classify", "--db", emptyDB, fixture("check", "spam.eml")}, 3, `^$`},
		{"bad format", "", []string{"classify", "--db", db, "--format", "xml", fixture("check", "spam.eml")}, 3, `^$`},
		{"bad flag", "", []string{"classify", "--db", db, "--verbose", fixture("check", "spam.eml")}, 3, `^$`},
		{"explain with tsv", "", []string{"classify", "--db", db, "--format", "tsv", "--explain", fixture("check", "spam.eml")}, 3, `^$`},
		{"several, all fine", "", []string{"classify", "--db", db, fixture("check", "spam.eml"), fixture("check", "ham.eml")}, 0, `spam, .*\n.*ham, `},
		{"several, one broken", "", []string{"classify", "--db", db, fixture("check", "ham.eml"), blank}, 3, `ham, .*\n.*blank\.eml: error`},
		// The empty file holds no message: one message, ham.
		{"one and an empty file", "", []string{"classify", "--db", db, fixture("check", "ham.eml"), empty}, 1, `^.*ham\.eml: ham, spamicity=\S+\n$`},
		// No message at all is no verdict: 0 would read as spam to a
		// script that expects one message.
		{"empty directory", "", []string{"classify", "--db", db, emptyDir}, 3, `^$`},
		{"empty list", "\n", []string{"classify", "--db", db, "--list", "-"}, 3, `^$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.stdin, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d\n%+v", r.code, tc.code, r)
			}
			if !regexp.MustCompile(tc.out).MatchString(r.stdout) {
				t.Errorf("stdout %q does not match %q", r.stdout, tc.out)
			}
			if tc.code == 3 && r.stderr == "" {
				t.Error("an error without a message on stderr")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); err == nil {
		t.Error("classify created a store")
	}
	if fi, err := os.Stat(emptyDB); err != nil || fi.Size() != 0 {
		t.Errorf("classify wrote into an empty file: %v", err)
	}
}

func TestClassifyTSVOverMboxMaildirDirList(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	spam, _ := os.ReadFile(fixture("check", "spam.eml"))
	ham, _ := os.ReadFile(fixture("check", "ham.eml"))
	mbox := filepath.Join(dir, "in.mbox")
	os.WriteFile(mbox, []byte("From a@b Mon Jan  1 10:00:00 2024\n"+string(spam)+"\nFrom a@b Mon Jan  1 10:00:00 2024\n"+string(ham)+"\n"), 0o644)
	md := filepath.Join(dir, "tree", "Maildir")
	os.MkdirAll(filepath.Join(md, "cur"), 0o755)
	os.MkdirAll(filepath.Join(md, "new"), 0o755)
	os.WriteFile(filepath.Join(md, "new", "1.host"), spam, 0o644)
	os.WriteFile(filepath.Join(md, "cur", "2.host:2,S"), ham, 0o644)
	os.WriteFile(filepath.Join(dir, "tree", "z.eml"), spam, 0o644)
	// A file name with a tab stays in its column.
	tabbed := filepath.Join(dir, "a\tb.eml")
	os.WriteFile(tabbed, ham, 0o644)
	list := filepath.Join(dir, "list")
	os.WriteFile(list, []byte(tabbed+"\n"), 0o644)

	r := runCLI(t, "", "classify", "--db", db, "--format", "tsv", "--list", list, mbox, filepath.Join(dir, "tree"))
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			t.Fatalf("line %q has %d columns", line, len(f))
		}
		if s, err := strconv.ParseFloat(f[1], 64); err != nil || s < 0 || s > 1 || len(f[1]) != 8 {
			t.Errorf("spamicity %q", f[1])
		}
		rel := strings.TrimPrefix(f[0], dir+"/")
		got = append(got, rel+" "+f[2])
	}
	want := []string{
		`a\tb.eml ham`,
		"in.mbox#1 spam",
		"in.mbox#2 ham",
		"tree/Maildir/new/1.host spam",
		"tree/Maildir/cur/2.host:2,S ham",
		"tree/z.eml spam",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClassifyJSONExplain(t *testing.T) {
	db := trainedDB(t)
	r := runCLI(t, "", "classify", "--db", db, "--format", "json", "--explain", fixture("check", "spam.eml"), fixture("check", "ham.eml"))
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), r.stdout)
	}
	for i, want := range []string{"spam", "ham"} {
		var l jsonLine
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil {
			t.Fatal(err)
		}
		if l.Verdict != want || l.Spamicity == nil || l.Tokens == 0 || l.Used == 0 || len(l.Clues) == 0 || !strings.HasSuffix(l.Path, want+".eml") {
			t.Errorf("line %d: %+v", i, l)
		}
		// Header, body and n-gram model alone. The body and the n-gram
		// model lean the message's way. The spam's header has one token
		// that counts, its recipient (to:bob@lab.example, in 6 ham of the
		// training and no spam), so the header part is that token's
		// probability, on the ham side.
		if len(l.Parts) != 3 || l.Parts[0].Name != "header" || l.Parts[1].Name != "body" || l.Parts[2].Name != "ngram" {
			t.Fatalf("line %d: parts %+v", i, l.Parts)
		}
		for _, p := range l.Parts[1:] {
			if p.Used == 0 || (want == "spam") != (p.Spamicity > 0.5) {
				t.Errorf("%s: part %+v", want, p)
			}
		}
		if h := l.Parts[0]; want == "ham" && (h.Used == 0 || h.Spamicity > 0.5) {
			t.Errorf("ham: header part %+v", h)
		}
		if h := l.Parts[0]; want == "spam" {
			var clue *jsonClue
			for k, c := range l.Clues {
				if strings.HasPrefix(c.Token, "to:bob@") {
					clue = &l.Clues[k]
				}
			}
			if h.Used != 1 || clue == nil || math.Abs(h.Spamicity-clue.Prob) > 1e-9 || clue.Prob > 0.5 {
				t.Errorf("spam: header part %+v, recipient clue %+v", h, clue)
			}
		}
		// The clues decided: for spam they lean to spam, for ham to ham.
		for _, c := range l.Clues[:3] {
			if (want == "spam") != (c.Prob > 0.5) {
				t.Errorf("%s: clue %+v leans the wrong way", want, c)
			}
		}
	}
	// text --explain lists tokens under the verdict line.
	r = runCLI(t, "", "classify", "--db", db, "--explain", fixture("check", "spam.eml"))
	if r.code != 0 || !regexp.MustCompile(`(?m)^  0\.9\d{5} +\d+ +0  "\S+"$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^  header alone: spamicity=\d\.\d{6}, \d+ used\n  body alone: spamicity=\d\.\d{6}, \d+ used$`).MatchString(r.stdout) {
		t.Errorf("text explain: %+v", r)
	}
}

// text --explain explains a message none of whose tokens counts too: its
// verdict then comes from the n-gram model alone, which json --explain
// shows as a part, and text showed nothing below the verdict line.
func TestClassifyTextExplainWithoutClues(t *testing.T) {
	db := trainedDB(t)
	msg := filepath.Join(t.TempDir(), "unknown.eml")
	os.WriteFile(msg, []byte("Subject: zqxjv\n\nqwzrtp vbnmkl\n"), 0o644)
	r := runCLI(t, "", "classify", "--db", db, "--format", "json", "--explain", msg)
	var l jsonLine
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || l.Used != 0 || len(l.Clues) != 0 || len(l.Parts) != 1 || l.Parts[0].Name != "ngram" {
		t.Fatalf("json explain of a message of unknown tokens: %v, %+v", err, r)
	}
	r = runCLI(t, "", "classify", "--db", db, "--explain", msg)
	if !regexp.MustCompile(`(?m)^  \d+ tokens, 0 used; learned from \d+ spam and \d+ ham\n  ngram alone: spamicity=\d\.\d{6}, \d+ used\n  prob +spam +ham  token\n$`).MatchString(r.stdout) {
		t.Errorf("text explain: %+v", r)
	}
}

// damageStore overwrites every page of the bbolt file at db but the two
// meta pages, as a bad disk or a stray write would: the file still opens,
// its pages are garbage.
func damageStore(t *testing.T, db string) {
	t.Helper()
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	if len(data) < 3*page {
		t.Fatalf("store of %d bytes: too small to damage", len(data))
	}
	for p := 2 * page; p+page <= len(data); p += page {
		for i := p + 16; i < p+page; i++ {
			data[i] = 0xff
		}
	}
	if err := os.WriteFile(db, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

// A damaged store is an error naming the store (exit status 3 for
// classify, 1 for the others), not a crash: a panic exits with status 2,
// which a procmail recipe would read as "unsure".
func TestDamagedStore(t *testing.T) {
	db := trainedDB(t)
	damageStore(t, db)
	msg := fixture("check", "spam.eml")
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"classify", "--db", db, msg}, statusError},
		{[]string{"db", "stats", "--db", db}, 1},
		{[]string{"db", "dump", "--db", db}, 1},
		{[]string{"db", "export", "--db", db}, 1},
		{[]string{"train", "--ham", "--db", db, msg}, 1},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			r := runCLI(t, "", tc.args...)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d\n%+v", r.code, tc.code, r)
			}
			if !strings.Contains(r.stderr, db) || !strings.Contains(r.stderr, "damaged") {
				t.Errorf("stderr does not say that %s is damaged: %q", db, r.stderr)
			}
		})
	}
}

// A message longer than max_bytes in the middle of an mbox is classified
// on its first max_bytes and said to be truncated, and the messages
// around it are read as if it were short: its rest, a line longer than
// the read buffer and a "From " line inside included, is read through to
// find the next message.
func TestClassifyHugeMessageInMbox(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "small.yml")
	os.WriteFile(conf, []byte("filters:\n  - type: bayes\n    options:\n      max_bytes: 8KiB\n"), 0o644)
	spam, _ := os.ReadFile(fixture("check", "spam.eml"))
	ham, _ := os.ReadFile(fixture("check", "ham.eml"))
	huge := string(spam) + "\n" + strings.Repeat("filler line of the huge message\n", 10000) +
		strings.Repeat("z", 200<<10) + "\nFrom a line in the body\n"
	sep := "From a@b Mon Jan  1 10:00:00 2024\n"
	mbox := filepath.Join(dir, "in.mbox")
	os.WriteFile(mbox, []byte(sep+string(ham)+"\n"+sep+huge+"\n"+sep+string(ham)+"\n"), 0o644)
	hamFile := filepath.Join(dir, "ham.eml")
	os.WriteFile(hamFile, ham, 0o644)
	hugeFile := filepath.Join(dir, "huge.eml")
	os.WriteFile(hugeFile, []byte(huge), 0o644)

	r := runCLI(t, "", "--config", conf, "classify", "--db", db, "--format", "json", mbox, hamFile, hugeFile)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5: %q", len(lines), r.stdout)
	}
	got := make([]jsonLine, len(lines))
	for i, line := range lines {
		if err := json.Unmarshal([]byte(line), &got[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got[1].Verdict != "spam" || !got[1].Truncated || !strings.HasSuffix(got[1].Path, "#2") {
		t.Errorf("the huge message: %+v, want spam and truncated", got[1])
	}
	// The huge message as a file of its own: the same result.
	if got[4].Truncated != got[1].Truncated || *got[4].Spamicity != *got[1].Spamicity || got[4].Tokens != got[1].Tokens {
		t.Errorf("the huge message in the mbox %+v, as a file %+v", got[1], got[4])
	}
	for _, i := range []int{0, 2} {
		if got[i].Verdict != "ham" || got[i].Truncated || *got[i].Spamicity != *got[3].Spamicity || got[i].Tokens != got[3].Tokens {
			t.Errorf("message %d of the mbox: %+v, want as the file %+v", i+1, got[i], got[3])
		}
	}
	// The text format says so too, as docs/training.md promises.
	r = runCLI(t, "", "--config", conf, "classify", "--db", db, hamFile, hugeFile)
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	text := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(text) != 2 || strings.Contains(text[0], "truncated") || !strings.Contains(text[1], ", truncated") {
		t.Errorf("text output %q: want the huge message, and only it, said to be truncated", r.stdout)
	}
}

// A backslash in a TSV path is written \\, so that a file named with a
// tab and one named with a backslash and a "t" print apart and each can
// be read back.
func TestClassifyTSVEscapesBackslash(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	ham, err := os.ReadFile(fixture("check", "ham.eml"))
	if err != nil {
		t.Fatal(err)
	}
	tab := filepath.Join(dir, "a\tb.eml")
	backslash := filepath.Join(dir, `a\tb.eml`)
	for _, p := range []string{tab, backslash} {
		if err := os.WriteFile(p, ham, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := runCLI(t, "", "classify", "--db", db, "--format", "tsv", tab, backslash)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%+v", r)
	}
	want := []string{strings.ReplaceAll(dir, `\`, `\\`) + `/a\tb.eml`, strings.ReplaceAll(dir, `\`, `\\`) + `/a\\tb.eml`}
	for i, l := range lines {
		if p, _, _ := strings.Cut(l, "\t"); p != want[i] {
			t.Errorf("line %d: path %q, want %q", i+1, p, want[i])
		}
	}
}

// A path that is not UTF-8 cannot be a JSON string; its bytes are given
// in path_base64 as well.
func TestClassifyJSONNonUTF8Path(t *testing.T) {
	db := trainedDB(t)
	p := filepath.Join(t.TempDir(), "Entw\xfcrfe.eml")
	ham, err := os.ReadFile(fixture("check", "ham.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, ham, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "classify", "--db", db, "--format", "json", p)
	var l struct {
		Path       string `json:"path"`
		PathBase64 string `json:"path_base64"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		t.Fatalf("%v: %+v", err, r)
	}
	raw, err := base64.StdEncoding.DecodeString(l.PathBase64)
	if err != nil || string(raw) != p {
		t.Errorf("path_base64 %q (%q, %v), want the bytes of %q", l.PathBase64, raw, err, p)
	}
	// A UTF-8 path has none.
	q := filepath.Join(t.TempDir(), "Entwürfe.eml")
	if err := os.WriteFile(q, ham, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "classify", "--db", db, "--format", "json", q)
	if strings.Contains(r.stdout, "path_base64") || !strings.Contains(r.stdout, `"path":"`+q+`"`) {
		t.Errorf("UTF-8 path: %s", r.stdout)
	}
}

// A command line that names classify is a classify invocation even when
// cobra settles on no command: an unknown flag before the word (which
// cobra takes to consume the word as its value) or --config without its
// value gave 1 (ham) or the help with 0 (spam) to a procmail recipe.
func TestClassifyMisplacedFlagIsError(t *testing.T) {
	db := trainedDB(t)
	spam, _ := os.ReadFile(fixture("check", "spam.eml"))
	msg := fixture("check", "spam.eml")
	for _, args := range [][]string{
		{"--bogus", "classify", "--db", db, msg},
		{"--bogus", "classify", msg},
		{"--bogus", "classify"},
		{"-x", "classify", "--db", db, msg},
		{"--config", "classify", "--db", db, msg},
		{"--config", "classify", msg},
		{"--config", "classify"},
	} {
		r := runCLI(t, string(spam), args...)
		if r.code != statusError || !strings.HasPrefix(r.stderr, "sluice: classify: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("sluice %s: exit %d, stderr %q; want %d and one error line", strings.Join(args, " "), r.code, r.stderr, statusError)
		}
	}
	// Asking for the help is no error.
	if r := runCLI(t, "", "--help", "classify"); r.code != 0 || r.stderr != "" {
		t.Errorf("sluice --help classify: exit %d, stderr %q", r.code, r.stderr)
	}
}

// The text format shows a file name's control characters escaped, in a
// verdict line and in an error line: a name holding an escape sequence
// must not drive the terminal of whoever classifies the directory.
func TestClassifyTextEscapesControls(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	ham, err := os.ReadFile(fixture("check", "ham.eml"))
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "a\x1b]0;owned\x07.eml")
	if err := os.WriteFile(good, ham, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "b\x1b[2J\x9b.eml")
	r := runCLI(t, "", "classify", "--db", db, good, missing)
	if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07") || strings.Contains(r.stdout+r.stderr, "\x9b") {
		t.Errorf("control characters reached the output: %q %q", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, `a\x1b]0;owned\x07.eml: ham`) {
		t.Errorf("verdict line not shown escaped: %q", r.stdout)
	}
	if !strings.Contains(r.stdout+r.stderr, `b\x1b[2J\x9b.eml`) {
		t.Errorf("error line not shown escaped: %q %q", r.stdout, r.stderr)
	}
	// train's error lines on standard error too.
	r = runCLI(t, "", "train", "--db", db, "--ham", missing)
	if strings.Contains(r.stderr, "\x1b") || !strings.Contains(r.stderr, `b\x1b[2J\x9b.eml`) {
		t.Errorf("train's error line not shown escaped: %q", r.stderr)
	}
}

// The error that ends a run of classify or train, which main writes as
// "sluice: ...", shows a path's control characters escaped too: an empty
// folder, a list or a store named with an escape sequence must not drive
// the terminal through it.
func TestFinalErrorEscapesControls(t *testing.T) {
	db := trainedDB(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "new\x1b]0;owned\x07")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	nolist := filepath.Join(dir, "list\x1b[2J\x9b")
	nodb := filepath.Join(dir, "store\x1b[2J.db")
	msg := fixture("check", "ham.eml")
	for _, args := range [][]string{
		{"classify", "--db", db, empty},
		{"classify", "--db", db, "--list", nolist},
		{"classify", "--db", nodb, msg},
		{"train", "--db", db, "--spam", "--list", nolist},
		{"train", "--db", nodb, "--spam", "--unlearn", msg},
	} {
		root := newRootCmd(testRegistry())
		var out, errb strings.Builder
		root.SetOut(&out)
		root.SetErr(&errb)
		root.SetIn(strings.NewReader(""))
		err := run(root, args)
		if err == nil {
			t.Errorf("%q: no error", args)
			continue
		}
		var got strings.Builder
		reportError(&got, err)
		line := got.String()
		if strings.ContainsAny(line, "\x1b\x07") || strings.Contains(line, "\x9b") {
			t.Errorf("%q: control characters reached standard error: %q", args, line)
		}
		if !strings.Contains(line, `\x1b`) {
			t.Errorf("%q: the path is not shown escaped: %q", args, line)
		}
	}
}

// classifyAll reports messages in the order they come in, whatever the
// number of workers scoring them, and stops at the first error a report
// returns, reporting nothing after it.
func TestClassifyAllKeepsOrder(t *testing.T) {
	db := trainedDB(t)
	st, err := classifier.OpenBolt(db, classifier.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cl := classifier.New(st, classifier.DefaultParams())
	spam, _ := os.ReadFile(fixture("check", "spam.eml"))
	ham, _ := os.ReadFile(fixture("check", "ham.eml"))
	dir := t.TempDir()
	var paths []string
	for i := range 40 {
		p := filepath.Join(dir, fmt.Sprintf("%02d.eml", i))
		switch {
		case i%7 == 3:
			os.WriteFile(p, []byte("\n\n"), 0o644) // blank: no message to read
		case i%3 == 0:
			os.WriteFile(p, spam, 0o644)
		default:
			os.WriteFile(p, ham, 0o644)
		}
		paths = append(paths, p)
	}
	// An mbox of several messages among the files.
	mbox := filepath.Join(dir, "in.mbox")
	os.WriteFile(mbox, []byte("From a@b Mon Jan  1 10:00:00 2024\n"+string(spam)+"\nFrom a@b Mon Jan  1 10:00:00 2024\n"+string(ham)+"\n"), 0o644)
	paths = append(paths[:20], append([]string{mbox}, paths[20:]...)...)

	run := func(workers, stopAt int) ([]string, int, int, error) {
		var got []string
		rd := mailbox.Reader{MaxBytes: cl.Tokenizer().MaxBytes()}
		n, failed, _, err := classifyAll(context.Background(), rd, paths, cl, false, workers, func(j *classifyJob) error {
			line := filepath.Base(j.m.Name)
			switch {
			case j.m.Err != nil:
				line += " error"
			case j.err != nil:
				line += " failed: " + j.err.Error()
			default:
				line += fmt.Sprintf(" %s %.6f", j.res.Verdict, j.res.Spamicity)
			}
			got = append(got, line)
			if len(got) == stopAt {
				return errors.New("stop here")
			}
			return nil
		})
		return got, n, failed, err
	}
	one, n, failed, err := run(1, -1)
	if err != nil || n != 42 || failed != 6 || len(one) != 42 {
		t.Fatalf("one worker: %d messages, %d failed, %d reported, %v", n, failed, len(one), err)
	}
	// The files in the order given, the mbox's two messages after the
	// 20th; the empty files are errors and the rest spam or ham.
	for i, line := range one {
		k := i
		if i >= 22 {
			k = i - 2
		} else if i >= 20 {
			continue
		}
		want := fmt.Sprintf("%02d.eml ", k)
		switch {
		case k%7 == 3:
			want += "error"
		case k%3 == 0:
			want += "spam"
		default:
			want += "ham"
		}
		if !strings.HasPrefix(line, want) {
			t.Errorf("line %d: %q, want %q...", i, line, want)
		}
	}
	if !strings.HasPrefix(one[20], "in.mbox#1 spam") || !strings.HasPrefix(one[21], "in.mbox#2 ham") {
		t.Errorf("mbox lines %q, %q", one[20], one[21])
	}
	for _, workers := range []int{2, 4, 8} {
		got, _, _, err := run(workers, -1)
		if err != nil || strings.Join(got, "\n") != strings.Join(one, "\n") {
			t.Errorf("%d workers: %v\n%s\nwant\n%s", workers, err, strings.Join(got, "\n"), strings.Join(one, "\n"))
		}
		got, _, _, err = run(workers, 5)
		if err == nil || err.Error() != "stop here" || strings.Join(got, "\n") != strings.Join(one[:5], "\n") {
			t.Errorf("%d workers, stopped at the 5th: %v\n%s", workers, err, strings.Join(got, "\n"))
		}
	}
}

// The text and tsv spamicity is on the verdict's side of the cutoffs:
// with a cutoff set to the six-place value the exact spamicity (as json
// gives it) rounds to but did not reach, the message is unsure, and a
// script comparing the printed number with the cutoff must not read it
// as spam or ham.
func TestClassifyPrintedSpamicityAgreesWithVerdict(t *testing.T) {
	db := trainedDB(t)
	msg := fixture("check", "ham.eml")
	r := runCLI(t, "", "classify", "--db", db, "--format", "json", msg)
	var line jsonLine
	if err := json.Unmarshal([]byte(r.stdout), &line); err != nil || line.Spamicity == nil {
		t.Fatalf("%+v: %v", r, err)
	}
	s := *line.Spamicity
	rounded := strconv.FormatFloat(s, 'f', 6, 64)
	v, _ := strconv.ParseFloat(rounded, 64)
	if v == s || s <= 0 || s >= 1 {
		t.Fatalf("spamicity %v: the test needs one that six places do not hold", s)
	}
	t.Logf("spamicity %v rounds to %s", s, rounded)
	var opts, want string
	if v > s {
		// Rounds up onto the spam cutoff it is below.
		opts, want = "spam_cutoff: "+rounded+", ham_cutoff: 0", strconv.FormatFloat(v-1e-6, 'f', 6, 64)
	} else {
		// Rounds down onto the ham cutoff it is above.
		opts, want = "spam_cutoff: 1, ham_cutoff: "+rounded, strconv.FormatFloat(v+1e-6, 'f', 6, 64)
	}
	conf := filepath.Join(t.TempDir(), "cutoff.yml")
	if err := os.WriteFile(conf, []byte("filters:\n  - type: bayes\n    options: {"+opts+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "--config", conf, "classify", "--db", db, msg)
	if w := msg + ": unsure, spamicity=" + want + "\n"; r.code != statusUnsure || r.stdout != w {
		t.Errorf("cutoffs {%s}: text %+v, want %q", opts, r, w)
	}
	r = runCLI(t, "", "--config", conf, "classify", "--db", db, "--format", "tsv", msg)
	if w := msg + "\t" + want + "\tunsure\n"; r.code != statusUnsure || r.stdout != w {
		t.Errorf("cutoffs {%s}: tsv %+v, want %q", opts, r, w)
	}
	// json keeps the exact value, which compares as the verdict did.
	r = runCLI(t, "", "--config", conf, "classify", "--db", db, "--format", "json", msg)
	if err := json.Unmarshal([]byte(r.stdout), &line); err != nil || line.Spamicity == nil || *line.Spamicity != s || line.Verdict != "unsure" {
		t.Errorf("cutoffs {%s}: json %+v", opts, r)
	}
}

// A named pipe given as PATH is read as the message its writer sends,
// whichever of the two opens first: opened without blocking, the first
// read found no writer yet and took the pipe for an empty message (exit
// 3), and left the writer blocked.
func TestClassifyNamedPipe(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	trainFixtures(t, db)
	fifo := filepath.Join(dir, "msg.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	msg := mustRead(t, fixture("spam", "00.eml"))
	for _, writerFirst := range []bool{true, false} {
		wrote := make(chan error, 1)
		write := func() {
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for the reader
			if err == nil {
				_, err = w.Write(msg)
				w.Close()
			}
			wrote <- err
		}
		if writerFirst {
			go write()
			time.Sleep(50 * time.Millisecond)
		} else {
			time.AfterFunc(50*time.Millisecond, write)
		}
		r := runCLI(t, "", "classify", "--db", db, "--format", "tsv", fifo)
		if r.code != 0 || !strings.HasSuffix(r.stdout, "\tspam\n") {
			t.Errorf("writer first %v: exit %d, stdout %q, stderr %q; want the spam verdict, exit 0", writerFirst, r.code, r.stdout, r.stderr)
		}
		select {
		case err := <-wrote:
			if err != nil {
				t.Errorf("writer: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the writer is still blocked")
		}
	}
}

// A --list of many paths that hold no message (empty directories, empty
// mboxes) ends in one short error line that says how many there were and
// names a few, not a line of every path: a list of thousands made a
// line of hundreds of kilobytes.
func TestClassifyNoMessagesInManyPaths(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bayes.db")
	trainFixtures(t, db)
	dir := t.TempDir()
	listFile := emptyDirsList(t, dir, 500)
	r := runCLI(t, "", "classify", "--db", db, "--list", listFile)
	if r.code != 3 || !strings.Contains(r.stderr, "no messages found in the 500 paths given") ||
		!strings.Contains(r.stderr, "empty-directory-with-a-long-name-000") || len(r.stderr) > 500 {
		t.Errorf("exit %d, stderr (%d bytes) %.600q; want 3 and one short line", r.code, len(r.stderr), r.stderr)
	}
	// A few paths are all named, as before.
	r = runCLI(t, "", "classify", "--db", db, filepath.Join(dir, "empty-directory-with-a-long-name-001"))
	if r.code != 3 || !strings.Contains(r.stderr, "no messages found in "+filepath.Join(dir, "empty-directory-with-a-long-name-001")) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// One message classified by the command reads the weights of the n-gram
// model that it needs where the store holds them, rather than copying
// the whole 4 MB model into memory first, which was most of the work
// of a run for one message (see UseModelInPlace).
func TestClassifyReadsModelInPlace(t *testing.T) {
	db := trainedDB(t)
	msg := filepath.Join(fixture("spam"), "01.eml")
	if r := runCLI(t, "", "classify", "--db", db, "--format", "json", "--explain", msg); r.code != 0 || !strings.Contains(r.stdout, `"ngram"`) {
		t.Fatalf("classify: %+v: want spam, with the n-gram model", r)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := runCLI(t, "", "classify", "--db", db, msg)
	runtime.ReadMemStats(&after)
	if r.code != 0 {
		t.Fatalf("classify: %+v", r)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n >= 4<<20 {
		t.Errorf("one message allocated %d bytes: the model was copied", n)
	}
}

// emptyDirsList makes n empty directories with long names in dir and
// returns a --list file naming them, one per line.
func emptyDirsList(t *testing.T, dir string, n int) string {
	t.Helper()
	var list strings.Builder
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("empty-directory-with-a-long-name-%03d", i))
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		list.WriteString(p + "\n")
	}
	listFile := filepath.Join(dir, "list")
	if err := os.WriteFile(listFile, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return listFile
}
