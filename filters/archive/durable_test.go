package archive

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordDirSyncs makes a record which directories it fsyncs, and returns
// a function that gives them, each once and sorted, and forgets them.
func recordDirSyncs(a *Appender) func() []string {
	var (
		mu     sync.Mutex
		synced []string
	)
	a.dirSync = func(dir string) error {
		mu.Lock()
		synced = append(synced, dir)
		mu.Unlock()
		return syncDir(dir)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		got := slices.Compact(slices.Sorted(slices.Values(synced)))
		synced = nil
		return got
	}
}

func writeTestMessage(w *bufio.Writer) error {
	_, err := w.WriteString("Subject: durable\n\nbody\n")
	return err
}

// Every directory whose entries the archive changes is fsync'd before
// the copy counts as made: the parent of each directory it creates, the
// directory of a new mbox, and new/ after a maildir delivery. Without
// that, a power cut can lose the new name, and the fsync'd message with
// it.
func TestDurableCreation(t *testing.T) {
	ctx := context.Background()
	t.Run("mbox", func(t *testing.T) {
		root := t.TempDir()
		a := NewAppender(time.Second, nil)
		synced := recordDirSyncs(a)
		path := filepath.Join(root, "a", "b", "spam.mbox")
		if _, err := a.AppendMbox(ctx, path, writeTestMessage); err != nil {
			t.Fatal(err)
		}
		want := []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")}
		if got := synced(); !slices.Equal(got, want) {
			t.Errorf("new mbox in new directories: synced %q, want %q", got, want)
		}
		if _, err := a.AppendMbox(ctx, path, writeTestMessage); err != nil {
			t.Fatal(err)
		}
		if got := synced(); len(got) != 0 {
			t.Errorf("append to an existing mbox: synced %q, want none", got)
		}
		other := filepath.Join(root, "a", "b", "ham.mbox")
		if _, err := a.AppendMbox(ctx, other, writeTestMessage); err != nil {
			t.Fatal(err)
		}
		if got, want := synced(), []string{filepath.Join(root, "a", "b")}; !slices.Equal(got, want) {
			t.Errorf("new mbox in an existing directory: synced %q, want %q", got, want)
		}
	})
	// Another writer (a second daemon, or a filter of the same one
	// under another path's lock) may have created the mbox and not yet
	// synced its directory when this append finds it, empty, and
	// acknowledges its copy: the name has to be made durable by
	// whoever writes the first record into it, as that writer does
	// its own only after its sync.
	t.Run("mbox created by another", func(t *testing.T) {
		root := t.TempDir()
		a := NewAppender(time.Second, nil)
		synced := recordDirSyncs(a)
		path := filepath.Join(root, "spam.mbox")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AppendMbox(ctx, path, writeTestMessage); err != nil {
			t.Fatal(err)
		}
		if got, want := synced(), []string{root}; !slices.Equal(got, want) {
			t.Errorf("first record into an empty mbox another made: synced %q, want %q", got, want)
		}
		if _, err := a.AppendMbox(ctx, path, writeTestMessage); err != nil {
			t.Fatal(err)
		}
		if got := synced(); len(got) != 0 {
			t.Errorf("second record: synced %q, want none", got)
		}
	})
	t.Run("maildir", func(t *testing.T) {
		root := t.TempDir()
		a := NewAppender(time.Second, nil)
		synced := recordDirSyncs(a)
		dir := filepath.Join(root, "a", "md")
		if _, err := a.AppendMaildir(ctx, dir, writeTestMessage); err != nil {
			t.Fatal(err)
		}
		want := []string{root, filepath.Join(root, "a"), dir, filepath.Join(dir, "new")}
		if got := synced(); !slices.Equal(got, want) {
			t.Errorf("new maildir: synced %q, want %q", got, want)
		}
		if _, err := a.AppendMaildir(ctx, dir, writeTestMessage); err != nil {
			t.Fatal(err)
		}
		if got, want := synced(), []string{filepath.Join(dir, "new")}; !slices.Equal(got, want) {
			t.Errorf("existing maildir: synced %q, want %q", got, want)
		}
	})
}

// A maildir delivery fsyncs new/ after the message got its name there,
// by link(2) or, without hard links, by rename(2): a sync before would
// not cover the new name.
func TestMaildirNewSyncedAfterDelivery(t *testing.T) {
	linking := NewAppender(time.Second, nil)
	renaming, _ := withoutHardLinks(time.Second)
	for name, a := range map[string]*Appender{"link": linking, "rename": renaming} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "md")
			newDir := filepath.Join(dir, "new")
			var held []int // files in new/ at each of its syncs
			a.dirSync = func(d string) error {
				if d == newDir {
					ents, err := os.ReadDir(d)
					if err != nil {
						return err
					}
					held = append(held, len(ents))
				}
				return syncDir(d)
			}
			for range 2 {
				if _, err := a.AppendMaildir(context.Background(), dir, writeTestMessage); err != nil {
					t.Fatal(err)
				}
			}
			if want := []int{1, 2}; !slices.Equal(held, want) {
				t.Errorf("new/ held %v files when it was synced, want %v", held, want)
			}
		})
	}
}

// An mbox path may be a symbolic link to an archive kept on another disk
// (see OpenTrustedLink). When the file it points to does not exist yet
// (the first copy, or the next one after the file there was rotated
// away), the append creates it through the link, in the directory of
// the link's target: that directory holds the new name, and must be
// fsync'd before the copy counts as made, as for an mbox created at its
// own path.
func TestMboxCreatedThroughALinkIsDurable(t *testing.T) {
	root := t.TempDir()
	disk2 := t.TempDir()
	path := filepath.Join(root, "spam.mbox")
	target := filepath.Join(disk2, "spam.mbox")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	a := NewAppender(time.Second, nil)
	synced := recordDirSyncs(a)
	ctx := context.Background()
	if _, err := a.AppendMbox(ctx, path, writeTestMessage); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("the link's target: %v", err)
	}
	if got, want := synced(), []string{disk2}; !slices.Equal(got, want) {
		t.Errorf("new mbox created through a link: synced %q, want %q", got, want)
	}
	if _, err := a.AppendMbox(ctx, path, writeTestMessage); err != nil {
		t.Fatal(err)
	}
	if got := synced(); len(got) != 0 {
		t.Errorf("append through a link to an existing mbox: synced %q, want none", got)
	}
	// Rotated away: the next copy creates the file again.
	if err := os.Rename(target, target+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AppendMbox(ctx, path, writeTestMessage); err != nil {
		t.Fatal(err)
	}
	if got, want := synced(), []string{disk2}; !slices.Equal(got, want) {
		t.Errorf("mbox created again through a link after rotation: synced %q, want %q", got, want)
	}
}
