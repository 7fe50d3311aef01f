package archive

import (
	"os"
	"syscall"
)

// fOFDSetlk is F_OFD_SETLK (Linux 3.15): a POSIX record lock owned by the
// open file description rather than the process. It conflicts with the
// classic fcntl locks of other programs, but unlike them is not dropped
// when some other descriptor of the same file is closed in this process.
const fOFDSetlk = 37

// recordLock takes a record lock of type typ (F_WRLCK or F_RDLCK) on the
// whole file without waiting.
func recordLock(f *os.File, typ int16) error {
	lk := syscall.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	return syscall.FcntlFlock(f.Fd(), fOFDSetlk, &lk)
}
