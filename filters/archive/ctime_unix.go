//go:build !darwin && !freebsd && !netbsd && !windows && !plan9

package archive

import (
	"syscall"
	"time"
)

// changeTime returns the inode change time of st.
func changeTime(st *syscall.Stat_t) time.Time {
	return time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec))
}
