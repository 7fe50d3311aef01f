package classifier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/storetest"
	bolt "go.etcd.io/bbolt"
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

// The store contract again, with the in-memory index built from the first
// lookup on, so that every read goes through it and every Learn patches it.
func TestBoltStoreContractIndexed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) classifier.Store {
		s, err := classifier.OpenBolt(filepath.Join(t.TempDir(), "db"),
			classifier.BoltOptions{NoSync: true, LockTimeout: 5 * time.Second, IndexAfter: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// indexedStores opens the same file three times: one reads through an index
// built at once, one never indexes (the reference), one is another
// process's writer.
func indexedStores(t *testing.T, indexTokens int) (indexed, plain, other *classifier.BoltStore) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	open := func(o classifier.BoltOptions) *classifier.BoltStore {
		o.NoSync, o.LockTimeout = true, 5*time.Second
		s, err := classifier.OpenBolt(path, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(classifier.BoltOptions{IndexAfter: 1, IndexTokens: indexTokens}),
		open(classifier.BoltOptions{IndexTokens: -1}),
		open(classifier.BoltOptions{IndexTokens: -1})
}

// sameLookup checks that two stores return the same totals and counts.
func sameLookup(t *testing.T, step string, a, b classifier.Store, toks []string) {
	t.Helper()
	ctx := context.Background()
	ta, ca, err := a.Lookup(ctx, toks)
	if err != nil {
		t.Fatal(err)
	}
	tb, cb, err := b.Lookup(ctx, toks)
	if err != nil {
		t.Fatal(err)
	}
	if ta != tb {
		t.Errorf("%s: totals %+v, want %+v", step, ta, tb)
	}
	for i := range toks {
		if ca[i] != cb[i] {
			t.Errorf("%s: token %q: counts %+v, want %+v", step, toks[i], ca[i], cb[i])
		}
	}
}

// The index follows every kind of change: this process's learning (which
// patches it, including tokens deleted by unlearning), another process's
// learning, import and pruning (which make it stale, so it is rebuilt).
func TestBoltStoreIndexFollowsWrites(t *testing.T) {
	ctx := context.Background()
	indexed, plain, other := indexedStores(t, 0)
	var toks []string
	for i := range 300 {
		toks = append(toks, fmt.Sprintf("tok%03d", i))
	}
	op := func(n int, c classifier.Class, unlearn bool, tokens []string) classifier.LearnOp {
		o := classifier.LearnOp{Class: c, Unlearn: unlearn, Tokens: tokens, Date: classifier.Date(20240100 + n%28 + 1)}
		o.Digest[0], o.Digest[1] = byte(n), byte(n>>8)
		return o
	}
	learn := func(s *classifier.BoltStore, ops ...classifier.LearnOp) {
		t.Helper()
		if _, err := s.Learn(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	sameLookup(t, "empty store", indexed, plain, toks)
	learn(other, op(1, classifier.Spam, false, toks[:200]), op(2, classifier.Ham, false, toks[100:]))
	sameLookup(t, "after another process learned", indexed, plain, toks)
	learn(indexed, op(3, classifier.Spam, false, toks[50:150]))
	sameLookup(t, "after this process learned", indexed, plain, toks)
	learn(indexed, op(3, classifier.Ham, false, toks[50:150])) // moved
	learn(indexed, op(1, classifier.Spam, true, toks[:200]))   // unlearned: tok000..tok049 vanish
	sameLookup(t, "after this process moved and unlearned", indexed, plain, toks)
	if _, c, _ := indexed.Lookup(ctx, toks[:1]); c[0] != (classifier.Counts{}) {
		t.Errorf("unlearned token: %+v, want zero counts", c[0])
	}
	learn(indexed, op(4, classifier.Spam, false, append([]string{"brand-new"}, toks[:10]...)))
	sameLookup(t, "after this process added tokens", indexed, plain, append([]string{"brand-new"}, toks...))
	err := other.Add(ctx, classifier.Batch{Totals: classifier.Totals{Spam: 5}, Records: []classifier.Record{
		{Token: "imported", Counts: classifier.Counts{Spam: 5, LastSeen: 20240301}},
		{Token: "tok299", Counts: classifier.Counts{Ham: 7}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sameLookup(t, "after an import", indexed, plain, append([]string{"imported"}, toks...))
	if _, err := indexed.Prune(ctx, classifier.PruneOptions{MaxCount: 1}); err != nil {
		t.Fatal(err)
	}
	sameLookup(t, "after pruning", indexed, plain, append([]string{"imported", "brand-new"}, toks...))
	learn(indexed, op(5, classifier.Ham, false, toks))
	sameLookup(t, "after learning once more", indexed, plain, toks)
}

// A store larger than IndexTokens is read from the file, and gives the same
// answers.
func TestBoltStoreIndexCap(t *testing.T) {
	ctx := context.Background()
	indexed, plain, _ := indexedStores(t, 50)
	var toks []string
	for i := range 120 {
		toks = append(toks, fmt.Sprintf("w%d", i))
	}
	op := classifier.LearnOp{Class: classifier.Spam, Tokens: toks, Date: 20240101}
	if _, err := plain.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	sameLookup(t, "store over the cap", indexed, plain, append(toks, "unknown"))
	sameLookup(t, "store over the cap, again", indexed, plain, append(toks, "unknown"))
}

// A lock file removed while a daemon has the store open (a cleanup of the
// state directory) does not lock writers out until a restart: the daemon
// notices, takes the new lock file at the path, and lets a writer waiting
// on it in.
func TestBoltStoreLockFileRemoved(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bayes.db")
	opts := classifier.BoltOptions{LockTimeout: 2 * time.Second}
	daemon, err := classifier.OpenBolt(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer daemon.Close()
	if _, _, err := daemon.Lookup(ctx, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + ".lock"); err != nil {
		t.Fatal(err)
	}
	cli, err := classifier.OpenBolt(path, opts)
	if err != nil {
		t.Fatalf("open after the lock file was removed: %v", err)
	}
	defer cli.Close()
	if _, err := cli.Learn(ctx, []classifier.LearnOp{{Class: classifier.Spam, Tokens: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	if _, c, err := daemon.Lookup(ctx, []string{"x"}); err != nil || c[0].Spam != 1 {
		t.Errorf("the daemon after the write: %+v, %v", c, err)
	}
}

// TestOpenExistingStoreWritesNothing checks that opening a store that
// exists, and classifying with it, writes nothing to the file: every
// "sluice classify" run from a procmail recipe opens the store, and a
// write at open rewrote the meta bucket (the n-gram model's megabytes
// among it) and synced it each time.
func TestOpenExistingStoreWritesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s := openTestStore(t, path)
	c := classifier.New(s, classifier.Params{MinSpam: -1, MinHam: -1})
	raw := []byte("From: a@example.com\r\nSubject: cheap pills\r\n\r\nbuy cheap pills now\r\n")
	op, err := c.Prepare(bytes.NewReader(raw), classifier.Spam, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileTxID(t, path)

	s = openTestStore(t, path)
	c = classifier.New(s, classifier.Params{MinSpam: -1, MinHam: -1})
	if _, err := c.ClassifyBytes(ctx, raw, false); err != nil {
		t.Fatal(err)
	}
	tot, _, err := s.Lookup(ctx, c.Tokenizer().TokenizeBytes(raw).Tokens)
	if err != nil {
		t.Fatal(err)
	}
	if tot.Spam != 1 {
		t.Fatalf("store read %d spam, want 1", tot.Spam)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := fileTxID(t, path); after != before {
		t.Errorf("opening and classifying committed transactions %d to %d, want none", before, after)
	}

	// A file that is not there yet is still created.
	fresh := filepath.Join(t.TempDir(), "new.db")
	s = openTestStore(t, fresh)
	s.Close()
	if id := fileTxID(t, fresh); id == 0 {
		t.Errorf("a new store has no committed transaction")
	}
}

// fileTxID returns the ID of the last committed transaction of the bbolt
// file at path.
func fileTxID(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int
	err = db.View(func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// CheckBolt passes what OpenBolt opens and fails what it refuses, reading
// the file only. A store a writer holds passes once the timeout is up: it
// is a store in use, and a check must not wait on it for long. A store
// cut short fails with an error, not a crash.
func TestCheckBolt(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "bayes.db")
	openTestStore(t, store).Close()
	os.Remove(store + ".lock")
	raw, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.db")
	os.WriteFile(short, raw[:len(raw)/3], 0o600)
	text := filepath.Join(dir, "wordlist.txt")
	os.WriteFile(text, []byte("casino 12 0 20240101\n"), 0o600)
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	// A store of another format version (a newer sluice's, after a
	// downgrade), which OpenBolt refuses.
	other := filepath.Join(dir, "other.db")
	os.WriteFile(other, raw, 0o600)
	if db, err := bolt.Open(other, 0o600, nil); err != nil {
		t.Fatal(err)
	} else {
		db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte("99")) })
		db.Close()
	}
	if _, err := classifier.OpenBolt(other, classifier.BoltOptions{}); err == nil {
		t.Fatal("OpenBolt opened a store of format version 99")
	}
	os.Remove(other + ".lock")
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{store, true}, {empty, true}, {filepath.Join(dir, "missing.db"), true},
		{text, false}, {short, false}, {other, false},
	} {
		err := classifier.CheckBolt(tc.path, time.Second)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %t", filepath.Base(tc.path), err, tc.ok)
		}
	}
	for _, p := range []string{store, empty} {
		if _, err := os.Stat(p + ".lock"); err == nil {
			t.Errorf("a lock file was made for %s", filepath.Base(p))
		}
	}

	db, err := bolt.Open(store, 0o600, nil) // a writer, holding the file
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	if err := classifier.CheckBolt(store, 100*time.Millisecond); err != nil {
		t.Errorf("a store a writer holds: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the check waited %s for the writer", d)
	}
}
