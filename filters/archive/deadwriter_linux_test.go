package archive

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// A program that takes only the kernel locks ignores a dead sluice
// writer's dot-lock, and may append a whole message after the dead
// writer's half record before any sluice comes back. Cutting back to the
// length the dot-lock recorded would take that message with the half
// record: both stay, for the writer (and New) and for a reader that may
// not make the dot-lock.
func TestDeadWriterRollbackSparesLaterMessage(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	good := "From a Thu Jan  1 00:00:00 1970\nSubject: whole\n\nwhole\n\n"
	half := "From b Thu Jan  1 00:00:00 1970\nSubject: half\n\n>From quoted, as sluice writes\nhal"
	other := "\n\nFrom other@example.org Thu Jan  1 00:00:01 1970\nSubject: fcntl-only writer\n\nkeep me\n\n"
	setUp := func() string {
		path := filepath.Join(t.TempDir(), "x.mbox")
		h := thisProcess()
		h.pid = dead.Process.Pid
		os.WriteFile(path+".lock", []byte(h.dotLockContent(int64(len(good)), recordHead([]byte(half)))), 0o600)
		if err := os.WriteFile(path, []byte(good+half), 0o600); err != nil {
			t.Fatal(err)
		}
		appendFcntlOnly(t, path, other)
		return path
	}

	path := setUp()
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	if _, err := f.Check(context.Background(), filters.StageEOM, testMessage("N", "new\r\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), good+half+other) || !strings.Contains(string(got[len(good+half+other):]), "X-Sluice-Queue-ID: N") {
		t.Errorf("writer: the message after the dead writer's half record was cut off, or the new one not appended:\n%q", got)
	}

	// A reader without the dot-lock reads on past the half record.
	path = setUp()
	var read string
	l, err := NewAppender(time.Second, nil).tryReadLock(path, false)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, l.size)
	l.f.ReadAt(b, 0)
	read = string(b)
	l.unlock()
	if !strings.Contains(read, "keep me") {
		t.Errorf("reader: stopped before the message after the dead writer's half record:\n%q", read)
	}
}

// appendFcntlOnly appends text to the mbox at path as a program that
// takes only the POSIX write lock does (mutt without dot-locking, a
// script): lock, append, unlock; it ignores any dot-lock.
func appendFcntlOnly(t *testing.T, path, text string) {
	t.Helper()
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(w.Fd(), syscall.F_SETLKW, &lk); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
