package classifier_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// A sluice store whose tokens were all pruned (prune --older-than on a
// store left untrained for months) still counts its learned messages and
// remembers their digests. A bogofilter word list imported into it was
// taken as going into an empty store: the store became bogofilter's with
// the sluice messages added to bogofilter's message counts, so that
// every token weighed as a share of both, and with the digests of
// messages the other tokenizer read. It is refused as an import into a
// store with tokens is, and the store is left as it was.
func TestImportBogoutilIntoPrunedStore(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t, filepath.Join(t.TempDir(), "bayes.db"))
	defer st.Close()
	var ops []classifier.LearnOp
	for i := range 4 {
		op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"casino", "winner"}}
		if i%2 == 1 {
			op = classifier.LearnOp{Class: classifier.Ham, Tokens: []string{"agenda", "minutes"}}
		}
		op.Digest[0] = byte(i + 1)
		ops = append(ops, op)
	}
	if _, err := st.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Prune(ctx, classifier.PruneOptions{MaxCount: 1000}); err != nil {
		t.Fatal(err)
	}
	before, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.Tokens != 0 || before.Spam != 2 || before.Ham != 2 || before.Digests != 4 {
		t.Fatalf("pruned store: %+v, want no tokens, 2 spam, 2 ham and 4 digests", before)
	}

	dump := ".MSG_COUNT 10 10 20240101\ncasino 8 1 20240101\nagenda 0 9 20240101\n"
	_, err = classifier.ImportBogoutil(ctx, st, strings.NewReader(dump))
	if !errors.Is(err, classifier.ErrDialect) {
		t.Errorf("import of a word list into a pruned sluice store: %v, want ErrDialect", err)
	}
	after, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Totals != before.Totals || after.Tokens != 0 || after.Digests != before.Digests {
		t.Errorf("the store went from %+v to %+v", before, after)
	}
	if d, _ := st.Meta(ctx, classifier.MetaDialect); d != "" {
		t.Errorf("the store's dialect became %q", d)
	}

	// An empty store still takes the list.
	empty := openTestStore(t, filepath.Join(t.TempDir(), "new.db"))
	defer empty.Close()
	if _, err := classifier.ImportBogoutil(ctx, empty, strings.NewReader(dump)); err != nil {
		t.Errorf("import into an empty store: %v", err)
	}
}
