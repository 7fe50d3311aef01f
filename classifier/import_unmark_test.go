package classifier

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// markAfterCheck is a store on which another import sets its mark just
// after this import has checked for one.
type markAfterCheck struct {
	*BoltStore
	other string // the other import's mark
	done  bool
}

func (s *markAfterCheck) Meta(ctx context.Context, key string) (string, error) {
	v, err := s.BoltStore.Meta(ctx, key)
	if key == MetaImporting && !s.done {
		s.done = true
		return v, s.BoltStore.SetMeta(ctx, MetaImporting, s.other)
	}
	return v, err
}

// An import that writes nothing (the export of an empty store) sets no
// mark, and must take none away: the mark of another import, begun
// meanwhile and still writing, must stay, or the store would pass for
// whole while it holds part of that import, and take a third.
func TestImportWritingNothingLeavesOthersMark(t *testing.T) {
	ctx := context.Background()
	bs, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	other := "2026-12-05T20:00:00Z pid=1 start=1 host=elsewhere.example"
	st := &markAfterCheck{BoltStore: bs, other: other}
	in, err := CheckImport(strings.NewReader("sluice-classifier-export 2\ndialect sluice\ntotals 0 0\nend 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := in.Into(ctx, st); err != nil {
		t.Fatal(err)
	}
	if v, err := bs.Meta(ctx, MetaImporting); err != nil || v != other {
		t.Errorf("the other import's mark is %q (%v), want %q", v, err, other)
	}
}
