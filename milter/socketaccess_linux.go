package milter

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// oPath is Linux's O_PATH, the same on every architecture (the syscall
// package defines it for only some of them): a descriptor that names a
// file without opening it, which a socket file allows.
const oPath = 0x200000

// socketFileAccess gives the socket file just bound at path its group
// (gid, named group in errors, or -1 to keep it) and mode without
// following a symbolic link. chown(2) and chmod(2) on the path would
// follow one: whoever may write the socket's directory could swap the
// socket for a link between the bind and this call, and sluice, often
// root, would give the link's target (/etc/shadow) the socket's mode and
// group. So the file is opened with O_PATH and O_NOFOLLOW, checked to be
// a socket, and changed through its /proc/self/fd entry, which leads to
// that very inode (an O_PATH descriptor takes neither fchown nor fchmod).
func socketFileAccess(path string, gid int, group string, mode os.FileMode) error {
	// With O_PATH, O_NOFOLLOW opens a symbolic link itself rather than
	// fail: the file type below tells.
	fd, err := syscall.Open(path, oPath|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFSOCK:
	case syscall.S_IFLNK:
		return fmt.Errorf("%s was replaced by a symbolic link after it was bound; not following it", path)
	default:
		return fmt.Errorf("%s was replaced by something else than a socket after it was bound; not touching it", path)
	}
	name := "/proc/self/fd/" + strconv.Itoa(fd)
	if _, err := os.Lstat(name); err != nil {
		// No /proc (a minimal container): by the path, once it is seen
		// to be the file checked. Only a swap in the instant between
		// the two can then mislead it.
		return socketFileAccessByPath(path, &st, gid, group, mode)
	}
	if gid >= 0 {
		if err := os.Chown(name, -1, gid); err != nil {
			return fmt.Errorf("chgrp %s: %w", group, errors.Unwrap(err))
		}
	}
	if err := os.Chmod(name, mode); err != nil {
		return fmt.Errorf("chmod: %w", errors.Unwrap(err))
	}
	return nil
}

// socketFileAccessByPath is socketFileAccess without /proc: the group and
// mode are set by path after a check that the path still names the
// socket st describes.
func socketFileAccessByPath(path string, st *syscall.Stat_t, gid int, group string, mode os.FileMode) error {
	var now syscall.Stat_t
	if err := syscall.Lstat(path, &now); err != nil {
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if now.Dev != st.Dev || now.Ino != st.Ino {
		return fmt.Errorf("%s was replaced after it was bound; not touching it", path)
	}
	return chgrpChmodPath(path, gid, group, mode)
}
