//go:build !unix || aix

package milter

import "syscall"

// peerClosed reports false where a non-blocking peek is not to be had:
// a reply written after the MTA closed is then noticed only when the
// write fails.
func peerClosed(syscall.RawConn) bool { return false }
