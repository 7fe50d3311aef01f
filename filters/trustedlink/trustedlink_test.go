package trustedlink

import (
	"errors"
	"os"
	"path/filepath"
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
