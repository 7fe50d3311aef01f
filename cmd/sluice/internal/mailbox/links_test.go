package mailbox

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/archive"
)

// otherUID is the user whose folders root reads in these tests: nobody.
const otherUID = 65534

// secretFile makes a file only root may read, as /etc/shadow is, in a
// directory of its own, and returns the directory and the file's name.
func secretFile(t *testing.T) (dir, name string) {
	t.Helper()
	dir = t.TempDir()
	name = "shadow"
	// An mbox, so that it would be read under the locks too.
	write(t, filepath.Join(dir, name), "From root Mon Jan  1 10:00:00 2024\nSubject: root:$6$secret\n\nsecret\n")
	if err := os.Chmod(filepath.Join(dir, name), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, name
}

// userLink makes a symbolic link at path to target, owned by otherUID, as
// the user makes it in a folder of theirs.
func userLink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
}

// readAll walks path as "sluice train" does (under the mbox locks) and
// returns what it read.
func readAll(t *testing.T, path string) []Message {
	t.Helper()
	var got []Message
	rd := Reader{Locks: archive.NewAppender(time.Second, nil)}
	if err := rd.Walk(context.Background(), path, func(m Message) error {
		got = append(got, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// Root reading users' folders ("sluice train --ham /home/*/Maildir") must
// not read what a link a user put there points to: a file the user may
// not read, which would be learned, and shown by "sluice classify
// --explain". Every such link is reported, not followed: one given as
// the path (the glob matched a link), one in a directory walked, one in a
// maildir's cur/, and a maildir's cur/ that is a link.
func TestWalkFollowsNoOtherUsersLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make links another user owns")
	}
	secretDir, secret := secretFile(t)
	home := t.TempDir()
	write(t, filepath.Join(home, "mail", "ok.eml"), "Subject: mine\n\nx\n")
	userLink(t, filepath.Join(secretDir, secret), filepath.Join(home, "mail", "note.eml"))
	userLink(t, filepath.Join(secretDir, secret), filepath.Join(home, "mail", "box.mbox"))
	md := filepath.Join(home, "Maildir")
	write(t, filepath.Join(md, "new", "1700000001.M1.host"), "Subject: new mail\n\nx\n")
	userLink(t, filepath.Join(secretDir, secret), filepath.Join(md, "new", "1700000002.M2.host"))
	if err := os.MkdirAll(filepath.Join(md, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	userLink(t, secretDir, filepath.Join(md, "cur"))
	userLink(t, secretDir, filepath.Join(home, "Linked"))

	cases := []struct {
		path        string
		read        []string // subjects read
		notFollowed int      // links reported
	}{
		{filepath.Join(home, "mail"), []string{"mine"}, 2},
		{md, []string{"new mail"}, 2},
		{filepath.Join(home, "Linked"), nil, 1},
		{filepath.Join(home, "mail", "note.eml"), nil, 1},
	}
	for _, c := range cases {
		var read []string
		reported := 0
		for _, m := range readAll(t, c.path) {
			if strings.Contains(string(m.Data), "secret") {
				t.Errorf("%s: read the file behind a user's link: %s", c.path, m.Name)
			}
			var ul *archive.UntrustedLinkError
			switch {
			case errors.As(m.Err, &ul):
				reported++
			case m.Err != nil:
				t.Errorf("%s: %s: %v", c.path, m.Name, m.Err)
			default:
				line, _, _ := strings.Cut(string(m.Data), "\n")
				read = append(read, strings.TrimPrefix(line, "Subject: "))
			}
		}
		if strings.Join(read, "|") != strings.Join(c.read, "|") || reported != c.notFollowed {
			t.Errorf("%s: read %q and reported %d links, want %q and %d", c.path, read, reported, c.read, c.notFollowed)
		}
	}
	// The total for the progress bar does not count them either.
	if got, want := TotalSize([]string{filepath.Join(home, "mail")}), int64(len("Subject: mine\n\nx\n")); got != want {
		t.Errorf("TotalSize %d, want %d", got, want)
	}
}

// Root's own links, and this user's, are followed: an admin's link to an
// archive kept on another disk.
func TestWalkFollowsOwnLinks(t *testing.T) {
	secretDir, secret := secretFile(t)
	home := t.TempDir()
	if err := os.Symlink(filepath.Join(secretDir, secret), filepath.Join(home, "box.mbox")); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, home)
	if len(got) != 1 || got[0].Err != nil || !strings.Contains(string(got[0].Data), "secret") {
		t.Errorf("through this user's link: %s", summary(got))
	}
}

// A user may replace a directory root is walking by a link (to /etc)
// between the listing and the reading of its files: the files are opened
// through the directory as it was listed, so the names now listed through
// the link lead nowhere.
func TestWalkDirectoryReplacedByLink(t *testing.T) {
	secretDir, _ := secretFile(t)
	md := filepath.Join(t.TempDir(), "Maildir")
	write(t, filepath.Join(md, "new", "1700000001.M1.host"), "Subject: new mail\n\nx\n")
	write(t, filepath.Join(md, "cur", "1700000002.M2.host:2,S"), "Subject: old mail\n\nx\n")
	cur := filepath.Join(md, "cur")
	swapped := false
	readDir = func(dir string) ([]fs.DirEntry, error) {
		if dir == cur && !swapped {
			swapped = true
			if err := os.Rename(cur, cur+".away"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(secretDir, cur); err != nil {
				t.Fatal(err)
			}
		}
		return os.ReadDir(dir)
	}
	t.Cleanup(func() { readDir = os.ReadDir })
	for _, m := range readAll(t, md) {
		if strings.Contains(string(m.Data), "secret") {
			t.Errorf("read %s through the directory replaced by a link", m.Name)
		}
	}
	if !swapped {
		t.Fatal("cur/ was never listed")
	}
}
