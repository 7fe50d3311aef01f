package senders

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// A damaged line of any length in the seen file (a run of NULs with no
// line end) costs that line only: the filter starts, and the lines after
// it are read.
func TestSeenFileLongDamagedLine(t *testing.T) {
	state := t.TempDir()
	rules := filepath.Join(state, "senders.rules")
	writeFile(t, rules, "spam.example REJECT\n")
	seen := filepath.Join(state, "senders.seen")
	writeFile(t, seen, seenHeader+"2026-03-01T10:02:03Z\ta.example\tp\n"+strings.Repeat("\x00", 70000)+"\n2026-03-01T10:02:03Z\tc.example\tp\n")
	env := filters.Env{Name: "senders", Logger: slog.New(slog.DiscardHandler), StateDir: state}
	f, err := New(env, Config{Files: []FileConfig{{Path: rules}}}, nil)
	if err != nil {
		t.Fatalf("a seen file with a long damaged line stops the filter: %v", err)
	}
	f.Close()
	l, err := ReadSeen(seen)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a.example", "c.example"} {
		if _, ok := l.FirstSeen("p", d); !ok {
			t.Errorf("%s not read", d)
		}
	}
}

// On a full disk a failing write of the seen file is logged once, not at
// every flush: the error names a new temporary file each time, and that
// must not make it a new failure.
func TestSeenDiskFullLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v (run as root, or with CI=true to make this a failure)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	var logs logBuffer
	s, err := NewShared().openSeen(filepath.Join(dir, "senders.seen"), 100, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.release()
	fl, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := fl.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	fl.Close()
	for _, d := range []string{"a.example", "b.example", "c.example"} {
		s.add("p", d, time.Now())
		time.Sleep(seenFlushDelay + 300*time.Millisecond)
	}
	if n := strings.Count(logs.String(), "writing the seen file failed"); n != 1 {
		t.Errorf("the same failure (disk full) logged %d times:\n%s", n, logs.String())
	}
}

// A seen file with CRLF line ends (edited on another system) is read as
// with LF ones.
func TestSeenFileCRLF(t *testing.T) {
	seen := filepath.Join(t.TempDir(), "senders.seen")
	writeFile(t, seen, strings.ReplaceAll(seenHeader+"2026-03-01T10:02:03Z\ta.example\tp\n", "\n", "\r\n"))
	l, err := ReadSeen(seen)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.FirstSeen("p", "a.example"); !ok {
		t.Error("a.example not read from a CRLF seen file")
	}
}
