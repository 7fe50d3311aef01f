package trustedlink

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Open opens a plain file as os.OpenFile does, follows a link this user
// made, and refuses one another user owns, with an *UntrustedError and
// without touching its target.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	f, err := Open(plain, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("plain file: %v", err)
	}
	f.Close()

	own := filepath.Join(dir, "own")
	if err := os.Symlink(plain, own); err != nil {
		t.Fatal(err)
	}
	f, err = Open(own, os.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("this user's link: %v", err)
	}
	f.Close()

	if os.Geteuid() != 0 {
		t.Skip("a link owned by another user needs root to make")
	}
	other := filepath.Join(dir, "other")
	target := filepath.Join(dir, "target")
	if err := os.Symlink(target, other); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(other, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	f, err = Open(other, os.O_RDWR|os.O_CREATE, 0o600)
	var ue *UntrustedError
	if !errors.As(err, &ue) || ue.UID != 1000 {
		if f != nil {
			f.Close()
		}
		t.Fatalf("another user's link: %v, want an *UntrustedError naming uid 1000", err)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Errorf("the target %s of another user's link was created", target)
	}
}

// WalkDirs follows a directory link below the root that this user owns,
// refuses one another user owns (naming it) without creating anything
// where it leads, takes the root as given, and makes missing directories
// with create.
func TestWalkDirs(t *testing.T) {
	root := t.TempDir()
	elsewhere := t.TempDir()
	own := filepath.Join(root, "own")
	if err := os.Symlink(elsewhere, own); err != nil {
		t.Fatal(err)
	}
	var made []string
	mkdir := func(dir string) error {
		made = append(made, dir)
		return os.Mkdir(dir, 0o750)
	}
	if err := WalkDirs(root, filepath.Join(own, "a", "b"), mkdir); err != nil {
		t.Fatalf("through this user's link: %v", err)
	}
	if want := []string{filepath.Join(own, "a"), filepath.Join(own, "a", "b")}; strings.Join(made, ",") != strings.Join(want, ",") {
		t.Errorf("made %v, want %v", made, want)
	}
	if fi, err := os.Stat(filepath.Join(elsewhere, "a", "b")); err != nil || !fi.IsDir() {
		t.Errorf("the directories behind the link: %v", err)
	}
	// Without create, a missing directory ends the walk.
	if err := WalkDirs(root, filepath.Join(root, "missing", "x"), nil); err != nil {
		t.Errorf("missing directory without create: %v", err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WalkDirs(root, filepath.Join(file, "x"), nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a file as a directory: %v", err)
	}
	if err := WalkDirs(root, filepath.Dir(root), nil); err == nil {
		t.Error("a directory above the root was walked")
	}

	if os.Geteuid() != 0 {
		t.Skip("a link owned by another user needs root to make")
	}
	// The root itself may be anyone's link: the administrator named it.
	top := filepath.Join(t.TempDir(), "top")
	if err := os.Symlink(root, top); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(top, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	victim := t.TempDir()
	other := filepath.Join(root, "other")
	if err := os.Symlink(victim, other); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(other, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	made = nil
	err := WalkDirs(top, filepath.Join(top, "other", "a"), mkdir)
	var ue *UntrustedError
	if !errors.As(err, &ue) || ue.UID != 1000 || ue.Path != filepath.Join(top, "other") {
		t.Fatalf("another user's directory link: %v, want an *UntrustedError naming %s", err, filepath.Join(top, "other"))
	}
	if len(made) != 0 {
		t.Errorf("made %v through another user's link", made)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("created at the link's target: %v", ents)
	}
	if err := WalkDirs(top, filepath.Join(top, "own", "a"), nil); err != nil {
		t.Errorf("this user's link below a root reached through another's: %v", err)
	}
}

// Open takes a relative target from the link's directory, follows a
// target that is itself a trusted link, creates a missing target with
// O_CREATE, and opens the file the link it judged names even when
// another user's link is put in its place right after the judgement:
// the file that link names is neither created nor opened.
func TestOpenLinkReplacedAfterCheck(t *testing.T) {
	dir := t.TempDir()
	trusted := filepath.Join(dir, "trusted")
	if err := os.WriteFile(trusted, []byte("trusted\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	box := filepath.Join(dir, "box")
	if err := os.Symlink("trusted", box); err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(dir, "chain")
	if err := os.Symlink("box", chain); err != nil {
		t.Fatal(err)
	}
	sameAs := func(f *os.File, path string) bool {
		t.Helper()
		defer f.Close()
		got, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return os.SameFile(got, want)
	}
	for _, path := range []string{box, chain} {
		f, err := Open(path, os.O_RDONLY, 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !sameAs(f, trusted) {
			t.Errorf("%s: did not open %s", path, trusted)
		}
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink("new", dangling); err != nil {
		t.Fatal(err)
	}
	f, err := Open(dangling, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("a link to a missing file, with O_CREATE: %v", err)
	}
	if !sameAs(f, filepath.Join(dir, "new")) {
		t.Errorf("%s: did not create and open its target", dangling)
	}

	if os.Geteuid() != 0 {
		t.Skip("a link owned by another user needs root to make")
	}
	victim := filepath.Join(t.TempDir(), "nologin")
	evil := filepath.Join(dir, "evil")
	if err := os.Symlink(victim, evil); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(evil, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	// Whoever may write dir renames its own link over the judged one.
	checkedHook = func(path string) {
		if err := os.Rename(evil, path); err != nil {
			t.Errorf("replacing the link: %v", err)
		}
	}
	defer func() { checkedHook = nil }()
	f, err = Open(box, os.O_RDWR|os.O_CREATE, 0o600)
	if _, serr := os.Lstat(victim); serr == nil {
		t.Errorf("%s, named by the link put in place of the judged one, was created", victim)
	}
	if err != nil {
		t.Fatalf("a link replaced after it was judged: %v", err)
	}
	if !sameAs(f, trusted) {
		t.Errorf("did not open %s, named by the link judged", trusted)
	}
}
