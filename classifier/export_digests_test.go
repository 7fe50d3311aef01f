package classifier_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	bolt "go.etcd.io/bbolt"
)

// A store's export imports, whatever its digests hold: an export that
// succeeds and that import then refuses is a backup found useless only
// when it is needed. Features that do not decode (Add takes them as they
// are) are exported as none, as a refit would have nothing to read in
// them: the message stays learned.
func TestExportBadFeaturesImports(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "src.db")
	st, err := classifier.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	bad, good := classifier.Digest{1}, classifier.Digest{2}
	err = st.Add(ctx, classifier.Batch{Totals: classifier.Totals{Spam: 2}, Digests: []classifier.DigestClass{
		{Digest: bad, Class: classifier.Spam, Features: []byte{0xff, 0xff}},
		{Digest: good, Class: classifier.Spam, Features: classifier.EncodeFeatures([]uint32{1, 5, 9})},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := classifier.Export(ctx, st, &out); err != nil {
		t.Fatal(err)
	}
	st.Close()
	dst := emptyStore(t)
	if _, err := classifier.Import(ctx, dst, strings.NewReader(out.String())); err != nil {
		t.Fatalf("import of the export: %v\n%s", err, out.String())
	}
	digs := digestsOf(t, dst)
	if d, ok := digs[bad]; !ok || d.Class != classifier.Spam || d.Features != nil {
		t.Errorf("digest with features that do not decode: %+v, %v; want learned as spam, without features", d, ok)
	}
	if d := digs[good]; d.Class != classifier.Spam || !bytes.Equal(d.Features, classifier.EncodeFeatures([]uint32{1, 5, 9})) {
		t.Errorf("digest with features: %+v", d)
	}
}

// A digest of no class (a damaged store) fails the export, naming the
// digest, rather than write a line of class "none" that import refuses
// while the export reports success.
func TestExportDigestOfNoClassFails(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "src.db")
	st, err := classifier.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := classifier.Digest{1}
	err = st.Add(ctx, classifier.Batch{Totals: classifier.Totals{Spam: 1}, Digests: []classifier.DigestClass{{Digest: bad, Class: classifier.Spam}}})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The class byte damaged, as a bad disk leaves it.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("digests")).Put(bad[:], []byte{7})
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, err = classifier.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out bytes.Buffer
	err = classifier.Export(ctx, st, &out)
	if err == nil || !strings.Contains(err.Error(), bad.String()) {
		t.Errorf("export of a digest of class 7: %v, want an error naming it; export:\n%s", err, out.String())
	}
}
