package classifier_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// smallTmpfs mounts a tmpfs of size over a temporary directory. Under CI
// (run as root) failing to is a test failure; elsewhere the test is
// skipped.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v (run as root, or with CI=true to make this a failure)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// openInChild opens the store at path in a child process (this test
// binary again) and looks up two tokens: a store that crashes the process
// must show as a failed child, not take the test binary down.
func openInChild(t *testing.T, test, path string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_OPEN_STORE="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "RESULT: ") {
		t.Fatalf("opening %s crashed or failed: %v\n%.1500s", path, err, out)
	}
	return string(out)
}

// childOpen is the child's side of openInChild; it reports whether it
// ran.
func childOpen() bool {
	path := os.Getenv("SLUICE_TEST_OPEN_STORE")
	if path == "" {
		return false
	}
	st, err := classifier.Open(path)
	if err == nil {
		_, _, err = st.Lookup(context.Background(), []string{"tok0001-1-padding", "tok1999-3-padding"})
		st.Close()
	}
	fmt.Printf("RESULT: %v\n", err)
	// The damaged file restored in place (the same inode) opens in the
	// same process: the failed open left no lock on it.
	if good := os.Getenv("SLUICE_TEST_RESTORE_FROM"); good != "" && err != nil {
		b, rerr := os.ReadFile(good)
		if rerr == nil {
			rerr = os.WriteFile(path, b, 0o600)
		}
		if rerr == nil {
			if st, rerr = classifier.OpenBolt(path, classifier.BoltOptions{LockTimeout: 2 * time.Second}); rerr == nil {
				st.Close()
			}
		}
		fmt.Printf("RESTORED: %v\n", rerr)
	}
	return true
}

// A store file cut short (an interrupted copy, a full disk) is an error
// naming the file, not a SIGBUS or SIGSEGV that kills the process.
func TestTruncatedStoreIsAnError(t *testing.T) {
	if childOpen() {
		return
	}
	path := filepath.Join(t.TempDir(), "bayes.db")
	st := openTestStore(t, path)
	var ops []classifier.LearnOp
	for i := range 20 {
		op := classifier.LearnOp{Class: classifier.Spam, Date: 20240101}
		op.Digest[0] = byte(i)
		for j := range 2000 {
			op.Tokens = append(op.Tokens, fmt.Sprintf("tok%04d-%d-padding", j, i))
		}
		ops = append(ops, op)
	}
	if _, err := st.Learn(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	st.Close()
	good := filepath.Join(t.TempDir(), "good.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 4*4096); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TEST_RESTORE_FROM", good)
	out := openInChild(t, "TestTruncatedStoreIsAnError", path)
	if !strings.Contains(out, path) || strings.Contains(out, "RESULT: <nil>") {
		t.Errorf("want an error naming %s:\n%s", path, out)
	}
	if !strings.Contains(out, "RESTORED: <nil>") {
		t.Errorf("the store restored in place does not open again in the same process:\n%s", out)
	}
}

// A store whose creation failed on a full disk is not left half written:
// once there is room, it is created as if for the first time.
func TestStoreCreatedOnFullDisk(t *testing.T) {
	if childOpen() {
		return
	}
	dir := smallTmpfs(t, "256k")
	path := filepath.Join(dir, "bayes.db")
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	fi, _ := f.Stat()
	f.Close()
	// Room for two of the four pages bbolt writes when it creates a file.
	if err := os.Truncate(f.Name(), fi.Size()-8192); err != nil {
		t.Fatal(err)
	}
	if st, err := classifier.Open(path); err == nil {
		st.Close()
		t.Fatal("a store was created on a full disk")
	}
	os.Remove(f.Name())
	if out := openInChild(t, "TestStoreCreatedOnFullDisk", path); !strings.Contains(out, "RESULT: <nil>") {
		t.Errorf("open once there is room:\n%s", out)
	}
}
