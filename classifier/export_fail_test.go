package classifier

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// diskFull is a bbolt store whose every Add fails, as one does on a full
// disk once the import mark (a few bytes) has been written: bbolt rolls
// the batch's transaction back whole.
type diskFull struct{ *BoltStore }

func (diskFull) Add(context.Context, Batch) error {
	return errors.New("write: no space left on device")
}

// An import whose first batch a bbolt store refused wrote nothing of it:
// the store must not keep the mark of an unfinished import, which would
// lock a trained store against train, prune, export and imports, and call
// for an import into a new store, losing the store's own training. Nor
// may it keep the import's dialect: marked as bogofilter's, an empty store
// would tokenise what it is trained on next as bogofilter does, and refuse
// an import of a sluice export.
func TestImportFirstBatchRefusedLeavesNoMark(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		text     string
		importer func(context.Context, Store, *strings.Reader) error
	}{
		{"export", "sluice-classifier-export 2\ndialect bogofilter\ntotals 1 0\nt a 1 0 20240101\nend 1 0\n",
			func(ctx context.Context, s Store, r *strings.Reader) error { _, err := Import(ctx, s, r); return err }},
		{"bogoutil", ".MSG_COUNT 1 0 20240101\na 1 0 20240101\n",
			func(ctx context.Context, s Store, r *strings.Reader) error {
				_, err := ImportBogoutil(ctx, s, r)
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer bs.Close()
			if err := tc.importer(ctx, diskFull{bs}, strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), "no space") {
				t.Fatalf("error %v, want the store's", err)
			}
			if m, err := IncompleteImport(ctx, bs); err != nil || m.Began != "" {
				t.Errorf("the store is marked as holding part of an import: %+v, %v", m, err)
			}
			if d, err := bs.Meta(ctx, MetaDialect); err != nil || d != "" {
				t.Errorf("the empty store's dialect is %q (%v), want none", d, err)
			}
			// A sluice export goes into it as into any empty store.
			if _, err := Import(ctx, bs, strings.NewReader("sluice-classifier-export 2\ndialect sluice\ntotals 1 0\nt a 1 0 20240101\nend 1 0\n")); err != nil {
				t.Errorf("import of a sluice export afterwards: %v", err)
			}
		})
	}
}

// markOnRead marks the store as another import that begins while this
// one still reads and checks its input.
type markOnRead struct {
	r      *strings.Reader
	st     Store
	marked bool
}

func (m *markOnRead) Read(p []byte) (int, error) {
	if !m.marked {
		m.marked = true
		if err := markImporting(context.Background(), m.st); err != nil {
			return 0, err
		}
	}
	return m.r.Read(p)
}

// Another import that begins while this one checks its input (a large
// export takes seconds) must make this one refuse, as it would have had
// it begun earlier: both writing would count the export twice, and the
// first to finish would take the other's mark, so that a store still
// being written looked whole.
func TestImportRefusedWhenAnotherBeganMeanwhile(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		text     string
		importer func(context.Context, Store, *markOnRead) error
	}{
		{"export", "sluice-classifier-export 2\ndialect sluice\ntotals 1 0\nt a 1 0 20240101\nend 1 0\n",
			func(ctx context.Context, s Store, r *markOnRead) error { _, err := Import(ctx, s, r); return err }},
		{"bogoutil", ".MSG_COUNT 1 0 20240101\na 1 0 20240101\n",
			func(ctx context.Context, s Store, r *markOnRead) error {
				_, err := ImportBogoutil(ctx, s, r)
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bs, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer bs.Close()
			err = tc.importer(ctx, bs, &markOnRead{r: strings.NewReader(tc.text), st: bs})
			if err == nil || !strings.Contains(err.Error(), "has not finished") {
				t.Errorf("error %v, want a refusal naming the other import", err)
			}
			s, err := bs.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Tokens != 0 || s.Spam != 0 {
				t.Errorf("the import wrote beside the other: %+v", s)
			}
			if m, err := IncompleteImport(ctx, bs); err != nil || m.Began == "" {
				t.Errorf("the other import's mark is gone: %+v, %v", m, err)
			}
		})
	}
}
