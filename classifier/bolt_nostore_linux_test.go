package classifier_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// A path that names no store (a config file, a directory, a device, a
// bogofilter word list) is refused, and no lock file is left beside it:
// a mistaken --db used to leave PATH.lock there, /dev/null.lock among
// them.
func TestOpenBoltRefusesNoStore(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "sluice.yml")
	os.WriteFile(text, []byte("state_dir: /var/lib/sluice\n"), 0o600)
	tiny := filepath.Join(dir, "tiny.db")
	os.WriteFile(tiny, []byte("x"), 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{text, "not a sluice token store"},
		{tiny, "not a sluice token store"},
		{filepath.Join(dir, "sub"), "is a directory"},
		{fifo, "not a regular file"},
	} {
		if tc.want == "is a directory" {
			os.Mkdir(tc.path, 0o700)
		}
		st, err := classifier.OpenBolt(tc.path, classifier.BoltOptions{})
		if err == nil {
			st.Close()
			t.Errorf("%s: opened", filepath.Base(tc.path))
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", filepath.Base(tc.path), err, tc.want)
		}
		if _, err := os.Stat(tc.path + ".lock"); err == nil {
			t.Errorf("%s: a lock file was left", filepath.Base(tc.path))
		}
		// "sluice config check" says the same.
		if err := classifier.CheckBolt(tc.path, time.Second); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckBolt %s: %v, want %q", filepath.Base(tc.path), err, tc.want)
		}
	}
	// A store, an empty file and no file at all open.
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	for _, p := range []string{filepath.Join(dir, "new.db"), empty, filepath.Join(dir, "new.db")} {
		st, err := classifier.OpenBolt(p, classifier.BoltOptions{})
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		st.Close()
	}
}
