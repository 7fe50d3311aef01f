package classifier_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// learnBeforeAdd is a store whose import is overtaken by a training of
// another process: once the import has checked the store for the
// export's messages and marked it, and before its first batch is
// written, learn runs.
type learnBeforeAdd struct {
	*classifier.BoltStore
	learn func()
}

func (s *learnBeforeAdd) Add(ctx context.Context, b classifier.Batch) error {
	if s.learn != nil {
		s.learn()
		s.learn = nil
	}
	return s.BoltStore.Add(ctx, b)
}

// learnBeforeRedisAdd is learnBeforeAdd for a Redis store: embedded, the
// store keeps the ways of a Redis import (its atomic mark, its digest
// lookup, its one-step finish).
type learnBeforeRedisAdd struct {
	*classifier.RedisStore
	learn func()
}

func (s *learnBeforeRedisAdd) Add(ctx context.Context, b classifier.Batch) error {
	if s.learn != nil {
		s.learn()
		s.learn = nil
	}
	return s.RedisStore.Add(ctx, b)
}

// A training (sluice train begun before the import, the daemon's
// auto-learning before it sees the mark) that learns one of an export's
// messages while the export is imported: the import looked for the
// export's messages in the store before its first write, and found none.
// Learned then, the message was counted twice, once by the training and
// once by the import, under one digest, and the store's message counts
// no longer matched its learned messages. A store marked as holding part
// of an import takes no learning (as sluice train refuses it), in the
// transaction that would learn.
func TestLearnDuringImportOfSameMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dst.db")
	importer := openTestStore(t, path)
	defer importer.Close()
	trainer := openTestStore(t, path) // another process's handle
	defer trainer.Close()
	src := openTestStore(t, filepath.Join(t.TempDir(), "src.db"))
	defer src.Close()
	checkLearnDuringImport(t, src, importer, trainer, func(learn func()) classifier.Store {
		return &learnBeforeAdd{BoltStore: importer, learn: learn}
	})
}

// The same with Redis: the learn script reads the mark, in the script
// that would learn, which no other client's command overlaps.
func TestRedisLearnDuringImportOfSameMessage(t *testing.T) {
	srv := redistest.Start(t)
	opts := classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: fmt.Sprintf("test%d", redisPrefixes.Add(1))}
	importer := openRedisStore(t, opts)
	defer importer.Close()
	trainer := openRedisStore(t, opts) // another process's client
	defer trainer.Close()
	src := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
	defer src.Close()
	checkLearnDuringImport(t, src, importer, trainer, func(learn func()) classifier.Store {
		return &learnBeforeRedisAdd{RedisStore: importer, learn: learn}
	})
}

// checkLearnDuringImport learns test messages 0 to 3 into src, and
// imports its export into importer through the store wrap returns, which
// runs learn, a training of message 0 by trainer (another handle on the
// importer's store), just before the import's first write. The training
// must be refused, naming the import, and the import go through; the
// store's totals and counts must match its learned messages.
func checkLearnDuringImport(t *testing.T, src, importer, trainer classifier.Store, wrap func(learn func()) classifier.Store) {
	t.Helper()
	ctx := context.Background()
	learnRange(t, src, 0, 4)
	export := exportBytes(t, src)

	var learnErr error
	st := wrap(func() {
		_, learnErr = trainer.Learn(ctx, []classifier.LearnOp{overlapMessage(0)})
	})
	_, importErr := classifier.Import(ctx, st, bytes.NewReader(export))
	if learnErr == nil && importErr == nil {
		t.Error("the message was both learned and imported")
	}
	const want = "learn: the store holds part of an import begun "
	if learnErr == nil || !strings.HasPrefix(learnErr.Error(), want) || !strings.HasSuffix(learnErr.Error(), "learning now could count a message of the import twice") {
		t.Errorf("learn during the import: %v, want an error beginning %q", learnErr, want)
	}
	if importErr != nil {
		t.Errorf("import: %v", importErr)
	}
	stats, err := importer.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, c, err := importer.Lookup(ctx, []string{"common"})
	if err != nil {
		t.Fatal(err)
	}
	learned := uint32(stats.Digests)
	if stats.Spam+stats.Ham != learned || c[0].Spam+c[0].Ham != learned {
		t.Errorf("%d learned messages, but totals %d spam %d ham and the token all have counted in %d spam %d ham (learn: %v, import: %v)",
			learned, stats.Spam, stats.Ham, c[0].Spam, c[0].Ham, learnErr, importErr)
	}
}

// A store marked by an import that has not finished refuses every op of
// a learn, unlearning and moving as well as learning, with the same
// error from both stores, and changes nothing; once the mark goes, it
// learns again.
func TestLearnRefusedWhileImportMarked(t *testing.T) {
	ctx := context.Background()
	const mark = "2026-12-05T20:00:00Z pid=1 start=1 host=elsewhere.example"
	wantErr := "learn: the store holds part of an import begun 2026-12-05T20:00:00Z that has not finished (" +
		classifier.ImportMark{Began: "2026-12-05T20:00:00Z", PID: 1, Start: 1, Host: "elsewhere.example"}.Progress() +
		"): learning now could count a message of the import twice"
	for _, sc := range closedStoreKinds(redistest.Start(t), "") {
		t.Run(sc.name, func(t *testing.T) {
			st := sc.open(t)
			learnRange(t, st, 0, 2)
			if err := st.SetMeta(ctx, classifier.MetaImporting, mark); err != nil {
				t.Fatal(err)
			}
			before := exportAside(t, st)
			moved := overlapMessage(0)
			moved.Class = classifier.Ham
			unlearned := overlapMessage(1)
			unlearned.Unlearn = true
			for _, tc := range []struct {
				name string
				op   classifier.LearnOp
			}{
				{"learn", overlapMessage(2)},
				{"learn again", overlapMessage(0)},
				{"move", moved},
				{"unlearn", unlearned},
			} {
				out, err := st.Learn(ctx, []classifier.LearnOp{tc.op})
				if err == nil || err.Error() != wantErr {
					t.Errorf("%s in a marked store: %v, %v; want error %q", tc.name, out, err, wantErr)
				}
			}
			if after := exportAside(t, st); after != before {
				t.Errorf("a refused learn changed the store:\n%s\nwas\n%s", after, before)
			}
			if err := st.SetMeta(ctx, classifier.MetaImporting, ""); err != nil {
				t.Fatal(err)
			}
			learnRange(t, st, 2, 3)
		})
	}
}

// exportAside is the export of st, with its mark (which Export refuses) put
// aside for the while.
func exportAside(t *testing.T, st classifier.Store) string {
	t.Helper()
	ctx := context.Background()
	mark, err := st.Meta(ctx, classifier.MetaImporting)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetMeta(ctx, classifier.MetaImporting, ""); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.SetMeta(ctx, classifier.MetaImporting, mark); err != nil {
			t.Fatal(err)
		}
	}()
	return string(exportBytes(t, st))
}
