//go:build darwin || freebsd || netbsd

package archive

import (
	"syscall"
	"time"
)

// changeTime returns the inode change time of st. Darwin, FreeBSD and
// NetBSD name the field Ctimespec.
func changeTime(st *syscall.Stat_t) time.Time {
	return time.Unix(int64(st.Ctimespec.Sec), int64(st.Ctimespec.Nsec))
}
