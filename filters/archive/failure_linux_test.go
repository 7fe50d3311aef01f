package archive

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needCapability fails the test under CI, where the runner is expected to
// have what the test needs, and skips it elsewhere.
func needCapability(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v", what, err)
	}
	t.Skipf("skipped: %s: %v (run as root, or with CI=true to make this a failure)", what, err)
}

// unprivilegedUID is the user the permission tests act as when run as
// root: nobody.
const unprivilegedUID = 65534

// asUnprivileged runs fn with permission checks as the daemon's own,
// unprivileged user meets them. Run as root, it sets the file-system uid
// of the current thread only (setfsuid(2)) and keeps the goroutine on
// that thread, so the rest of the test binary stays root.
func asUnprivileged(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return
	}
	runtime.LockOSThread()
	prev, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, unprivilegedUID, 0, 0)
	defer func() {
		syscall.RawSyscall(syscall.SYS_SETFSUID, prev, 0, 0)
		runtime.UnlockOSThread()
	}()
	fn()
}

// A permission error is not a lock held by someone else: the append must
// fail at once with it, not wait out lock_timeout for every message and
// then report a lock that was never contended.
func TestPermissionDeniedFailsAtOnce(t *testing.T) {
	// Can this test take away its own permissions?
	ro := filepath.Join(searchableTempDir(t), "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ro, readOnlyDirMode()); err != nil {
		t.Fatal(err)
	}
	var perr error
	asUnprivileged(t, func() { perr = os.WriteFile(filepath.Join(ro, "probe"), nil, 0o600) })
	if perr == nil {
		needCapability(t, "acting as an unprivileged user", errors.New("a file could be created in a read-only directory"))
	}

	write := func(w *bufio.Writer) error {
		_, err := w.WriteString("From a Thu Jan  1 00:00:00 1970\nbody\n")
		return err
	}
	cases := []struct {
		name        string
		dirWritable bool
		mbox        bool // an mbox exists
		mboxMode    os.FileMode
	}{
		{"directory not writable, no mbox yet", false, false, 0},
		{"mbox not writable", true, true, 0o444},
		{"mbox writable, directory not (no room for the dot-lock)", false, true, 0o666},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(searchableTempDir(t), "archive")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "x.mbox")
			if c.mbox {
				if err := os.WriteFile(path, nil, c.mboxMode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, c.mboxMode); err != nil {
					t.Fatal(err)
				}
				if os.Geteuid() == 0 && c.mboxMode&0o200 != 0 {
					if err := os.Chown(path, unprivilegedUID, unprivilegedUID); err != nil {
						t.Fatal(err)
					}
				}
			}
			switch {
			case c.dirWritable && os.Geteuid() == 0:
				if err := os.Chown(dir, unprivilegedUID, unprivilegedUID); err != nil {
					t.Fatal(err)
				}
			case !c.dirWritable:
				if err := os.Chmod(dir, readOnlyDirMode()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(dir, 0o755) })
			}

			// With a retry loop the append would give up after the lock
			// timeout, saying the lock was not obtained.
			app := NewAppender(2*time.Second, nil)
			var err error
			asUnprivileged(t, func() { _, err = app.AppendMbox(context.Background(), path, write) })
			if !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("append error %v, want a permission error", err)
			}
			if strings.Contains(err.Error(), "not obtained") {
				t.Errorf("a permission error was retried as a busy lock: %v", err)
			}
			if _, err := os.Stat(path + ".lock"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("dot-lock left behind: %v", err)
			}
		})
	}
}

// searchableTempDir returns a temporary directory that the unprivileged
// user can reach: t.TempDir makes its parent private to the owner.
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readOnlyDirMode is the mode of a directory the unprivileged user may
// search but not write: as root the directory stays root's, otherwise
// it loses its write bits.
func readOnlyDirMode() os.FileMode {
	if os.Geteuid() == 0 {
		return 0o755
	}
	return 0o555
}

