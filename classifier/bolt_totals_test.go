package classifier

import (
	"context"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A message-count value that does not decode is an error for every use
// of the store. Read as zero, as it once was, it made every message unsure
// ("not enough training") with no error to see, and the next training
// wrote a count of one or two over the real counts.
func TestDamagedTotalsAreAnError(t *testing.T) {
	ctx := context.Background()
	for _, indexed := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "bayes.db")
		s, err := OpenBolt(path, BoltOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		op := LearnOp{Digest: Digest{1}, Class: Spam, Tokens: []string{"cheap"}, Date: 20240101}
		if _, err := s.Learn(ctx, []LearnOp{op}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		damaged := []byte{0x80} // a varint cut short
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyTotals, damaged) })
		db.Close()
		if err != nil {
			t.Fatal(err)
		}

		opts := BoltOptions{NoSync: true, IndexTokens: -1}
		if indexed {
			opts = BoltOptions{NoSync: true, IndexAfter: 1}
		}
		s, err = OpenBolt(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // the second lookup goes through an index, if any
			if tot, _, err := s.Lookup(ctx, []string{"cheap"}); err == nil {
				t.Errorf("indexed %v, lookup %d: totals %+v, no error", indexed, i, tot)
			}
		}
		if st, err := s.Stats(ctx); err == nil {
			t.Errorf("indexed %v: stats %+v, no error", indexed, st.Totals)
		}
		op.Digest = Digest{2}
		if out, err := s.Learn(ctx, []LearnOp{op}); err == nil {
			t.Errorf("indexed %v: learn %v, no error", indexed, out)
		}
		if err := s.Add(ctx, Batch{Totals: Totals{Spam: 1}}); err == nil {
			t.Errorf("indexed %v: add, no error", indexed)
		}
		s.Close()
		db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		db.View(func(tx *bolt.Tx) error {
			if v := tx.Bucket(bucketMeta).Get(keyTotals); string(v) != string(damaged) {
				t.Errorf("indexed %v: the damaged value was overwritten with %x", indexed, v)
			}
			return nil
		})
		db.Close()
	}
}
