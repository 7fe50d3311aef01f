package senders

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSeenListLimit(t *testing.T) {
	l := newSeenList()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i, d := range []string{"a.example", "b.example", "c.example", "a.example", "d.example", "e.example"} {
		l.add(seenKey{"p", d}, t0.Add(time.Duration(i)*time.Minute), 3)
	}
	if l.Len() != 3 {
		t.Fatalf("%d entries, want 3", l.Len())
	}
	for d, want := range map[string]bool{"a.example": false, "b.example": false, "c.example": true, "d.example": true, "e.example": true} {
		if _, ok := l.FirstSeen("p", d); ok != want {
			t.Errorf("%s kept: %v, want %v", d, ok, want)
		}
	}
	want := seenHeader +
		"2026-03-01T10:02:00Z\tc.example\tp\n" +
		"2026-03-01T10:04:00Z\td.example\tp\n" +
		"2026-03-01T10:05:00Z\te.example\tp\n"
	if got := string(l.marshal()); got != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	// Many evictions keep the order and compact the queue.
	for i := 0; i < 5000; i++ {
		l.add(seenKey{"q", strings.Repeat("x", i%7) + string(rune('a'+i%26)) + ".example" + string(rune('0'+i/26%10))}, t0, 3)
	}
	if l.Len() != 3 || len(l.order)-l.head != 3 || l.head > 2048 {
		t.Errorf("after many evictions: %d entries, queue %d long from %d", l.Len(), len(l.order), l.head)
	}
}

func TestSeenStorePersists(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "senders.seen")
	log := slog.New(slog.DiscardHandler)
	sh := NewShared()
	s, err := sh.openSeen(path, 100, log)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 10, 2, 3, 0, time.UTC)
	if !s.add("emalsrv.*", "emalsrv.ups.com", now) || s.add("emalsrv.*", "emalsrv.ups.com", now) {
		t.Error("add: first must be new, second not")
	}
	if !s.add("ups.com", "emalsrv.ups.com", now) {
		t.Error("the same domain for another pattern is new")
	}
	// A second user of the same file (a reload) shares the store.
	s2, err := sh.openSeen(path, 100, log)
	if err != nil || s2 != s {
		t.Fatalf("second open: %v, same store %v", err, s2 == s)
	}
	s.release()
	// Written in the background a moment after the change.
	waitUntil(t, "the seen file", func() bool {
		data, _ := os.ReadFile(path)
		return strings.Contains(string(data), "ups.com")
	})
	s2.add("complains.*", "complains.example", now)
	s2.release()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := seenHeader +
		"2026-03-01T10:02:03Z\temalsrv.ups.com\temalsrv.*\n" +
		"2026-03-01T10:02:03Z\temalsrv.ups.com\tups.com\n" +
		"2026-03-01T10:02:03Z\tcomplains.example\tcomplains.*\n"
	if string(data) != want {
		t.Errorf("seen file:\n%s\nwant:\n%s", data, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("seen file mode %v, %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the seen file (no temporary files left)", len(entries))
	}
	l, err := ReadSeen(path)
	if err != nil || l.Len() != 3 {
		t.Fatalf("read back: %v, %d entries", err, l.Len())
	}
	if ts, ok := l.FirstSeen("complains.*", "complains.example"); !ok || !ts.Equal(now) {
		t.Errorf("first seen %v %v", ts, ok)
	}
}

// Damaged lines are skipped with a warning; the rest is kept.
func TestSeenDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "senders.seen")
	writeFile(t, path, seenHeader+"2026-03-01T10:02:03Z\ta.example\tp\ngarbage\n2026-13-01T10:02:03Z\tb.example\tp\n2026-03-01T10:02:03Z\tc.example\tp\n")
	var logs logBuffer
	s, err := NewShared().openSeen(path, 100, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.release()
	if s.list.Len() != 2 || s.add("p", "a.example", time.Now()) || s.add("p", "c.example", time.Now()) {
		t.Errorf("kept %d entries, want a.example and c.example", s.list.Len())
	}
	if !strings.Contains(logs.String(), "lines=2 first=3") {
		t.Errorf("log: %s", logs.String())
	}
}

// When the file cannot be written, new domains stay in memory, the
// error is logged once, and the next change writes everything.
func TestSeenWriteFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "senders.seen")
	var logs logBuffer
	s, err := NewShared().openSeen(path, 100, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(dir)
	writeFile(t, dir, "a file where the directory was\n")
	s.add("p", "a.example", time.Now())
	waitUntil(t, "the error", func() bool { return strings.Contains(logs.String(), "writing the seen file failed") })
	os.Remove(dir)
	os.Mkdir(dir, 0o755)
	s.add("p", "b.example", time.Now())
	s.release()
	l, err := ReadSeen(path)
	if err != nil || l.Len() != 2 {
		t.Fatalf("after recovery: %v, %d entries, want 2", err, l.Len())
	}
	if n := strings.Count(logs.String(), "writing the seen file failed"); n != 1 {
		t.Errorf("error logged %d times", n)
	}
}
