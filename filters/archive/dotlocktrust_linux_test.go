package archive

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// Whoever may write an archive's directory but not its mbox (a mail
// spool's group, the daemon's user when the mbox is root's) can put a
// dot-lock there that looks like a dead sluice writer's, naming length 0.
// Acting on it would truncate the archive: the append, the daemon's start
// (Repair) and a reader that breaks the stale lock (as "sluice train"
// run by root does) must all keep every record, and only break the lock.
func TestForgedDotLockCutsNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a dot-lock another user owns")
	}
	good := "From a Thu Jan  1 00:00:00 1970\nSubject: one\n\none\n\n" +
		"From b Thu Jan  1 00:00:00 1970\nSubject: two\n\ntwo\n\n"
	for _, via := range []string{"append", "new", "read"} {
		t.Run(via, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "spam.mbox")
			if err := os.WriteFile(path, []byte(good), 0o640); err != nil {
				t.Fatal(err)
			}
			lock := path + lockSuffix
			if err := os.WriteFile(lock, []byte(deadSluiceLockContent(t, 0)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(lock, unprivilegedUID, unprivilegedUID); err != nil {
				t.Fatal(err)
			}
			switch via {
			case "append":
				f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
				if _, err := f.Check(context.Background(), filters.StageEOM, testMessage("N", "new\r\n")); err != nil {
					t.Fatal(err)
				}
			case "new":
				newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
			case "read":
				app := NewAppender(time.Second, nil)
				var got []byte
				err := app.ReadLocked(context.Background(), path, nil, func(r io.Reader) error {
					var err error
					got, err = io.ReadAll(r)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != good {
					t.Errorf("read %q, want %q", got, good)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), good) {
				t.Errorf("the mbox after a forged dot-lock:\n%q\nwant it to start with\n%q", b, good)
			}
			if via != "new" {
				if _, err := os.Lstat(lock); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the forged lock after the %s: %v", via, err)
				}
			}
		})
	}
}

// The dot-lock's name may hold anything its directory's writers put
// there. A FIFO must not hold the append up for ever: it is judged by its
// age as a foreign lock, never read.
func TestDotLockFIFONotRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spam.mbox")
	lock := path + lockSuffix
	if err := syscall.Mkfifo(lock, 0o644); err != nil {
		t.Fatal(err)
	}
	// A reader stuck in the FIFO's open waits for a writer: give it one
	// when the test ends, whatever happened.
	t.Cleanup(func() {
		if w, err := os.OpenFile(lock, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	})
	app := NewAppender(200*time.Millisecond, nil)
	done := make(chan error, 1)
	go func() {
		_, err := app.AppendMbox(context.Background(), path, func(w *bufio.Writer) error {
			_, err := w.WriteString("From a Thu Jan  1 00:00:00 1970\n\nx\n")
			return err
		})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errLockBusy) {
			t.Errorf("append under a FIFO at the dot-lock's name: %v, want the lock held", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the append hangs on a FIFO at the dot-lock's name")
	}
}

// A stale dot-lock of a dead sluice writer is also stale to a program
// that takes only the dot-lock (dotlockfile(1), Dovecot with
// mbox_write_locks = dotlock), which the kernel locks do not keep out. If
// it breaks the lock, takes its own and appends after sluice judged the
// old lock stale, sluice must neither replace that program's lock nor cut
// its message off with the dead writer's half record, whether the program
// still holds its lock or is done already.
func TestStaleDotLockBrokenByAnotherWriterMeanwhile(t *testing.T) {
	for _, done := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "spam.mbox")
		good := "From a Thu Jan  1 00:00:00 1970\nSubject: one\n\none\n\n"
		if err := os.WriteFile(path, []byte(good), 0o640); err != nil {
			t.Fatal(err)
		}
		lock := path + lockSuffix
		if err := os.WriteFile(lock, []byte(deadSluiceLockContent(t, int64(len(good)))), 0o640); err != nil {
			t.Fatal(err)
		}
		foreign := "From carol Thu Jan  1 00:00:00 1970\nSubject: by a dot-lock-only writer\n\nkeep me\n\n"
		app := NewAppender(5*time.Second, nil)
		raced := false
		app.beforeBreak = func(lockPath string) {
			if raced {
				return
			}
			raced = true
			// The other writer breaks the stale lock, takes its own
			// and appends.
			if err := os.Remove(lockPath); err != nil {
				t.Error(err)
			}
			l, err := os.OpenFile(lockPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
			if err != nil {
				t.Error(err)
				return
			}
			l.WriteString("4242\n")
			l.Close()
			w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Error(err)
				return
			}
			w.WriteString(foreign)
			w.Close()
			if done {
				os.Remove(lockPath)
			} else {
				time.AfterFunc(100*time.Millisecond, func() { os.Remove(lockPath) })
			}
		}
		_, err := app.AppendMbox(context.Background(), path, func(w *bufio.Writer) error {
			_, err := w.WriteString("From sluice Thu Jan  1 00:00:00 1970\nSubject: ours\n\nours\n")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !raced {
			t.Fatal("the stale lock was never judged")
		}
		var subjects []string
		for _, r := range readRecords(t, path) {
			subjects = append(subjects, headerOf(r.Message, "Subject"))
		}
		want := []string{"one", "by a dot-lock-only writer", "ours"}
		if strings.Join(subjects, "|") != strings.Join(want, "|") {
			t.Errorf("other writer done %v: records %q, want %q", done, subjects, want)
		}
	}
}
