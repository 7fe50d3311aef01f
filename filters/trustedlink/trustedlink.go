// Package trustedlink opens files whose last path component may be a
// symbolic link made by someone else, following the link only if root or
// this process's user owns it, as Postfix's local(8) does with a mailbox.
//
// Whoever owns a link chose its target. sluice's state directory and
// archive belong to the daemon's user, and root runs "sluice train" and
// "sluice archive" over them and over users' mail folders: a link one of
// those users put there, followed by root, would have root read, create
// or write a file the user may not (/etc/shadow, /etc/nologin,
// /root/.ssh/authorized_keys).
package trustedlink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// checkedHook, if set, is called by Open once it has judged the symbolic
// link at path trusted and before it opens what the link names. Set only
// by tests, to replace the link in that instant.
var checkedHook func(path string)

// Check reports whether a symbolic link described by link (as os.Lstat
// returns it) may be followed by the rule of Open, and returns an
// *UntrustedError if not.
func Check(path string, link fs.FileInfo) error {
	uid, ok := Owner(link)
	if !ok {
		return fmt.Errorf("%s: the owner of the symbolic link is unknown: not followed", path)
	}
	return checkOwner(path, uid)
}

// checkOwner returns an *UntrustedError unless uid, the owner of the
// symbolic link at path, is trusted (see TrustedOwner).
func checkOwner(path string, uid uint32) error {
	if !TrustedOwner(uid) {
		return &UntrustedError{Path: path, UID: uid}
	}
	return nil
}

// UntrustedError is a symbolic link not followed because neither root
// nor this process's user owns it.
type UntrustedError struct {
	Path string
	UID  uint32
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("open %s: a symbolic link owned by uid %d, neither root nor this user: not followed", e.Path, e.UID)
}

// Owner returns the uid that owns fi's file.
func Owner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// TrustedOwner reports whether a file uid owns may steer what this
// process does: root's, or this process's user's.
func TrustedOwner(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid()
}

// WalkDirs checks the directories of dir below root: each component of
// dir after root, dir itself included, that is a symbolic link is
// followed only if root or this process's user owns it (see Check), and
// must lead to a directory. root itself, and the directories above it,
// are taken as given: the administrator named them. The archive's
// directories below root belong to the daemon's user, who could replace
// archive/example.com with a link to /etc, and root's "sluice archive
// move" would then create or append to a file there.
//
// A component that does not exist is passed to create, which makes it
// (the walk then judges what is at the name, as made by create or by
// someone else meanwhile); with create nil the walk stops there, since
// nothing below it exists to be opened either.
//
// dir must be root or lexically below it.
//
// The walk checks names; it does not open them. Whoever may write one of
// the directories can still put a link in place of a component after it
// was checked and before the caller opens the path through it. That
// needs the race to be won at the moment root runs a command, and the
// callers narrow it further by checking that the file they opened is
// still the one at the path; closing it for good would need every open
// below root to go through openat(2) with O_NOFOLLOW, one component at a
// time.
func WalkDirs(root, dir string, create func(dir string) error) error {
	root, dir = filepath.Clean(root), filepath.Clean(dir)
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%s is not below %s", dir, root)
	}
	if rel == "." {
		return nil
	}
	cur := root
	for _, name := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, name)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			if create == nil {
				return nil
			}
			if err := create(cur); err != nil {
				return err
			}
			fi, err = os.Lstat(cur)
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if err := Check(cur, fi); err != nil {
				return err
			}
			if fi, err = os.Stat(cur); err != nil {
				return err
			}
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: not a directory (%s)", cur, fi.Mode().Type())
		}
	}
	return nil
}
