package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// appendingWriter writes start to the mbox at path (created with perm)
// and then, as a writer in the middle of an append, holds flock(2) on it
// as sluice's archive filter and Dovecot do, for 300 ms, before it
// writes rest and lets go. The channel gets the error of that last write.
func appendingWriter(t *testing.T, path, start, rest string, perm os.FileMode) <-chan error {
	t.Helper()
	if err := os.WriteFile(path, []byte(start), perm); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := syscall.Flock(int(w.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	time.AfterFunc(300*time.Millisecond, func() {
		_, err := w.WriteString(rest)
		syscall.Flock(int(w.Fd()), syscall.LOCK_UN)
		done <- err
	})
	return done
}

// train and classify read an mbox under the locks its writers take: the
// half record of a sluice process that died while appending (its
// dot-lock names it) is cut off, not learned or classified as a message.
func TestTrainSkipsHalfWrittenRecord(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	src := filepath.Join(dir, "spam.mbox")
	good := deadWriterMbox(t, src)
	r := runCLI(t, "", "train", "--db", db, "--spam", "--queue-id", "A", "--queue-id", "B", src)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "1 message: 1 learned as spam") || r.stderr != "" {
		t.Errorf("train A and B: %+v; want record A only", r)
	}
	if b, err := os.ReadFile(src); err != nil || string(b) != good {
		t.Errorf("the mbox after train: %q, %v; want record A only", b, err)
	}
	other := filepath.Join(dir, "other.mbox")
	deadWriterMbox(t, other)
	r = runCLI(t, "", "classify", "--db", db, "--format", "tsv", other)
	if r.stderr != "" || !strings.HasPrefix(r.stdout, other+"\t") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("classify: %+v; want record A only", r)
	}
}

// A message being appended under flock(2) (as sluice's archive filter
// and Dovecot take it) is waited for and learned whole, not read as it
// stands half way.
func TestTrainWaitsForAppend(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	src := filepath.Join(dir, "spam.mbox")
	good := "From a Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: A\n\nwhole\n\n"
	// So far only the "From " line: read now, it is an empty message.
	head := "From b Thu Jan  1 00:00:00 1970\n"
	rest := "X-Sluice-Queue-ID: B\nSubject: late\n\nthe whole body\n\n"
	done := appendingWriter(t, src, good+head, rest, 0o600)
	r := runCLI(t, "", "train", "--db", db, "--spam", src)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || !strings.HasPrefix(r.stdout, "2 messages: 2 learned as spam") || r.stderr != "" {
		t.Errorf("train during an append: %+v; want both records, whole", r)
	}
}

// An mbox named by a relative path ("cd ~/mail; sluice train --spam
// spam.mbox") is read under its locks as one named by an absolute path:
// the stale dot-lock of a dead sluice writer is broken, and its half
// record cut off, on the first run. Breaking it took the lock file in the
// making, "./.spam.mbox.lock-NNN", for a dead writer's (removeLockTemps
// compared it with ".spam.mbox.lock-NNN"), so the run failed with "link
// ...: no such file or directory" after the stale lock, and the length
// it recorded, were gone: the next run learned the half record.
func TestTrainRelativeMboxAfterDeadWriter(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	t.Chdir(dir)
	good := deadWriterMbox(t, "spam.mbox")
	for run := 1; run <= 2; run++ {
		r := runCLI(t, "", "train", "--db", db, "--spam", "--queue-id", "A", "--queue-id", "B", "spam.mbox")
		want := "1 message: 1 learned as spam"
		if run == 2 {
			want = "1 message: 0 learned as spam, 1 already learned"
		}
		if r.code != 0 || !strings.HasPrefix(r.stdout, want) || r.stderr != "" {
			t.Errorf("train run %d: %+v; want record A only", run, r)
		}
	}
	if b, err := os.ReadFile("spam.mbox"); err != nil || string(b) != good {
		t.Errorf("the mbox after train: %q, %v; want record A only", b, err)
	}
	deadWriterMbox(t, "other.mbox")
	r := runCLI(t, "", "classify", "--db", db, "--format", "tsv", "other.mbox")
	if r.stderr != "" || !strings.HasPrefix(r.stdout, "other.mbox\t") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("classify: %+v; want record A only", r)
	}
}

// The nightly "sluice train --spam" over the archive directory (see
// docs/archive.md) and a classify of it are not failed by an mbox's
// dot-lock beside it: the lock of a daemon that died appending stays
// until the next append or read breaks it, and a live daemon's is there
// while it appends. Read as a file of the directory, it was an error
// (exit status 1, and 3 for classify), though every message was read.
func TestTrainArchiveDirectoryWithDotLock(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	archiveDir := filepath.Join(dir, "archive")
	if err := os.Mkdir(archiveDir, 0o700); err != nil {
		t.Fatal(err)
	}
	deadWriterMbox(t, filepath.Join(archiveDir, "spam.mbox"))
	r := runCLI(t, "", "train", "--db", db, "--spam", archiveDir)
	if r.code != 0 || r.stdout != "1 message: 1 learned as spam, 0 already learned, 0 moved from ham to spam, 0 errors\n" || r.stderr != "" {
		t.Errorf("train the archive directory: %+v; want record A learned and no error", r)
	}
	other := filepath.Join(archiveDir, "other.mbox")
	deadWriterMbox(t, other)
	r = runCLI(t, "", "classify", "--db", db, "--format", "tsv", archiveDir)
	if r.code != 0 || r.stderr != "" || strings.Count(r.stdout, "\n") != 2 || strings.Contains(r.stdout, "error") {
		t.Errorf("classify the archive directory: %+v; want the two records A, no error", r)
	}
}
