package archive

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log sink for tests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// withoutHardLinks returns an appender whose link(2) fails as it does on
// a file system without hard links (some FUSE and network file systems),
// and what it logs.
func withoutHardLinks(timeout time.Duration) (*Appender, *syncBuffer) {
	logs := &syncBuffer{}
	app := NewAppender(timeout, slog.New(slog.NewTextHandler(logs, nil)))
	app.link = func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
	}
	return app, logs
}

// Without hard links the dot-lock is made with O_EXCL: appends and reads
// still take it, a lock someone holds still keeps them out, a dead
// writer's half record is still cut off, and the fallback is logged once.
func TestDotLockWithoutHardLinks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spam.mbox")
	lock := path + lockSuffix
	app, logs := withoutHardLinks(200 * time.Millisecond)
	appendOne := func(subject string) error {
		_, err := app.AppendMbox(context.Background(), path, func(w *bufio.Writer) error {
			b, err := os.ReadFile(lock)
			if err != nil {
				return err
			}
			if l, ok := parseDotLock(b); !ok || l.pid != os.Getpid() {
				t.Errorf("the dot-lock during the append: %q", b)
			}
			_, err = w.WriteString("From a Thu Jan  1 00:00:00 1970\nSubject: " + subject + "\n\nx\n")
			return err
		})
		return err
	}
	for _, s := range []string{"one", "two"} {
		if err := appendOne(s); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "does not support hard links"); n != 1 {
		t.Errorf("the fallback was logged %d times:\n%s", n, logs.String())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files left: %v", entries)
	}

	// A lock another program holds keeps the append out.
	if err := os.WriteFile(lock, []byte("4242\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := appendOne("held off"); !errors.Is(err, errLockBusy) {
		t.Errorf("append under another program's lock: %v", err)
	}
	os.Remove(lock)

	// A dead writer's half record is cut off.
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("From b Thu Jan  1 00:00:00 1970\nSubject: half\n\nhal")
	f.Close()
	if err := os.WriteFile(lock, []byte(deadSluiceLockContent(t, int64(len(good)))), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := appendOne("three"); err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, r := range readRecords(t, path) {
		subjects = append(subjects, headerOf(r.Message, "Subject"))
	}
	if got := strings.Join(subjects, "|"); got != "one|two|three" {
		t.Errorf("records %s, want one|two|three", got)
	}

	// A reader takes the dot-lock too: it is not told it read without.
	err = app.ReadLocked(context.Background(), path, func(err error) {
		t.Errorf("read without the dot-lock: %v", err)
	}, func(r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dot-lock left: %v", err)
	}
}

// deadSluiceLockContent returns the content of a dot-lock of a sluice
// process that does not exist, on this host, recording the length size,
// as a sluice that did not record the head of what it wrote made them
// (see sluiceLock): judged by the lines after size alone.
func deadSluiceLockContent(t *testing.T, size int64) string {
	t.Helper()
	h := thisProcess()
	// Far above pid_max on Linux (2^22) and elsewhere: no such process.
	h.pid = 1<<30 - 1
	return fmt.Sprintf("sluice pid=%d start=%d host=%s size=%d\n", h.pid, h.start, h.host, size)
}

// Without hard links a maildir message is renamed from tmp/ into new/.
// A rename replaces a file of the same name, so the name must be one no
// other writer makes: messages already in new/ under the names this
// process would make are kept.
func TestMaildirWithoutHardLinks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "md")
	fixed := time.Unix(1700000000, 123456000)
	app, logs := withoutHardLinks(time.Second)
	app.now = func() time.Time { return fixed }
	// Another appender of this process at the same microsecond (the
	// filter of the pipeline before a reload) made these.
	twin := NewAppender(time.Second, nil)
	twin.now = app.now
	if err := os.MkdirAll(filepath.Join(dir, "new"), 0o750); err != nil {
		t.Fatal(err)
	}
	existing := map[string]bool{}
	for range 10 {
		name := twin.maildirName(false)
		existing[name] = true
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte("Subject: there before\n\nx\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for _, body := range []string{"one", "two"} {
		if _, err := app.AppendMaildir(context.Background(), dir, func(w *bufio.Writer) error {
			_, err := w.WriteString("Subject: " + body + "\n\n" + body + "\n")
			return err
		}); err != nil {
			t.Fatalf("append %s: %v", body, err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	var delivered []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if existing[e.Name()] {
			if string(b) != "Subject: there before\n\nx\n" {
				t.Errorf("%s was replaced: %q", e.Name(), b)
			}
			continue
		}
		delivered = append(delivered, strings.TrimSpace(string(b[strings.LastIndex(string(b), "\n\n")+2:])))
	}
	if len(entries) != 12 || len(delivered) != 2 {
		t.Errorf("new/ holds %d files, %q delivered", len(entries), delivered)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("left in tmp/: %v", tmp)
	}
	if n := strings.Count(logs.String(), "does not support hard links"); n != 1 {
		t.Errorf("the fallback was logged %d times:\n%s", n, logs.String())
	}
}
