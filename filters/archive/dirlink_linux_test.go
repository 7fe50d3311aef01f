package archive

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// A directory below the archive's top directory that is a symbolic link
// is followed only if root or this user owns it. The daemon's user owns
// those directories: its link at archive/lab.example, to /etc say, must
// not have root's "sluice archive move" (or the daemon) create the
// recipient's mbox or maildir there. The top directory, which the
// administrator wrote in the configuration, is taken as given, and a
// link of root's below it is followed.
func TestArchiveFollowsOnlyTrustedDirectoryLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a link another user owns")
	}
	for _, format := range []string{FormatMbox, FormatMaildir} {
		t.Run(format, func(t *testing.T) {
			top := t.TempDir()
			// The top directory itself is reached through a link of
			// another user's: given in the configuration, it is taken
			// as given.
			realTop := t.TempDir()
			topLink := filepath.Join(top, "archive")
			if err := os.Symlink(realTop, topLink); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(topLink, unprivilegedUID, unprivilegedUID); err != nil {
				t.Fatal(err)
			}
			f := newFilter(t, Config{Format: format, Targets: map[string]string{
				"default": filepath.Join(topLink, "{rcpt_domain}", "{rcpt_local}"),
			}}, nil)
			m := testMessage("Q1", "hello\r\n")
			m.Rcpts = []filters.Address{{Addr: "bob@lab.example"}}

			victim := t.TempDir()
			evil := filepath.Join(realTop, "lab.example")
			if err := os.Symlink(victim, evil); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(evil, unprivilegedUID, unprivilegedUID); err != nil {
				t.Fatal(err)
			}
			_, err := f.Check(context.Background(), filters.StageEOM, m)
			var ul *UntrustedLinkError
			if !errors.As(err, &ul) || ul.Path != filepath.Join(topLink, "lab.example") {
				t.Errorf("archived through another user's directory link: %v; want an *UntrustedLinkError naming the link", err)
			} else if !strings.Contains(err.Error(), "lab.example: a symbolic link owned by uid 65534") {
				t.Errorf("error %q does not say which link was refused", err)
			}
			if ents, err := os.ReadDir(victim); err != nil || len(ents) != 0 {
				t.Errorf("created at the link's target: %v, %v", ents, err)
			}

			// root's own link, to a directory elsewhere, is followed.
			if err := os.Lchown(evil, 0, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
				t.Fatalf("through root's own link: %v", err)
			}
			if _, err := os.Stat(filepath.Join(victim, "bob")); err != nil {
				t.Errorf("the archive behind root's link: %v", err)
			}
		})
	}
}

// Root's "sluice archive show" and "move" read and rewrite mboxes below
// the archive's top directory: a directory link another user owns is
// not followed there either, and the file it leads to is neither read
// nor replaced.
func TestReadAndRemoveFollowOnlyTrustedDirectoryLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a link another user owns")
	}
	top := t.TempDir()
	victim := t.TempDir()
	secret := filepath.Join(victim, "spam.mbox")
	const content = "From root Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: Q1\n\nsecret\n\n"
	if err := os.WriteFile(secret, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(top, "lab.example")
	if err := os.Symlink(victim, evil); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(evil, unprivilegedUID, unprivilegedUID); err != nil {
		t.Fatal(err)
	}
	app := NewAppender(time.Second, nil)
	app.SetRoots(top)
	path := filepath.Join(evil, "spam.mbox")
	var ul *UntrustedLinkError
	if err := app.ReadRecords(context.Background(), path, func(Record) error { return nil }); !errors.As(err, &ul) {
		t.Errorf("ReadRecords through another user's directory link: %v", err)
	}
	var read []byte
	if err := app.ReadLocked(context.Background(), path, nil, func(r io.Reader) error {
		var err error
		read, err = io.ReadAll(r)
		return err
	}); !errors.As(err, &ul) || len(read) != 0 {
		t.Errorf("ReadLocked through another user's directory link: %v", err)
	}
	if n, err := app.RemoveRecords(context.Background(), path, func(RecordAt) bool { return true }); !errors.As(err, &ul) || n != 0 {
		t.Errorf("RemoveRecords through another user's directory link: %d, %v", n, err)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != content {
		t.Errorf("the file behind the link: %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 1 {
		t.Errorf("files at the link's target: %v", ents)
	}
}
