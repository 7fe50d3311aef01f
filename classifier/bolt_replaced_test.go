package classifier_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// A store file removed while a daemon has it open (an administrator
// starting over with rm, a cleanup of the state directory) is made again
// by the daemon's next write, an auto-learned message, as a store with
// its buckets, the way the daemon makes one at start: not as a bare
// bbolt file, which every later read and write of the daemon took for a
// damaged store until a restart, failing the filter for every message.
func TestBoltStoreFileRemovedUnderWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bayes.db")
	daemon := openTestStore(t, path)
	defer daemon.Close()
	op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"old"}}
	if _, err := daemon.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := daemon.Lookup(ctx, []string{"old"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	op = classifier.LearnOp{Class: classifier.Ham, Tokens: []string{"new"}}
	op.Digest[0] = 1
	if _, err := daemon.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatalf("learn after the file was removed: %v", err)
	}
	tot, c, err := daemon.Lookup(ctx, []string{"old", "new"})
	if err != nil {
		t.Fatalf("lookup after the file was made again: %v", err)
	}
	if tot.Spam != 0 || tot.Ham != 1 || c[0].Spam != 0 || c[1].Ham != 1 {
		t.Errorf("the new file holds totals %+v, counts %+v; want only the message learned since", tot, c)
	}
	if v, err := daemon.Meta(ctx, classifier.MetaDialect); err != nil {
		t.Errorf("meta of the new file: %q, %v", v, err)
	}

	// Another process (sluice train, classify) finds a whole store.
	other := openTestStore(t, path)
	defer other.Close()
	if _, c, err := other.Lookup(ctx, []string{"new"}); err != nil || c[0].Ham != 1 {
		t.Errorf("another opener of the new file: %+v, %v", c, err)
	}
}

// A store copied over the daemon's in place (cp backup.db bayes.db, which
// rewrites the file rather than replacing it) may be larger than the
// file the daemon's read handle mapped: reading it through that handle
// faults, and is reported as a damaged store. The handle is let go then,
// so that the next read maps the file as it is now, rather than every
// read failing until a writer or a restart makes the daemon reopen it.
func TestBoltStoreCopiedOverInPlace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "bayes.db")
	daemon := openTestStore(t, path)
	defer daemon.Close()
	if _, _, err := daemon.Lookup(ctx, []string{"new"}); err != nil {
		t.Fatal(err)
	}

	backup := filepath.Join(dir, "backup.db")
	other := openTestStore(t, backup)
	var ops []classifier.LearnOp
	for i := range 3000 {
		// Long tokens, so that the file outgrows the daemon's mapping.
		op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"new", fmt.Sprintf("tok%d-%0200d", i, i)}}
		op.Digest[0], op.Digest[1] = byte(i), byte(i>>8)
		ops = append(ops, op)
	}
	if _, err := other.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o660); err != nil {
		t.Fatal(err)
	}

	var errs []error
	for range 3 {
		tot, c, err := daemon.Lookup(ctx, []string{"new"})
		if err != nil {
			if !errors.Is(err, classifier.ErrDamaged) {
				t.Fatalf("lookup of the file copied over: %v", err)
			}
			errs = append(errs, err)
			continue
		}
		if tot.Spam != 3000 || c[0].Spam != 3000 {
			t.Errorf("lookup of the file copied over: totals %+v, counts %+v; want 3000 spam", tot, c)
		}
		break
	}
	if len(errs) > 1 {
		t.Errorf("%d lookups failed after the file was copied over; want the handle let go after the first: %v", len(errs), errs)
	}
}

// A store moved over the daemon's (mv new.db bayes.db, after an import
// into a new file) is what the daemon reads from then on: its read
// handle on the file that was at the path is let go, as when a writer
// comes. It read the old file until a restart otherwise.
func TestBoltStoreMovedOver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "bayes.db")
	daemon := openTestStore(t, path)
	defer daemon.Close()
	if _, _, err := daemon.Lookup(ctx, []string{"new"}); err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(dir, "new.db")
	other := openTestStore(t, next)
	if _, err := other.Learn(ctx, []classifier.LearnOp{{Class: classifier.Spam, Tokens: []string{"new"}}}); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, path); err != nil {
		t.Fatal(err)
	}
	// The daemon looks every poll interval (50 ms); this waits for it,
	// however long a busy machine takes, up to a bound.
	for i := 0; ; i++ {
		_, c, err := daemon.Lookup(ctx, []string{"new"})
		if err != nil {
			t.Fatal(err)
		}
		if c[0].Spam == 1 {
			break
		}
		if i == 200 {
			t.Fatalf("the daemon still reads the file moved away: counts %+v", c)
		}
		time.Sleep(25 * time.Millisecond)
	}
	// The file removed, the one moved away is read on.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, c, err := daemon.Lookup(ctx, []string{"new"}); err != nil || c[0].Spam != 1 {
		t.Errorf("after the file was removed: counts %+v, %v; want the open file read on", c, err)
	}
}

// warnings records what a store logs.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) Warn(msg string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, fmt.Sprint(append([]any{msg}, args...)...))
}

func (w *warnings) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// A store file removed while a daemon has it open is made again, empty,
// by the daemon's next read or write; from then on every message is
// unsure for want of training. That must not pass without a word in the
// log: an administrator whose store a cleanup removed by mistake would
// otherwise see only the verdicts drift to unsure.
func TestBoltStoreFileRemovedIsLogged(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		use  func(*classifier.BoltStore) error
	}{
		{"read", func(s *classifier.BoltStore) error {
			_, _, err := s.Lookup(ctx, []string{"old"})
			return err
		}},
		{"write", func(s *classifier.BoltStore) error {
			op := classifier.LearnOp{Class: classifier.Ham, Tokens: []string{"new"}}
			op.Digest[0] = 2
			_, err := s.Learn(ctx, []classifier.LearnOp{op})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bayes.db")
			w := &warnings{}
			s, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true, LockTimeout: 5 * time.Second, Logger: w})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// A write lets go of the read handle, as auto-learning does.
			op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"old"}}
			if _, err := s.Learn(ctx, []classifier.LearnOp{op}); err != nil {
				t.Fatal(err)
			}
			if got := w.all(); got != "" {
				t.Fatalf("warnings before the removal: %s", got)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := tc.use(s); err != nil {
				t.Fatalf("%s after the removal: %v", tc.name, err)
			}
			if got := w.all(); !strings.Contains(got, "store file was removed") || !strings.Contains(got, path) {
				t.Errorf("warnings %q; want one saying the store file was removed and made again, naming it", got)
			}
		})
	}
}
