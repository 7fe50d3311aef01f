package classifier_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// A prune of a large store lets other processes read between its
// transactions. In one transaction, a prune of a store of millions of
// tokens held the lock for longer than a reader waits (10 s): the daemon
// classified nothing meanwhile, and its messages failed as "store
// unavailable". A reader (another handle, as the daemon's is) looking up
// the first and the last token while the prune runs must see the store
// half pruned at least once: the first token gone, the last still there.
func TestBoltPruneLetsReadersIn(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bayes.db")
	writer := openTestStore(t, path)
	defer writer.Close()
	const n = 200_000
	token := func(i int) string { return fmt.Sprintf("tok%07d", i) }
	for start := 0; start < n; start += 20_000 {
		b := classifier.Batch{}
		if start == 0 {
			b.Totals = classifier.Totals{Spam: 10, Ham: 10}
		}
		for i := start; i < start+20_000; i++ {
			b.Records = append(b.Records, classifier.Record{Token: token(i), Counts: classifier.Counts{Spam: 1, LastSeen: 20200101}})
		}
		if err := writer.Add(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// A token the prune keeps: the store stays in use.
	if err := writer.Add(ctx, classifier.Batch{Records: []classifier.Record{{Token: "zz-kept", Counts: classifier.Counts{Spam: 9, LastSeen: 20240101}}}}); err != nil {
		t.Fatal(err)
	}
	reader := openTestStore(t, path)
	defer reader.Close()

	done := make(chan struct{})
	var halfway, reads atomic.Int64
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			_, c, err := reader.Lookup(ctx, []string{token(0), token(n - 1)})
			if err != nil {
				readerErr <- err
				return
			}
			reads.Add(1)
			if c[0].Spam == 0 && c[1].Spam == 1 {
				halfway.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	pruned, err := writer.Prune(ctx, classifier.PruneOptions{Before: 20230101, MaxCount: 1})
	close(done)
	if rerr := <-readerErr; rerr != nil {
		t.Errorf("reader during the prune: %v", rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if pruned != n {
		t.Errorf("pruned %d tokens, want %d", pruned, n)
	}
	if halfway.Load() == 0 {
		t.Errorf("no read of %d found the store half pruned: the prune kept readers out until it was done", reads.Load())
	}
	_, c, err := reader.Lookup(ctx, []string{token(0), token(n / 2), token(n - 1), "zz-kept"})
	if err != nil {
		t.Fatal(err)
	}
	if c[0].Spam != 0 || c[1].Spam != 0 || c[2].Spam != 0 || c[3].Spam != 9 {
		t.Errorf("after the prune: %+v, want the old tokens gone and zz-kept kept", c)
	}
}
