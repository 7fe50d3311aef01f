package classifier_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// The store lives in state_dir, which the daemon's user may write, and
// root's "sluice train" opens it (docs/training.md). A symbolic link that
// user put in the place of the store or of its lock file must not have
// root create or write the file it points to (an empty /etc/nologin, a
// bbolt file in /etc/sudoers.d): such a link is not followed, as in the
// archive and "sluice train" (archive.OpenTrustedLink). A link root or
// this process's user made (a store on another disk) is followed. Opened
// read-only ("sluice classify" run by a user), a store writes nothing,
// and follows links as before.
func TestOpenBoltOtherUsersLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a link owned by another user needs root to make")
	}
	for _, tc := range []struct {
		name string
		link string // relative to the store's path: "" the store, ".lock" its lock
	}{
		{"store", ""},
		{"lock file", ".lock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bayes.db")
			target := filepath.Join(dir, "victim")
			if err := os.Symlink(target, path+tc.link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(path+tc.link, 1000, 1000); err != nil {
				t.Fatal(err)
			}
			s, err := classifier.OpenBolt(path, classifier.BoltOptions{})
			if err == nil {
				s.Close()
				t.Fatalf("opened a store through another user's link at %s", path+tc.link)
			}
			if !strings.Contains(err.Error(), "neither root nor this user") || strings.Contains(err.Error(), "store's owner") {
				t.Errorf("error %q, want it to name the link it did not follow, and no advice on access", err)
			}
			if _, err := os.Lstat(target); err == nil {
				t.Errorf("the link's target %s was created", target)
			}
		})
	}

	// root's own link (a store kept on another disk) is followed.
	dir := t.TempDir()
	path := filepath.Join(dir, "bayes.db")
	if err := os.Symlink(filepath.Join(dir, "elsewhere.db"), path); err != nil {
		t.Fatal(err)
	}
	s, err := classifier.OpenBolt(path, classifier.BoltOptions{})
	if err != nil {
		t.Fatalf("open through root's own link: %v", err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "elsewhere.db")); err != nil {
		t.Errorf("root's own link was not followed: %v", err)
	}
}
