package archive

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A maildir's tmp/ is cleaned of regular files not modified for 36 hours,
// leftovers of deliveries that died, with the first message an appender
// delivers there and then only once tmpCleanInterval has passed. A fresh
// file (a delivery in progress), a directory, a symbolic link and what it
// points to stay, however old.
func TestMaildirTmpCleanup(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "md")
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a := NewAppender(time.Second, slog.New(slog.NewTextHandler(logs, nil)))
	// The appender's clock runs 40 hours ahead, so that what the test
	// cannot date back (a symbolic link's own time) is old to it too.
	clock := time.Now().Add(40 * time.Hour)
	a.now = func() time.Time { return clock }
	// setBack gives path a modification time age before the clock.
	setBack := func(path string, age time.Duration) {
		t.Helper()
		if err := os.Chtimes(path, clock.Add(-age), clock.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	touch := func(path string, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(path, []byte("part of a message\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		setBack(path, age)
	}
	exists := func(path string) bool {
		_, err := os.Lstat(path)
		return err == nil
	}
	deliver := func() {
		t.Helper()
		if _, err := a.AppendMaildir(context.Background(), dir, writeTestMessage); err != nil {
			t.Fatal(err)
		}
	}

	old := filepath.Join(tmp, "1000.M1P1Q1.old")
	fresh := filepath.Join(tmp, "1000.M1P1Q2.fresh")
	nearly := filepath.Join(tmp, "1000.M1P1Q4.nearly")
	sub := filepath.Join(tmp, "sub")
	target := filepath.Join(base, "target")
	link := filepath.Join(tmp, "link")
	touch(old, tmpMaxAge+time.Hour)
	touch(fresh, time.Hour)
	touch(nearly, tmpMaxAge-time.Hour)
	touch(target, tmpMaxAge+time.Hour)
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	setBack(sub, tmpMaxAge+time.Hour)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}

	deliver()
	if exists(old) {
		t.Errorf("%s, 37 hours old, was not removed", old)
	}
	for _, p := range []string{fresh, nearly, sub, link, target} {
		if !exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	if got := logs.String(); !strings.Contains(got, "removed a file left in a maildir's tmp/") ||
		!strings.Contains(got, "file="+filepath.Base(old)) {
		t.Errorf("the removal was not logged: %q", got)
	}
	if got := strings.Count(logs.String(), "removed a file"); got != 1 {
		t.Errorf("%d removals logged, want 1:\n%s", got, logs.String())
	}

	// Not scanned again with every message: a leftover now old stays
	// until the interval has passed.
	old2 := filepath.Join(tmp, "1000.M1P1Q3.old")
	touch(old2, tmpMaxAge+time.Hour)
	deliver()
	if !exists(old2) {
		t.Errorf("%s was removed before %s had passed since the last scan", old2, tmpCleanInterval)
	}
	clock = clock.Add(tmpCleanInterval)
	deliver()
	if exists(old2) {
		t.Errorf("%s was not removed %s after the last scan", old2, tmpCleanInterval)
	}
	if !exists(fresh) {
		t.Errorf("%s, %s old, was removed", fresh, time.Hour+tmpCleanInterval)
	}
	news, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil || len(news) != 3 {
		t.Errorf("new/ holds %d messages (%v), want 3", len(news), err)
	}
}

// A tmp/ that is a symbolic link (whoever may write the maildir can put
// one there) is not cleaned: the removals would be in the directory it
// points to.
func TestMaildirTmpCleanupIgnoresLinkedTmp(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "md")
	elsewhere := filepath.Join(base, "elsewhere")
	for _, d := range []string{dir, elsewhere} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(elsewhere, filepath.Join(dir, "tmp")); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(elsewhere, "important")
	if err := os.WriteFile(victim, []byte("not a leftover\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-tmpMaxAge - time.Hour)
	if err := os.Chtimes(victim, past, past); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a := NewAppender(time.Second, slog.New(slog.NewTextHandler(logs, nil)))
	if _, err := a.AppendMaildir(context.Background(), dir, writeTestMessage); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(victim); err != nil {
		t.Errorf("a file in the directory tmp/ links to was removed: %v", err)
	}
	if got := logs.String(); !strings.Contains(got, "could not clean a maildir's tmp/") {
		t.Errorf("no warning logged: %q", got)
	}
}

// The appender forgets the maildirs whose tmp/ it cleaned an interval ago
// or more, so that one maildir per recipient does not grow its memory
// without bound.
func TestMaildirTmpCleanupForgetsOldMaildirs(t *testing.T) {
	base := t.TempDir()
	a := NewAppender(time.Second, nil)
	clock := time.Now()
	a.now = func() time.Time { return clock }
	for i, name := range []string{"a", "b", "c"} {
		if i == 2 {
			clock = clock.Add(tmpCleanInterval)
		}
		if _, err := a.AppendMaildir(context.Background(), filepath.Join(base, name), writeTestMessage); err != nil {
			t.Fatal(err)
		}
	}
	a.tmpMu.Lock()
	defer a.tmpMu.Unlock()
	if _, ok := a.tmpCleaned[filepath.Join(base, "c")]; len(a.tmpCleaned) != 1 || !ok {
		t.Errorf("the appender remembers %v, want only c", a.tmpCleaned)
	}
}

// A file in tmp/ whose modification time was set back is not a
// leftover: Dovecot saves a message appended with an IMAP INTERNALDATE
// (a client moving old mail into the archive folder, dsync) into tmp/,
// sets its modification time to that date, and renames it into cur/
// only when the transaction commits; its maildir compression procedure
// does the same. The file's inode change time, which utime(2) cannot set
// back, says it is new: Dovecot's own cleaning goes by it.
func TestMaildirTmpCleanupKeepsFileDatedBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "md")
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		t.Fatal(err)
	}
	saving := filepath.Join(tmp, "1700000000.M1P2Q3.imap")
	if err := os.WriteFile(saving, []byte("Subject: old mail being appended\n\nhi\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	received := time.Now().Add(-365 * 24 * time.Hour)
	if err := os.Chtimes(saving, received, received); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a := NewAppender(time.Second, slog.New(slog.NewTextHandler(logs, nil)))
	if _, err := a.AppendMaildir(context.Background(), dir, writeTestMessage); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(saving); err != nil {
		t.Errorf("a file just written into tmp/, dated back a year, was removed: %v\n%s", err, logs.String())
	}
}
