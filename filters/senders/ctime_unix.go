//go:build !darwin && !freebsd && !netbsd && !windows && !plan9

package senders

import "syscall"

// ctimeOf returns the inode change time of st in nanoseconds.
func ctimeOf(st *syscall.Stat_t) int64 { return st.Ctim.Nano() }
