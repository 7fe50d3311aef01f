package classifier_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// A store opened read-only stands for "sluice classify" run by a user who
// may read the store but not write it or its directory, beside a writer
// (the daemon, train). With the lock file or without one (none, or one
// it may not read), the reader creates nothing, its writes fail with
// ErrReadOnly, the writer gets in between its reads without waiting for
// it to end, and its reads see the writes.
func TestBoltStoreReadOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		lock bool
	}{
		{"lock file", true},
		{"no lock file", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "db")
			w := openTestStore(t, path)
			learn := func(i byte) {
				t.Helper()
				op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"tok"}, Date: 20240101}
				op.Digest[0] = i
				start := time.Now()
				if _, err := w.Learn(ctx, []classifier.LearnOp{op}); err != nil {
					t.Fatalf("learn beside a read-only opener: %v", err)
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("write waited %v for the read-only opener", d)
				}
			}
			learn(0)
			if !tc.lock {
				// The writer closes, its lock file goes (a store copied
				// without it), and the reader opens without one.
				w.Close()
				if err := os.Remove(path + ".lock"); err != nil {
					t.Fatal(err)
				}
			}
			r, err := classifier.OpenBolt(path, classifier.BoltOptions{ReadOnly: true, LockTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if !tc.lock {
				if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the read-only open made a lock file: %v", err)
				}
				// The writer comes back (and makes the lock file again).
				w = openTestStore(t, path)
			}
			defer w.Close()
			for i := range byte(3) {
				tot, _, err := r.Lookup(ctx, []string{"tok"})
				if err != nil {
					t.Fatal(err)
				}
				if tot.Spam != uint32(i)+1 {
					t.Fatalf("read-only opener sees %d spam, want %d", tot.Spam, i+1)
				}
				learn(i + 1)
			}
			op := classifier.LearnOp{Class: classifier.Ham, Tokens: []string{"x"}, Date: 20240101}
			if _, err := r.Learn(ctx, []classifier.LearnOp{op}); !errors.Is(err, classifier.ErrReadOnly) {
				t.Errorf("learn through the read-only opener: %v, want ErrReadOnly", err)
			}
		})
	}
}

// A read-only open creates no store: where there is none, or only an
// empty file, it fails and leaves the path as it was.
func TestBoltStoreReadOnlyCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := classifier.OpenBolt(missing, classifier.BoltOptions{ReadOnly: true}); err == nil {
		t.Error("read-only open of a missing store worked")
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := classifier.OpenBolt(empty, classifier.BoltOptions{ReadOnly: true}); err == nil {
		t.Error("read-only open of an empty file worked")
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 {
		t.Errorf("%d files after the read-only opens, want only the empty one", len(names))
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Errorf("the empty file after a read-only open: %v, %v", fi, err)
	}
}

// A FIFO where the lock file should be (left by a mistaken mkfifo, or a
// test of something else) is no lock file: a read-only open reads the
// store without one, rather than wait for ever for a writer to open the
// FIFO, as opening it for reading would.
func TestBoltStoreReadOnlyLockFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	st, err := classifier.OpenBolt(path, classifier.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + ".lock"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path+".lock", 0o600); err != nil {
		t.Fatal(err)
	}
	type opened struct {
		st  *classifier.BoltStore
		err error
	}
	done := make(chan opened, 1)
	go func() {
		st, err := classifier.OpenBolt(path, classifier.BoltOptions{ReadOnly: true})
		done <- opened{st, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("read-only open beside a FIFO lock: %v", o.err)
		}
		if _, err := o.st.Stats(context.Background()); err != nil {
			t.Errorf("stats: %v", err)
		}
		o.st.Close()
	case <-time.After(30 * time.Second):
		// Unblock the open so that the test ends: a writer on the FIFO.
		if f, err := os.OpenFile(path+".lock", os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("read-only open of a store whose lock file is a FIFO hangs")
	}
}
