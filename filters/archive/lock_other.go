//go:build !linux

package archive

import "os"

// recordLock is a no-op where open-file-description locks do not exist:
// flock and the dot-lock still apply.
func recordLock(*os.File, int16) error { return nil }
