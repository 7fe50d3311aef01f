package classifier

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// importFirst is a store on which another import runs to its end just
// before this one sets its mark: the other began after this one checked
// the store's dialect, and finished before this one's first write.
type importFirst struct {
	*BoltStore
	other string // a sluice export
}

func (s importFirst) claimMeta(ctx context.Context, key, value string) (string, error) {
	if _, err := Import(ctx, s.BoltStore, strings.NewReader(s.other)); err != nil {
		return "", err
	}
	return s.BoltStore.claimMeta(ctx, key, value)
}

// Two imports of different dialects into one empty store, the second
// checking the store's dialect before the first writes and setting its
// mark once the first has finished: the second must see the tokens the
// first wrote, and refuse, rather than mark a store of sluice's tokens as
// bogofilter's (which would then tokenise all it learns as bogofilter
// does).
func TestImportDialectCheckedWithTheMark(t *testing.T) {
	ctx := context.Background()
	bs, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	st := importFirst{bs, "sluice-classifier-export 2\ndialect sluice\ntotals 1 0\nt sluicetok 1 0 20240101\nend 1 0\n"}
	_, err = ImportBogoutil(ctx, st, strings.NewReader(".MSG_COUNT 1 1 20240101\nbogotok 1 0 20240101\n"))
	if !errors.Is(err, ErrDialect) {
		t.Errorf("error %v, want the dialects' refusal", err)
	}
	if d, err := bs.Meta(ctx, MetaDialect); err != nil || d != "" {
		t.Errorf("the store of sluice's tokens has dialect %q (%v)", d, err)
	}
	s, err := bs.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Tokens != 1 || s.Totals != (Totals{Spam: 1}) {
		t.Errorf("the store holds %+v, want the first import alone", s)
	}
	if m, err := IncompleteImport(ctx, bs); err != nil || m.Began != "" {
		t.Errorf("the store is left marked: %+v, %v", m, err)
	}
}
