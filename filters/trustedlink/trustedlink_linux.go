package trustedlink

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

// oPath is Linux's O_PATH, the same on every architecture (the syscall
// package defines it for only some of them): a descriptor that names a
// file without opening it, which is how a symbolic link itself is held.
const oPath = 0x200000

// atFDCWD is Linux's AT_FDCWD: openat(2) takes a relative name from the
// working directory, as open(2) does.
const atFDCWD = -100

// Open is os.OpenFile, except that a symbolic link at path (its last
// component) is followed only if root or this process's user owns it.
// Links further up the path are followed; WalkDirs judges those below a
// directory given as trusted.
//
// The link is held open (O_PATH) while it is judged, and the file opened
// is the one its target names, read from that same descriptor: judging
// the link by its name and then opening the name would let whoever may
// write its directory put its own link there in between, and root would
// create or open the file that link names. A relative target is taken
// from the directory the link was found in. The target is then opened as
// any path is, a link at its end included: the link's owner, root or
// this user, chose it.
func Open(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if !errors.Is(err, syscall.ELOOP) {
		return f, err
	}
	dir, err := openRetry(atFDCWD, filepath.Dir(path), oPath|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	defer syscall.Close(dir)
	link, err := openRetry(dir, filepath.Base(path), oPath|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(link)
	var st syscall.Stat_t
	if err := syscall.Fstat(link, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return nil, fmt.Errorf("open %s: %w", path, syscall.ELOOP)
	}
	if err := checkOwner(path, st.Uid); err != nil {
		return nil, err
	}
	target, err := readLinkFd(link)
	if err != nil {
		return nil, &fs.PathError{Op: "readlink", Path: path, Err: err}
	}
	if checkedHook != nil {
		checkedHook(path)
	}
	fd, err := openRetry(dir, target, flag|syscall.O_CLOEXEC|syscall.O_LARGEFILE, uint32(perm.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openRetry is openat(2), tried again when a signal interrupts it (as
// os.OpenFile does, for a FIFO, say).
func openRetry(dir int, name string, flag int, perm uint32) (int, error) {
	for {
		fd, err := syscall.Openat(dir, name, flag, perm)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

// readLinkFd returns the target of the symbolic link fd holds (opened
// with O_PATH|O_NOFOLLOW): readlinkat(2) with an empty name reads the
// link fd refers to, not one found by name.
func readLinkFd(fd int) (string, error) {
	empty, err := syscall.BytePtrFromString("")
	if err != nil {
		return "", err
	}
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, _, errno := syscall.Syscall6(syscall.SYS_READLINKAT, uintptr(fd),
			uintptr(unsafe.Pointer(empty)), uintptr(unsafe.Pointer(&buf[0])), uintptr(size), 0, 0)
		if errno != 0 {
			return "", errno
		}
		// A target that fills the buffer may have been cut short.
		if int(n) < size {
			return string(buf[:n]), nil
		}
	}
}
