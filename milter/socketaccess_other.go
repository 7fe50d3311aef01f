//go:build !linux

package milter

import (
	"fmt"
	"io/fs"
	"os"
)

// socketFileAccess gives the socket file just bound at path its group
// (gid, named group in errors, or -1 to keep it) and mode, once it is
// seen to be a socket and no symbolic link (see the Linux version, which
// closes the instant between the check and the change).
func socketFileAccess(path string, gid int, group string, mode os.FileMode) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s was replaced by a symbolic link after it was bound; not following it", path)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s was replaced by something else than a socket after it was bound; not touching it", path)
	}
	return chgrpChmodPath(path, gid, group, mode)
}
