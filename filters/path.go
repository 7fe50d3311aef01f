package filters

import (
	"fmt"
	"strings"
)

// CheckPath refuses a configured path that starts with ~. No shell
// expands it in a configuration file: "~/bayes.db" is a relative path,
// and sluice would make or read a directory named "~" where it ran, or
// under state_dir, leaving a new empty store, archive or seen file the
// administrator never looks at.
func CheckPath(path string) error {
	if strings.HasPrefix(path, "~") {
		return fmt.Errorf("%q: ~ is not expanded to a home directory; write the absolute path", path)
	}
	return nil
}
