//go:build !linux

package trustedlink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Open is os.OpenFile, except that a symbolic link at path (its last
// component) is followed only if root or this process's user owns it.
// Links further up the path are followed; WalkDirs judges those below a
// directory given as trusted.
//
// Without Linux's O_PATH the link is judged by its name, and followed by
// its name again: whoever may write its directory can put another link
// there in between. That link is caught once the file is open (it has
// another inode), but a file O_CREATE made through it stays made. The
// Linux version opens what the judged link itself names.
func Open(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if !errors.Is(err, syscall.ELOOP) {
		return f, err
	}
	link, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if link.Mode()&fs.ModeSymlink == 0 {
		return nil, fmt.Errorf("open %s: %w", path, syscall.ELOOP)
	}
	if err := Check(path, link); err != nil {
		return nil, err
	}
	if checkedHook != nil {
		checkedHook(path)
	}
	f, err = os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	// The link checked must be the one followed: one put in its place
	// meanwhile is another link, with another inode.
	if again, err := os.Lstat(path); err != nil || !os.SameFile(link, again) {
		f.Close()
		return nil, fmt.Errorf("open %s: the symbolic link was replaced while it was followed", path)
	}
	return f, nil
}
