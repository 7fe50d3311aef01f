package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// needBogofilter installs bogofilter through the project's installer, or
// skips (fails under CI=true) where it cannot be had.
func needBogofilter(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bogofilter"); err != nil {
		mtatest.Require(t, "bogofilter")
	}
}

// fromLineMbox writes an mbox of n messages whose envelope sender (in
// the From_ line alone) is sender: their header fields and bodies are
// those of every other mbox the test writes, so only the From_ lines
// tell the classes apart.
func fromLineMbox(t *testing.T, path, sender string, n int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "From %s  Mon Jun 24 17:06:%02d 2002\n", sender, i)
		fmt.Fprintf(&b, "From: someone%d@mail.example\nTo: user@home.example\nSubject: weekly notes %d\n\n", i%3, i%4)
		// Each message is another: sluice learns a message once.
		fmt.Fprintf(&b, "meeting notes attached please review before thursday\nbatch %c%c\n\n", 'a'+i/26, 'a'+i%26)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fromLineSetup installs bogofilter if need be and returns a scratch
// directory, an empty directory for bogofilter's word list in it, and a
// spam and a ham mbox of 15 messages each that differ only in their
// From_ lines (see fromLineMbox).
func fromLineSetup(t *testing.T) (dir, bdir, spam, ham string) {
	t.Helper()
	needBogofilter(t)
	dir = t.TempDir()
	bdir = filepath.Join(dir, "bogofilter")
	if err := os.Mkdir(bdir, 0o755); err != nil {
		t.Fatal(err)
	}
	spam, ham = filepath.Join(dir, "spam.mbox"), filepath.Join(dir, "ham.mbox")
	fromLineMbox(t, spam, "bounce@zzpromo.example", 15)
	fromLineMbox(t, ham, "owner@yyproject.example", 15)
	return dir, bdir, spam, ham
}

// bogofilterLearn has bogofilter learn the mbox as spam ("-s") or ham
// ("-n") into the word list in dir.
func bogofilterLearn(t *testing.T, dir, class, mbox string) {
	t.Helper()
	f, err := os.Open(mbox)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("bogofilter", "-d", dir, class, "-M")
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bogofilter %s -M %s: %v\n%s", class, mbox, err, out)
	}
}

// bogofilterDump returns bogoutil -d of the word list in dir.
func bogofilterDump(t *testing.T, dir string) []byte {
	t.Helper()
	dump, err := exec.Command("bogoutil", "-d", filepath.Join(dir, "wordlist.db")).Output()
	if err != nil {
		t.Fatalf("bogoutil -d: %v", err)
	}
	return dump
}

// importBogofilter imports the word list in dir into the store db.
func importBogofilter(t *testing.T, dir, db string) {
	t.Helper()
	list := filepath.Join(t.TempDir(), "wordlist.txt")
	if err := os.WriteFile(list, bogofilterDump(t, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", "db", "import", "--db", db, "--bogoutil", list); r.code != 0 {
		t.Fatalf("import: %+v", r)
	}
}

// bogofilterScore runs bogofilter -T on the message file at path against
// the word list in dir, and returns its verdict and spamicity.
func bogofilterScore(t *testing.T, dir, path string) (string, float64) {
	t.Helper()
	out, err := exec.Command("bogofilter", "-d", dir, "-T", "-B", path).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() <= 2 {
		err = nil // the exit status is the verdict
	}
	f := strings.Fields(string(out))
	if err != nil || len(f) != 3 {
		t.Fatalf("bogofilter -T %s: %q, %v", path, out, err)
	}
	p, err := strconv.ParseFloat(f[2], 64)
	if err != nil {
		t.Fatalf("bogofilter -T %s: %q", path, out)
	}
	return map[string]string{"S": "spam", "H": "ham", "U": "unsure"}[f[1]], p
}

// A message piped by procmail, or cut from an mbox, starts with its
// From_ line, which bogofilter reads as a header line: its word list
// holds the tokens of every From_ line it learned (bogofilter -M of an
// mbox, or -B of such files). sluice classify of such a message, on the
// store imported from that list, must score it as bogofilter does, as
// docs/bayes.md promises the scripts that ran bogofilter.
func TestClassifyBogofilterFromLine(t *testing.T) {
	dir, bdir, spam, ham := fromLineSetup(t)
	bogofilterLearn(t, bdir, "-s", spam)
	bogofilterLearn(t, bdir, "-n", ham)
	db := filepath.Join(dir, "bayes.db")
	importBogofilter(t, bdir, db)

	msg := "From bounce@zzpromo.example  Tue Jun 25 09:00:00 2002\n" +
		"From: someone1@mail.example\nTo: user@home.example\nSubject: weekly notes 2\n\n" +
		"meeting notes attached please review before thursday\n"
	path := filepath.Join(dir, "msg")
	if err := os.WriteFile(path, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	wantVerdict, want := bogofilterScore(t, bdir, path)
	for _, args := range [][]string{{path}, {"-"}} {
		r := runCLI(t, msg, append([]string{"classify", "--db", db, "--format", "tsv"}, args...)...)
		f := strings.Split(strings.TrimSpace(r.stdout), "\t")
		if len(f) != 3 {
			t.Fatalf("classify %s: %+v", args[0], r)
		}
		got, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("classify %s: %+v", args[0], r)
		}
		if f[2] != wantVerdict || got-want > 1e-5 || want-got > 1e-5 {
			t.Errorf("classify %s: %s, spamicity %.6f; bogofilter: %s, %.6f", args[0], f[2], got, wantVerdict, want)
		}
	}
}

// sluice train of an mbox into a store imported from bogofilter learns
// what bogofilter -M learns of it, the tokens of the From_ lines too:
// the word list's counts of those tokens, which classify reads (see
// TestClassifyBogofilterFromLine), grow with sluice's training as they
// did with bogofilter's.
func TestTrainBogofilterFromLine(t *testing.T) {
	dir, bdir, spam, ham := fromLineSetup(t)
	bogofilterLearn(t, bdir, "-s", spam)
	db := filepath.Join(dir, "bayes.db")
	importBogofilter(t, bdir, db)
	bogofilterLearn(t, bdir, "-n", ham)
	if r := runCLI(t, "", "train", "--db", db, "--ham", ham); r.code != 0 {
		t.Fatalf("train: %+v", r)
	}
	// The From_ line is no part of a message's digest: the messages are
	// learned already, and change nothing.
	if r := runCLI(t, "", "train", "--db", db, "--ham", ham); r.code != 0 || !strings.HasPrefix(r.stdout, "15 messages: 0 learned as ham, 15 already learned") {
		t.Fatalf("train again: %+v", r)
	}
	// Tokens and counts, without the days.
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(bogofilterDump(t, bdir))), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && !strings.HasPrefix(f[0], ".") {
			want[f[0]] = f[1] + " " + f[2]
		}
	}
	r := runCLI(t, "", "db", "dump", "--db", db)
	if r.code != 0 {
		t.Fatalf("dump: %+v", r)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 4 {
			got[f[0]] = f[1] + " " + f[2]
		}
	}
	for tok, w := range want {
		if got[tok] != w {
			t.Errorf("token %q: sluice counts %q, bogofilter %q", tok, got[tok], w)
		}
	}
	for tok, g := range got {
		if _, ok := want[tok]; !ok {
			t.Errorf("token %q: sluice counts %q, bogofilter has none", tok, g)
		}
	}
}
