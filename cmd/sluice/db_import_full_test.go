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
// it: a disk that fills up. It needs root; the test is skipped without,
// or fails under CI=true, where a test must never pass by skipping.
func tinyDisk(t *testing.T, size int) string {
	t.Helper()
	unavailable := t.Skipf
	if os.Getenv("CI") == "true" {
		unavailable = t.Fatalf
	}
	if os.Geteuid() != 0 {
		unavailable("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		unavailable("mount tmpfs: %v: %s", err, out)
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

// An import whose records all went in, but whose fit of the n-gram model
// afterwards failed (the disk filled up with the model, which is larger
// than a small store), says that the import is complete, prints its
// summary, and tells not to import again: the same export imported a
// second time adds its counts again, so a store would count every
// message twice. The exit status stays 1, for the fit that failed.
func TestDBImportRefitFailureSaysImportIsComplete(t *testing.T) {
	src := filepath.Join(t.TempDir(), "bayes.db")
	trainFixtures(t, src)
	export := filepath.Join(t.TempDir(), "bayes.txt")
	if r := runCLI(t, "", "db", "export", "--db", src, export); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	// Room for the store the import writes, not for the model besides.
	disk := tinyDisk(t, 2<<20)
	db := filepath.Join(disk, "bayes.db")
	r := runCLI(t, "", "db", "import", "--db", db, export)
	if r.code != 1 {
		t.Fatalf("import whose refit fails: %+v, want exit status 1", r)
	}
	if !strings.Contains(r.stderr, "no space left") {
		t.Fatalf("import did not fail for want of space in the refit: %+v", r)
	}
	if want := "imported 2144 tokens, 28 digests, 14 spam and 14 ham messages into " + db + "\n"; r.stdout != want {
		t.Errorf("standard output %q, want the import's summary %q", r.stdout, want)
	}
	for _, want := range []string{"the import is complete", "do not import " + export + " again", "sluice db refit --db " + db} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("standard error %q does not say %q", r.stderr, want)
		}
	}
	stats := runCLI(t, "", "db", "stats", "--db", db)
	if !strings.Contains(stats.stdout, "messages:  14 spam, 14 ham\n") {
		t.Errorf("stats after the import: %+v", stats)
	}
}
