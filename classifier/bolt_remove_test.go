package classifier

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RemoveIfEmpty removes a store that holds nothing but what a failed
// first write of this process's import leaves, and nothing else: not a
// store with counts, nor one another import has marked, which that
// import is writing or was.
func TestRemoveIfEmpty(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		prepare func(*BoltStore) error
		removed bool
	}{
		{"new", func(*BoltStore) error { return nil }, true},
		{"first batch refused", func(bs *BoltStore) error {
			_, err := ImportBogoutil(ctx, diskFull{bs}, strings.NewReader(".MSG_COUNT 1 0 20240101\na 1 0 20240101\n"))
			if err == nil {
				t.Fatal("the import into a full disk did not fail")
			}
			// What is left when the disk was too full to take the
			// mark back too.
			_, err = markFirstAdd(ctx, bs, string(DialectBogofilter))
			return err
		}, true},
		{"counts", func(bs *BoltStore) error {
			return bs.Add(ctx, Batch{Totals: Totals{Spam: 1}})
		}, false},
		{"tokens", func(bs *BoltStore) error {
			return bs.Add(ctx, Batch{Records: []Record{{Token: "a", Counts: Counts{Spam: 1}}}})
		}, false},
		{"another import's mark", func(bs *BoltStore) error {
			return bs.SetMeta(ctx, MetaImporting, "2026-12-05T20:00:00Z pid=1 start=1 host=elsewhere.example")
		}, false},
		{"a mark of an earlier version", func(bs *BoltStore) error {
			return bs.SetMeta(ctx, MetaImporting, "2026-12-05T20:00:00Z")
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db")
			bs, err := OpenBolt(path, BoltOptions{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer bs.Close()
			if err := tc.prepare(bs); err != nil {
				t.Fatal(err)
			}
			removed, err := bs.RemoveIfEmpty(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, serr := os.Stat(path)
			if removed != tc.removed || os.IsNotExist(serr) != tc.removed {
				t.Errorf("removed %v, file stat %v; want removed %v", removed, serr, tc.removed)
			}
		})
	}
}
