package mailbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// A message removed from a folder after the walk listed it (nmh's rmm
// renames message 2 to ",2" while "sluice train" reads the folder) is
// skipped, as one a mail client moves out of a maildir is: a live folder
// is no error. A path named that does not exist still is one.
func TestFileGoneSinceListingSkipped(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "inbox")
	for _, n := range []string{"1", "2", "3"} {
		write(t, filepath.Join(folder, n), "From: a@example.org\nSubject: "+n+"\n\nbody\n")
	}
	readDir = func(dir string) ([]fs.DirEntry, error) {
		entries, err := os.ReadDir(dir)
		if dir == folder {
			// The user removes message 2 once the folder is listed.
			if err := os.Rename(filepath.Join(folder, "2"), filepath.Join(folder, ",2")); err != nil {
				t.Fatal(err)
			}
		}
		return entries, err
	}
	t.Cleanup(func() { readDir = os.ReadDir })
	got := collect(t, folder, "")
	want := folder + "/1: \"From: a@example.org\\nSubject: 1\\n\\nbody\\n\"\n" +
		folder + "/3: \"From: a@example.org\\nSubject: 3\\n\\nbody\\n\"\n"
	if s := summary(got); s != want {
		t.Errorf("walk:\n%s\nwant:\n%s", s, want)
	}
	readDir = os.ReadDir
	named := filepath.Join(folder, "2")
	got = collect(t, named, "")
	if len(got) != 1 || !errors.Is(got[0].Err, fs.ErrNotExist) {
		t.Errorf("a missing file named: %s", summary(got))
	}
}