// Once the message is renamed into new/ it is delivered: if the fsync of
// new/ then fails, the append must not report a failure, or the caller
// (a tempfail retry) archives the message a second time. The failure is
// logged instead. new/ without read permission makes the directory
// unopenable for the fsync while the rename into it still works.
func TestMaildirSyncFailureAfterRenameIsNoFailure(t *testing.T) {
	md := filepath.Join(searchableTempDir(t), "md")
	for _, d := range []struct {
		sub  string
		mode os.FileMode
	}{{"", 0o777}, {"tmp", 0o777}, {"cur", 0o777}, {"new", 0o333}} {
		path := filepath.Join(md, d.sub)
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(md, "new"), 0o755) })
	var perr error
	asUnprivileged(t, func() { _, perr = os.Open(filepath.Join(md, "new")) })
	if perr == nil {
		needCapability(t, "acting as an unprivileged user", errors.New("a directory without read permission could be opened"))
	}

	var logs strings.Builder
	app := NewAppender(2*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	var n int64
	var err error
	asUnprivileged(t, func() {
		n, err = app.AppendMaildir(context.Background(), md, func(w *bufio.Writer) error {
			_, err := w.WriteString("Subject: x\n\nbody\n")
			return err
		})
	})
	if err != nil {
		t.Fatalf("append reported %v, though the message is in new/", err)
	}
	if n != int64(len("Subject: x\n\nbody\n")) {
		t.Errorf("append reported %d bytes", n)
	}
	os.Chmod(filepath.Join(md, "new"), 0o755)
	entries, err := os.ReadDir(filepath.Join(md, "new"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%d messages in new/, want 1", len(entries))
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "fsync") {
		t.Errorf("no warning about the failed fsync logged: %q", logs.String())
	}
}

// An mbox path that is a symbolic link is followed only if root or this
// user owns the link: whoever may write the archive's directory must not
// be able to make root's "sluice archive move" append to a file of their
// choosing. A link of this user's own is followed as before.
func TestAppendFollowsOnlyTrustedLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a link another user owns")
	}
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(victim, []byte("ssh-ed25519 AAAA root\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	app := NewAppender(time.Second, nil)
	write := func(w *bufio.Writer) error {
		_, err := w.WriteString("From a@example.com Thu Jan  1 00:00:00 1970\nSubject: x\n\nhello\n\n")
		return err
	}
	evil := filepath.Join(dir, "ham.mbox")
	if err := os.Symlink(victim, evil); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(evil, unprivilegedUID, unprivilegedUID); err != nil {
		t.Fatal(err)
	}
	if _, err := app.AppendMbox(context.Background(), evil, write); err == nil {
		t.Error("appended through a link another user owns")
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "ssh-ed25519 AAAA root\n" {
		t.Errorf("the link's target: %q, %v", b, err)
	}

	// root's own link, to a real archive elsewhere, is followed.
	real := filepath.Join(t.TempDir(), "spam.mbox")
	own := filepath.Join(dir, "spam.mbox")
	if err := os.Symlink(real, own); err != nil {
		t.Fatal(err)
	}
	if _, err := app.AppendMbox(context.Background(), own, write); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(real); err != nil || !strings.Contains(string(b), "hello") {
		t.Errorf("the archive behind root's link: %q, %v", b, err)
	}
}

// Root reads users' mboxes ("sluice archive show", "sluice train" through
// ReadLocked). A link a user put at an mbox's name must not show root the
// file it points to; root's own link is followed.
func TestReadLockedFollowsOnlyTrustedLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a link another user owns")
	}
	secret := filepath.Join(t.TempDir(), "shadow")
	const content = "From root Thu Jan  1 00:00:00 1970\nSubject: root:$6$secret\n\nsecret\n"
	if err := os.WriteFile(secret, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	app := NewAppender(time.Second, nil)
	read := func(path string) (string, error) {
		var got []byte
		err := app.ReadLocked(context.Background(), path, nil, func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(r)
			return err
		})
		return string(got), err
	}
	evil := filepath.Join(dir, "spam.mbox")
	if err := os.Symlink(secret, evil); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(evil, unprivilegedUID, unprivilegedUID); err != nil {
		t.Fatal(err)
	}
	var ul *UntrustedLinkError
	if got, err := read(evil); !errors.As(err, &ul) || got != "" {
		t.Errorf("read through a link another user owns: %q, %v", got, err)
	}
	own := filepath.Join(dir, "ham.mbox")
	if err := os.Symlink(secret, own); err != nil {
		t.Fatal(err)
	}
	if got, err := read(own); err != nil || got != content {
		t.Errorf("read through root's own link: %q, %v", got, err)
	}
}

// A FIFO at an mbox's path (whoever may write the archive's directory can
// make one) takes part of a record into its buffer and then blocks the
// write for good: past the filter's deadline, with the file's locks held
// and every later copy to that path waiting behind it. Such a path is no
// mbox: the copy fails at once, as for a missing permission.
func TestAppendRefusesAFIFO(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spam.mbox")
	if err := syscall.Mkfifo(path, 0o640); err != nil {
		t.Fatal(err)
	}
	f := newFilter(t, Config{Targets: map[string]string{"default": path}, LockTimeout: time.Second}, nil)
	// More than a pipe's buffer holds, so that a write into the FIFO
	// would block.
	m := testMessage("Q1", strings.Repeat("a line of the body\r\n", 10000))
	if err := checkWithin(t, f, m, 2*time.Second, 10*time.Second); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("append to a FIFO: %v, want an error saying it is not a regular file", err)
	}
}

