package filters_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// nobody is the uid that stands for another local user.
const nobody = 65534

// chownOrSkip gives path (not what a link points to) to uid. Without the
// privilege to, the test is skipped, except under CI, where that is a
// failure.
func chownOrSkip(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chown %s: %v", path, err)
		}
		t.Skipf("chown %s (needs root): %v", path, err)
	}
}

// A spill directory that another local user controls, found at the time
// of a spill (removed while the daemon ran, by a cleaner of /tmp, and
// made again by that user before the next large message), is refused:
// the body breaks, as on a full disk, and nothing is written there.
// One that sluice's user or root owns, /tmp's kind of sticky directory
// writable by all among them, still takes the spill.
func TestBodySpillDirectoryOwner(t *testing.T) {
	for _, tc := range []struct {
		name string
		// make sets up the spill directory dir below parent.
		make func(t *testing.T, parent, dir string)
		want string // "" for a spill that succeeds
	}{
		{"made by another user", func(t *testing.T, _, dir string) {
			mkdir(t, dir, 0o700)
			chownOrSkip(t, dir, nobody)
		}, "owned by uid 65534"},
		{"a link another user made", func(t *testing.T, parent, dir string) {
			target := filepath.Join(parent, "target")
			mkdir(t, target, 0o700)
			symlink(t, target, dir)
			chownOrSkip(t, dir, nobody)
		}, "a symbolic link is owned by uid 65534"},
		{"a link to another user's directory", func(t *testing.T, parent, dir string) {
			target := filepath.Join(parent, "target")
			mkdir(t, target, 0o700)
			chownOrSkip(t, target, nobody)
			symlink(t, target, dir)
		}, "the directory is owned by uid 65534"},
		{"writable by every user", func(t *testing.T, _, dir string) {
			mkdir(t, dir, 0o777)
		}, "writable by every user and not sticky"},
		{"not a directory", func(t *testing.T, _, dir string) {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a directory"},
		{"sluice's own", func(t *testing.T, _, dir string) {
			mkdir(t, dir, 0o700)
		}, ""},
		{"sticky and writable by every user", func(t *testing.T, _, dir string) {
			mkdir(t, dir, 0o777|os.ModeSticky)
		}, ""},
		{"a link of sluice's own", func(t *testing.T, parent, dir string) {
			target := filepath.Join(parent, "target")
			mkdir(t, target, 0o700)
			symlink(t, target, dir)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "spill")
			b := filters.NewBody(4, dir)
			defer b.Close()
			b.Write([]byte("1234"))
			tc.make(t, parent, dir)
			_, err := b.Write([]byte("5678"))
			if tc.want == "" {
				if err != nil || !b.Spilled() {
					t.Fatalf("spill into %s: %v, spilled %v; want it taken", dir, err, b.Spilled())
				}
				return
			}
			if err == nil || b.Err() == nil || b.Spilled() || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("spill: %v, spilled %v; want it refused with %q", err, b.Spilled(), tc.want)
			}
			// What came before the refusal is kept, marked incomplete.
			if got, _ := io.ReadAll(b.Reader()); string(got) != "1234" || b.Size() != 8 {
				t.Errorf("body after the refusal: %q, size %d", got, b.Size())
			}
		})
	}
}

// With body.temp_dir empty, bodies go to the system's temporary
// directory, $TMPDIR or /tmp: one that $TMPDIR names and another user
// controls is refused as a named one is. /tmp itself (root's, sticky)
// takes the spill.
func TestBodySpillSystemTempDirOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tmp")
	mkdir(t, dir, 0o700)
	chownOrSkip(t, dir, nobody)
	t.Setenv("TMPDIR", dir)
	b := filters.NewBody(4, "")
	defer b.Close()
	b.Write([]byte("1234"))
	if _, err := b.Write([]byte("5678")); err == nil || b.Spilled() || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("spill into $TMPDIR %s, another user's: %v, spilled %v; want it refused", dir, err, b.Spilled())
	}
	t.Setenv("TMPDIR", "/tmp")
	b2 := filters.NewBody(4, "")
	defer b2.Close()
	b2.Write([]byte("1234"))
	if _, err := b2.Write([]byte("5678")); err != nil || !b2.Spilled() {
		t.Fatalf("spill into /tmp: %v, spilled %v; want it taken", err, b2.Spilled())
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Past the umask.
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
