//go:build darwin || freebsd || netbsd

package senders

import "syscall"

// ctimeOf returns the inode change time of st in nanoseconds. Darwin,
// FreeBSD and NetBSD name the field Ctimespec.
func ctimeOf(st *syscall.Stat_t) int64 { return st.Ctimespec.Nano() }
