package archive

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// A writer that takes only the dot-lock (a script with dotlockfile(1) and
// cat, Dovecot with mbox_write_locks = dotlock) is shut out by sluice's
// dot-lock alone, not by its kernel locks. If it appends and lets go of
// its lock while sluice is taking the dot-lock, the length sluice records
// as "before the append" must still include that record: sluice cuts the
// mbox back to it when its own append fails (or after it dies), and must
// not take the other writer's record with it.
//
// The child appender runs under strace(1), which holds up its first
// link(2), the one that takes the dot-lock, for a second: the other
// writer locks, appends and unlocks meanwhile. strace then fails the child's
// first fsync with EIO, so that the child cuts its record back.
func TestDotLockOnlyWriterNotCutBack(t *testing.T) {
	strace := needTool(t, "strace", "strace", "to delay a system call of the child")
	dir := t.TempDir()
	path := filepath.Join(dir, "spam.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	if _, err := f.Check(context.Background(), filters.StageEOM, testMessage("A", "first\r\n")); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(strace, "-f", "-qq", "-o", "/dev/null",
		"-e", "trace=linkat,fsync",
		"-e", "inject=linkat:delay_enter=1000000:when=1",
		"-e", "inject=fsync:error=EIO:when=1",
		os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), appenderEnv+"="+path+"|child|1")
	var stderr bytes.Buffer
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		needCapability(t, "running a process under strace", err)
	}
	// The child's lock in the making appears just before its link(2).
	deadline := time.Now().Add(10 * time.Second)
	for !hasLockTemp(t, dir) {
		if time.Now().After(deadline) {
			child.Process.Kill()
			child.Wait()
			t.Fatalf("the child never wrote its dot-lock: %s", stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	// Now, while the child's link waits, the other writer takes the
	// dot-lock, as dotlockfile makes it, appends and unlocks.
	lock, err := os.OpenFile(path+lockSuffix, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatalf("the dot-lock was not free for the other writer: %v", err)
	}
	lock.WriteString("4242\n")
	lock.Close()
	foreign := "From carol@example.org Thu Jan  1 00:00:00 1970\nSubject: delivered by a dot-lock-only writer\n\nkeep me\n\n"
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(foreign); err != nil {
		t.Fatal(err)
	}
	w.Close()
	os.Remove(path + lockSuffix)

	if err := child.Wait(); err == nil {
		t.Fatalf("the child's append succeeded although its fsync failed")
	}
	if !strings.Contains(stderr.String(), "input/output error") {
		t.Fatalf("the child failed otherwise than by the injected EIO: %s", stderr.String())
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(before) + foreign; string(after) != want {
		t.Errorf("after the child's failed append the mbox is\n%q\nwant (the other writer's record kept)\n%q", after, want)
	}
}

func hasLockTemp(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".spam.mbox.lock-") {
			return true
		}
	}
	return false
}