// Whoever may write the archive's directory can also put a hard link
// there, to a file of root's where fs.protected_hardlinks is off, and
// root's "sluice archive move" would append a message of the sender's
// making to it (a crontab, say): the rule for symbolic links does not
// see a hard link. An mbox with more than one name is refused, as
// Postfix's local(8) refuses such a mailbox.
func TestAppendRefusesAHardLinkedMbox(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "crontab")
	if err := os.WriteFile(victim, []byte("# m h dom mon dow command\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(dir, "ham.mbox")
	if err := os.Link(victim, evil); err != nil {
		t.Fatal(err)
	}
	app := NewAppender(time.Second, nil)
	_, err := app.AppendMbox(context.Background(), evil, func(w *bufio.Writer) error {
		_, err := w.WriteString("From a@example.com Thu Jan  1 00:00:00 1970\nSubject: x\n\n* * * * * root sh -c evil\n")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "hard link") {
		t.Errorf("append to an mbox with two names: %v, want an error about its hard links", err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "# m h dom mon dow command\n" {
		t.Errorf("the linked file: %q, %v", b, err)
	}
}

// Root's "sluice archive move --to ham" may be the first to write an
// archive (a new month's file, one logrotate removed). What it creates
// in the daemon's archive directory, the mbox and any directory on the
// way, must be the daemon's, the directory's owner's: left root's, with
// modes 0640 and 0750, every later copy of the daemon to it fails.
func TestRootCreatesArchivesForTheDirectorysOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(searchableTempDir(t), "archive")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, unprivilegedUID, unprivilegedUID); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "2026", "03", "ham.mbox")
	app := NewAppender(time.Second, nil)
	write := func(w *bufio.Writer) error {
		_, err := w.WriteString("From a@example.com Thu Jan  1 00:00:00 1970\nSubject: x\n\nhello\n")
		return err
	}
	if _, err := app.AppendMbox(context.Background(), path, write); err != nil {
		t.Fatal(err)
	}
	wantUnprivilegedOwner(t, filepath.Join(dir, "2026"), filepath.Join(dir, "2026", "03"), path)
	// The daemon, as that user, appends to it.
	var err error
	asUnprivileged(t, func() { _, err = NewAppender(time.Second, nil).AppendMbox(context.Background(), path, write) })
	if err != nil {
		t.Errorf("the daemon's user appending after root: %v", err)
	}
	if n := len(readRecords(t, path)); n != 2 {
		t.Errorf("%d records, want 2", n)
	}
}

// Root's own symbolic link at an mbox's name (an archive kept on another
// disk) is followed; when the file it points to does not exist yet, root
// (its "sluice archive move") creates it there, and that file too must
// go to the owner of the directory it is made in, the daemon's user, or
// the daemon's later copies to it fail.
func TestRootCreatesAnMboxThroughALinkForTheDirectorysOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	base := searchableTempDir(t)
	dir := filepath.Join(base, "archive")
	disk2 := filepath.Join(base, "disk2")
	for _, d := range []string{dir, disk2} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, unprivilegedUID, unprivilegedUID); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "ham.mbox")
	target := filepath.Join(disk2, "ham.mbox")
	if err := os.Symlink(target, path); err != nil { // root's link
		t.Fatal(err)
	}
	write := func(w *bufio.Writer) error {
		_, err := w.WriteString("From a@example.com Thu Jan  1 00:00:00 1970\nSubject: x\n\nhello\n")
		return err
	}
	if _, err := NewAppender(time.Second, nil).AppendMbox(context.Background(), path, write); err != nil {
		t.Fatal(err)
	}
	wantUnprivilegedOwner(t, target)
	var err error
	// The daemon, as that user, appends to it.
	asUnprivileged(t, func() { _, err = NewAppender(time.Second, nil).AppendMbox(context.Background(), path, write) })
	if err != nil {
		t.Errorf("the daemon's user appending after root: %v", err)
	}
	if n := len(readRecords(t, target)); n != 2 {
		t.Errorf("%d records, want 2", n)
	}
}

// What root writes into the daemon's archive goes to the directory's
// owner (see adoptDirOwner), maildir copies too: "sluice test --archive"
// run as root writes real copies into the daemon's maildir, and a file
// of root's there, mode 0640 and root's group, is one that the daemon's
// user (a nightly "sluice train" over the archive, a reader of the
// maildir) cannot read.
func TestRootDeliversMaildirCopiesForTheDirectorysOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(searchableTempDir(t), "archive")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, unprivilegedUID, unprivilegedUID); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dir, "spam")
	file, _, err := NewAppender(time.Second, nil).appendMaildir(context.Background(), md, writeTestMessage)
	if err != nil {
		t.Fatal(err)
	}
	wantUnprivilegedOwner(t, md, filepath.Join(md, "new"), file)
}

// wantUnprivilegedOwner checks that each of paths (not followed if a
// link) is owned by unprivilegedUID and its group, the owner of the
// directory root wrote them in.
func wantUnprivilegedOwner(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if uid, _ := fileOwner(fi); uid != unprivilegedUID || fi.Sys().(*syscall.Stat_t).Gid != unprivilegedUID {
			t.Errorf("%s: owned by %d:%d, want the directory's owner %d", p, uid, fi.Sys().(*syscall.Stat_t).Gid, unprivilegedUID)
		}
	}
}
