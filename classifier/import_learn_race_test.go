package classifier_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
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
	ctx := context.Background()
	src := openTestStore(t, filepath.Join(t.TempDir(), "src.db"))
	defer src.Close()
	learnRange(t, src, 0, 4)
	export := exportBytes(t, src)

	path := filepath.Join(t.TempDir(), "dst.db")
	importer := openTestStore(t, path)
	defer importer.Close()
	trainer := openTestStore(t, path) // another process's handle
	defer trainer.Close()
	var learnErr error
	st := &learnBeforeAdd{BoltStore: importer, learn: func() {
		_, learnErr = trainer.Learn(ctx, []classifier.LearnOp{overlapMessage(0)})
	}}
	_, importErr := classifier.Import(ctx, st, bytes.NewReader(export))
	if learnErr == nil && importErr == nil {
		t.Error("the message was both learned and imported")
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
