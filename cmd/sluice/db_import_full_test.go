package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tinyDisk mounts a tmpfs of size bytes on a new directory and returns
// it: a disk that fills up. It needs root; the test is skipped without.
func tinyDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// An import whose input was accepted, but whose store, new, took none of
// it (a full disk), leaves no file behind: an empty store where there
// was none would be used by classify and the daemon, which would answer
// unsure for want of training instead of reporting that there is no
// store.
func TestDBImportFailedWriteCreatesNoStore(t *testing.T) {
	const n = 30000 // more than fits
	var export, bogo strings.Builder
	export.WriteString("sluice-classifier-export 2\ndialect sluice\ntotals 10 10\n")
	bogo.WriteString(".MSG_COUNT 10 10 20240101\n")
	for i := range n {
		fmt.Fprintf(&export, "t token%06d 1 0 20240101\n", i)
		fmt.Fprintf(&bogo, "token%06d 1 0 20240101\n", i)
	}
	fmt.Fprintf(&export, "end %d 0\n", n)
	for _, tc := range []struct {
		name, text string
		flags      []string
	}{
		{"export", export.String(), nil},
		{"bogoutil", bogo.String(), []string{"--bogoutil"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := tinyDisk(t, 64<<10)
			in := filepath.Join(t.TempDir(), "in.txt")
			if err := os.WriteFile(in, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(disk, "bayes.db")
			r := runCLI(t, "", append(append([]string{"db", "import", "--db", db}, tc.flags...), in)...)
			if r.code == 0 || !strings.Contains(r.stderr, "no space left") {
				t.Fatalf("import onto a full disk: %+v, want it to fail for want of space", r)
			}
			if names, _ := os.ReadDir(disk); len(names) != 0 {
				var left []string
				for _, e := range names {
					left = append(left, e.Name())
				}
				t.Errorf("the failed import left %v", left)
			}
			r = runCLI(t, "Subject: hi\n\nhello\n", "classify", "--db", db)
			if r.code == 0 || !strings.Contains(r.stderr, "no token store at "+db) {
				t.Errorf("classify after the failed import: %+v", r)
			}
		})
	}
}

// A disk too full for even the new store's first pages: the import fails
// opening the store, and leaves no file either, the lock file included.
func TestDBImportFullDiskAtOpenCreatesNothing(t *testing.T) {
	disk := tinyDisk(t, 8<<10)
	export := filepath.Join(t.TempDir(), "export.txt")
	if err := os.WriteFile(export, []byte("sluice-classifier-export 2\ndialect sluice\ntotals 1 0\nt a 1 0 20240101\nend 1 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(disk, "bayes.db")
	r := runCLI(t, "", "db", "import", "--db", db, export)
	if r.code == 0 {
		t.Fatalf("import onto a full disk: %+v, want it to fail", r)
	}
	if names, _ := os.ReadDir(disk); len(names) != 0 {
		var left []string
		for _, e := range names {
			left = append(left, e.Name())
		}
		t.Errorf("the failed import left %v (%s)", left, r.stderr)
	}
}
