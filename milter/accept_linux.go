package milter

import "syscall"

// transientAcceptErrno reports the errors of accept(2) beyond the
// portable ones that Linux alone has: ENONET (machine not on the
// network), which its man page lists with the network errors to be
// retried.
func transientAcceptErrno(errno syscall.Errno) bool {
	return errno == syscall.ENONET
}
