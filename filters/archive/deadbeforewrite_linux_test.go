package archive

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// A sluice writer killed after it took the locks but before it wrote a
// byte leaves a dot-lock that records the mbox's length, and no record.
// A program that takes only the kernel locks then appends a whole
// message. That message is no half record of the dead writer: the next
// append, and a reader that may not make the dot-lock, must keep it.
func TestDeadWriterThatWroteNothingSparesLaterMessage(t *testing.T) {
	good := "From a Thu Jan  1 00:00:00 1970\nSubject: whole\n\nwhole\n\n"
	other := "From other@example.org Thu Jan  1 00:00:01 1970\nSubject: fcntl-only writer\n\nkeep me\n\n"
	setUp := func() string {
		path := filepath.Join(t.TempDir(), "x.mbox")
		killWriter(t, path, good, "")

		appendFcntlOnly(t, path, other)
		return path
	}

	path := setUp()
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	if _, err := f.Check(context.Background(), filters.StageEOM, testMessage("N", "new\r\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), good+other) || !strings.Contains(string(got[len(good+other):]), "X-Sluice-Queue-ID: N") {
		t.Errorf("writer: the message appended after the dead writer's lock was cut off, or the new one not appended:\n%q", got)
	}

	// A reader without the dot-lock reads it too.
	path = setUp()
	l, err := NewAppender(time.Second, nil).tryReadLock(path, false)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, l.size)
	l.f.ReadAt(b, 0)
	l.unlock()
	if !strings.Contains(string(b), "keep me") {
		t.Errorf("reader: stopped before the message appended after the dead writer's lock:\n%q", b)
	}
}

// killWriter writes content to the mbox at path, then runs a sluice
// writer on it (see childStall, mode "" or "partial") and kills it while
// it holds the locks.
func killWriter(t *testing.T, path, content, mode string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := path
	if mode != "" {
		spec += "|" + mode
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), stallEnv+"="+spec)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	child.Process.Kill()
	child.Wait()
	if line != "locked\n" {
		t.Fatalf("the writer did not take the locks: %q, %v", line, err)
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Fatalf("the killed writer left no dot-lock: %v", err)
	}
}

// A sluice writer killed with part of its record written leaves a lock
// that names that part: the next append cuts it off.
func TestDeadWritersPartialRecordCutOff(t *testing.T) {
	good := "From a Thu Jan  1 00:00:00 1970\nSubject: whole\n\nwhole\n\n"
	path := filepath.Join(t.TempDir(), "x.mbox")
	killWriter(t, path, good, "partial")
	if fi, err := os.Stat(path); err != nil || fi.Size() <= int64(len(good)) {
		t.Fatalf("the killed writer wrote nothing: %v", err)
	}
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	if _, err := f.Check(context.Background(), filters.StageEOM, testMessage("N", "new\r\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), good+"From ") || strings.Contains(string(got), "half") || !strings.Contains(string(got), "X-Sluice-Queue-ID: N") {
		t.Errorf("the dead writer's partial record was not cut off, or the new one not appended:\n%.300q", got)
	}
}

// markDotLock overwrites our own lock in place, keeping its length, and
// refuses a lock at the name that is not the one we made: another
// process's content is never overwritten.
func TestMarkDotLockInPlace(t *testing.T) {
	a := NewAppender(time.Second, nil)
	lock := filepath.Join(t.TempDir(), "x.mbox.lock")
	was := a.holder.dotLockContent(42, noHead)
	if err := os.WriteFile(lock, []byte(was), 0o640); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(lock)
	head := recordHead([]byte("From a Thu Jan  1 00:00:00 1970\n"))
	if err := a.markDotLock(lock, 42, head); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(lock)
	after, _ := os.Stat(lock)
	l, ok := parseDotLock(got)
	if !ok || l.head != head || l.size != 42 || len(got) != len(was) || !os.SameFile(before, after) {
		t.Errorf("marked lock %q (parsed %v %+v), want the same file, as long as %q, with head %s", got, ok, l, was, head)
	}

	other := []byte("12345\n")
	for _, content := range [][]byte{other, []byte(a.holder.dotLockContent(41, noHead))} {
		if err := os.WriteFile(lock, content, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := a.markDotLock(lock, 42, head); err == nil {
			t.Errorf("marked the lock %q, which is not ours", content)
		}
		if got, _ := os.ReadFile(lock); string(got) != string(content) {
			t.Errorf("a lock not ours was changed: %q, want %q", got, content)
		}
	}
}
