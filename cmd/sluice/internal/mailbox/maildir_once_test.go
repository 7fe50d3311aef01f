package mailbox

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A message of a maildir is read once, however a mail client moves or
// renames it while the walk runs: moved from new/ to cur/ after new/ was
// read (the client fetched the folder), or listed under its old and its
// new name at once, as a directory listed during a rename may give it
// (readdir(3) leaves it unspecified whether such an entry shows).
func TestMaildirMessageReadOnce(t *testing.T) {
	t.Run("moved from new to cur after it was read", func(t *testing.T) {
		md := filepath.Join(t.TempDir(), "Maildir")
		write(t, filepath.Join(md, "new", "1.M1.host"), "Subject: new1\n\nx\n")
		write(t, filepath.Join(md, "cur", "3.M3.host:2,"), "Subject: cur3\n\nx\n")
		var got []string
		err := Walk(md, nil, func(m Message) error {
			if m.Err != nil {
				t.Errorf("%s: %v", m.Name, m.Err)
				return nil
			}
			got = append(got, strings.TrimPrefix(m.Name, md+"/"))
			if strings.HasSuffix(m.Name, "new/1.M1.host") {
				// Read, then fetched by the client before cur/ is listed.
				if err := os.Rename(m.Name, filepath.Join(md, "cur", "1.M1.host:2,S")); err != nil {
					t.Fatal(err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"new/1.M1.host", "cur/3.M3.host:2,"}; !slices.Equal(got, want) {
			t.Errorf("read %q, want %q", got, want)
		}
	})
	t.Run("listed under both names", func(t *testing.T) {
		md := filepath.Join(t.TempDir(), "Maildir")
		if err := os.MkdirAll(filepath.Join(md, "new"), 0o755); err != nil {
			t.Fatal(err)
		}
		cur := filepath.Join(md, "cur")
		write(t, filepath.Join(cur, "3.M3.host:2,"), "Subject: cur3\n\nx\n")
		write(t, filepath.Join(cur, "4.M4.host:2,"), "Subject: cur4, flagged meanwhile\n\nx\n")
		listed := false
		readDir = func(dir string) ([]fs.DirEntry, error) {
			if dir != cur || listed {
				return os.ReadDir(dir)
			}
			listed = true
			// The listing runs while the client flags 4 as seen.
			before, err := os.ReadDir(dir)
			if err != nil {
				return nil, err
			}
			if err := os.Rename(filepath.Join(cur, "4.M4.host:2,"), filepath.Join(cur, "4.M4.host:2,S")); err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadDir(dir)
			if err != nil {
				return nil, err
			}
			all := append(before, after...)
			slices.SortFunc(all, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
			return slices.CompactFunc(all, func(a, b fs.DirEntry) bool { return a.Name() == b.Name() }), nil
		}
		t.Cleanup(func() { readDir = os.ReadDir })
		var got []string
		err := Walk(md, nil, func(m Message) error {
			if m.Err != nil {
				t.Errorf("%s: %v", m.Name, m.Err)
				return nil
			}
			got = append(got, strings.TrimPrefix(m.Name, md+"/"))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"cur/3.M3.host:2,", "cur/4.M4.host:2,S"}; !slices.Equal(got, want) {
			t.Errorf("read %q, want %q", got, want)
		}
	})
}
