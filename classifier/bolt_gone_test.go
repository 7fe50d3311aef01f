package classifier_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
