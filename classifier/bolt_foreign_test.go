package classifier_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	bolt "go.etcd.io/bbolt"
)

// bucketsOf lists the top-level buckets of the bbolt file at path.
func bucketsOf(t *testing.T, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var names []string
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	return names
}

// A bbolt file that another program wrote (mox keeps its junk filter and
// its mail index in such files) given as the store is refused, by the
// daemon, the commands and "sluice config check" alike, and left as it
// was: it used to pass the check, and the first open wrote the store's
// buckets into it beside the other program's data. So is a file whose
// "meta" bucket holds no sluice format version.
func TestOpenBoltRefusesForeignBbolt(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "junkfilter.db")
	metaOnly := filepath.Join(dir, "meta.db")
	for _, tc := range []struct{ path, bucket string }{{foreign, "Word"}, {metaOnly, "meta"}} {
		db, err := bolt.Open(tc.path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte(tc.bucket))
			if err != nil {
				return err
			}
			return b.Put([]byte("viagra"), []byte("\x01\x02"))
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{foreign, metaOnly} {
		before := bucketsOf(t, p)
		if err := classifier.CheckBolt(p, time.Second); err == nil || !strings.Contains(err.Error(), "not a sluice token store") {
			t.Errorf("CheckBolt %s: %v, want not a sluice token store", filepath.Base(p), err)
		}
		for _, ro := range []bool{false, true} {
			st, err := classifier.OpenBolt(p, classifier.BoltOptions{ReadOnly: ro, LockTimeout: time.Second})
			if err == nil {
				st.Close()
				t.Errorf("OpenBolt %s (read-only %t) opened it", filepath.Base(p), ro)
			} else if !strings.Contains(err.Error(), "not a sluice token store") {
				t.Errorf("OpenBolt %s (read-only %t): %v, want not a sluice token store", filepath.Base(p), ro, err)
			}
		}
		if after := bucketsOf(t, p); !slices.Equal(before, after) {
			t.Errorf("%s: buckets %q became %q", filepath.Base(p), before, after)
		}
		// Nor is a lock file left beside it, as for other files that
		// are no store.
		if _, err := os.Stat(p + ".lock"); err == nil {
			t.Errorf("%s: a lock file was left", filepath.Base(p))
		}
	}

	// A bbolt file with no bucket yet (a store whose first transaction
	// did not commit) is still made a store of.
	bare := filepath.Join(dir, "bare.db")
	db, err := bolt.Open(bare, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := classifier.CheckBolt(bare, time.Second); err != nil {
		t.Errorf("CheckBolt of a bbolt file without buckets: %v", err)
	}
	st, err := classifier.OpenBolt(bare, classifier.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("OpenBolt of a bbolt file without buckets: %v", err)
	}
	st.Close()
	os.Remove(bare + ".lock")
}
