package classifier_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// sluice train over a large mailbox writes one batch after another, each
// its own transaction, for as long as the training takes. The daemon's
// reads must get in between two of them: a read that had to wait for the
// whole run would wait past its lock timeout and fail the message. The
// writer here writes back to back for 3 s; the reader, opened as the
// daemon opens its store, looks up a token every 20 ms and must never
// fail for want of the lock.
func TestBoltReaderGetsInBetweenWriterBatches(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	writer, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true, LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	// The daemon's wait, shortened: every write transaction below takes
	// a few tens of milliseconds, a small part of it.
	const readerWait = time.Second
	reader, err := classifier.OpenBolt(path, classifier.BoltOptions{LockTimeout: readerWait})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, _, err := reader.Lookup(ctx, []string{"tok0"}); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes int
	var werr error
	// The batches are made before: sluice train prepares the next batch
	// while one is written, so it asks for the lock again at once.
	batches := make([][]classifier.Record, 10)
	for i := range batches {
		for j := range 5000 {
			batches[i] = append(batches[i], classifier.Record{Token: fmt.Sprintf("tok%d", i*5000+j), Counts: classifier.Counts{Spam: 1, LastSeen: 20240101}})
		}
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := writer.Add(ctx, classifier.Batch{Records: batches[i%len(batches)], Totals: classifier.Totals{Spam: 1}}); err != nil {
				werr = err
				return
			}
			writes++
		}
	})
	var reads, busy int
	var slowest time.Duration
	var rerr error
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		start := time.Now()
		_, _, err := reader.Lookup(ctx, []string{"tok1"})
		slowest = max(slowest, time.Since(start))
		switch {
		case errors.Is(err, classifier.ErrBusy):
			busy++
		case err != nil:
			rerr = err
		default:
			reads++
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	t.Logf("%d write transactions, %d reads, %d failed for the lock, slowest read %v", writes, reads, busy, slowest)
	if writes < 5 {
		t.Fatalf("only %d write transactions in 3 s: the test did not write back to back", writes)
	}
	if busy > 0 {
		t.Errorf("%d of %d reads failed after waiting %v for the lock while the writer wrote batch after batch", busy, busy+reads, readerWait)
	}
}
