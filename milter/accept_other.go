//go:build !linux

package milter

import "syscall"

// transientAcceptErrno reports no error beyond the portable ones where
// accept(2) has no others to retry.
func transientAcceptErrno(syscall.Errno) bool { return false }
