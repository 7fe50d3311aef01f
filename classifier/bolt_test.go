package classifier_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/storetest"
)

func openTestStore(t testing.TB, path string) *classifier.BoltStore {
	t.Helper()
	s, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBoltStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) classifier.Store {
		return openTestStore(t, filepath.Join(t.TempDir(), "db"))
	})
}

// Two stores on one file stand for the daemon and the CLI: each holds its
// own flocks, exactly as two processes would. The reader keeps its
// read-only handle open between lookups; the writer must still get in, and
// the reader must see the writes.
func TestBoltStoreSharedBetweenOpeners(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	daemon := openTestStore(t, path)
	defer daemon.Close()
	cli := openTestStore(t, path)
	defer cli.Close()

	for i := range 5 {
		// The daemon reads (and so holds its read-only handle open).
		if _, _, err := daemon.Lookup(ctx, []string{"tok"}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"tok"}, Date: 20240101}
		op.Digest[0] = byte(i)
		if _, err := cli.Learn(ctx, []classifier.LearnOp{op}); err != nil {
			t.Fatalf("learn while another opener reads: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("write waited %v for the reader to let go", d)
		}
		tot, c, err := daemon.Lookup(ctx, []string{"tok"})
		if err != nil {
			t.Fatal(err)
		}
		if tot.Spam != uint32(i+1) || c[0].Spam != uint32(i+1) {
			t.Errorf("round %d: reader sees totals %+v counts %+v, want %d", i, tot, c[0], i+1)
		}
	}
}

// A writer that cannot get the file within the lock timeout fails with
// ErrBusy instead of hanging.
func TestBoltStoreBusy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	holder := openTestStore(t, path)
	defer holder.Close()
	blocked, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true, LockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer blocked.Close()

	done := make(chan error, 1)
	if err := holder.Add(ctx, classifier.Batch{Records: []classifier.Record{{Token: "x", Counts: classifier.Counts{Spam: 1}}}}); err != nil {
		t.Fatal(err)
	}
	// Now a real conflict: the holder reads forever (until released), the
	// other store tries to write.
	release2 := make(chan struct{})
	started2 := make(chan struct{})
	go func() {
		done <- holder.Walk(ctx, func(classifier.Record) error {
			close(started2)
			<-release2
			return nil
		})
	}()
	<-started2
	_, err = blocked.Learn(ctx, []classifier.LearnOp{{Class: classifier.Ham, Tokens: []string{"y"}}})
	close(release2)
	if !errors.Is(err, classifier.ErrBusy) {
		t.Errorf("learn against a file held by a long read: %v, want ErrBusy", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
