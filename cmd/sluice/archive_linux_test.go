package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// A reader that may read an archive but not take its locks (a group with
// read access) still gets its records from archive show, with a warning
// that they were read without the locks. Run as root, the command runs
// with the file-system uid of nobody (setfsuid(2), this thread only).
func TestArchiveShowWithoutWriteAccess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(dir, "spam.mbox")
	rec := "From a Thu Jan  1 00:00:00 1970\nX-Sluice-Queue-ID: A\n\nwhole\n\n"
	if err := os.WriteFile(src, []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	const nobody = 65534
	prev, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, nobody, 0, 0)
	r := runCLI(t, "", "archive", "show", "--queue-id", "A", src)
	syscall.RawSyscall(syscall.SYS_SETFSUID, prev, 0, 0)
	runtime.UnlockOSThread()
	if r.code != 0 || r.stdout != rec || !strings.Contains(r.stderr, "without its locks") {
		t.Errorf("show as a reader without write access: %+v", r)
	}
	if _, err := os.Stat(src + ".lock"); err == nil {
		t.Error("a dot-lock was left behind")
	}
}
