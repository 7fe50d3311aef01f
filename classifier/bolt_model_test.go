package classifier

import (
	"context"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A store written before the model had a bucket of its own keeps it in
// the meta bucket: it is read from there, the next learn or SetModel
// moves it, and a model put there again afterwards (by such a sluice, run
// after a downgrade, with its id) is the one read.
func TestModelInMetaBucket(t *testing.T) {
	ctx := context.Background()
	st, err := OpenBolt(filepath.Join(t.TempDir(), "bayes.db"), BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// As SetModel wrote it before the model bucket.
	putOld := func(model, id string) {
		t.Helper()
		err := st.update(ctx, func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(metaKey(MetaModel), []byte(model)); err != nil {
				return err
			}
			return meta.Put(keyModelID, []byte(id))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(step, model, id string) {
		t.Helper()
		if got, err := st.Meta(ctx, MetaModel); err != nil || got != model {
			t.Errorf("%s: model %q, %v; want %q", step, got, err, model)
		}
		if got, err := st.Meta(ctx, MetaModelID); err != nil || got != id {
			t.Errorf("%s: model id %q, %v; want %q", step, got, err, id)
		}
		err := st.viewMeta(ctx, MetaModel, func(b []byte) error {
			if string(b) != model {
				t.Errorf("%s: viewMeta gives %q, want %q", step, b, model)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	inMeta := func() bool {
		in := false
		st.view(ctx, func(tx *bolt.Tx) error {
			in = tx.Bucket(bucketMeta).Get(metaKey(MetaModel)) != nil
			return nil
		})
		return in
	}

	putOld("old model", "old-id")
	check("written before", "old model", "old-id")
	// The first learn moves it out of the way of the learns to come.
	op := LearnOp{Digest: MessageDigest([]byte("m")), Class: Spam, Tokens: []string{"t"}, Date: 20261206}
	if _, err := st.Learn(ctx, []LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	check("after a learn", "old model", "old-id")
	if inMeta() {
		t.Error("a learn left the model in the meta bucket")
	}
	putOld("old model", "old-id")
	if ok, err := st.SetModel(ctx, 1, "new model", "new-id"); err != nil || !ok {
		t.Fatalf("SetModel: %v, %v", ok, err)
	}
	check("after SetModel", "new model", "new-id")
	if inMeta() {
		t.Error("SetModel left the model in the meta bucket")
	}
	putOld("downgraded model", "downgraded-id")
	check("written again by an older sluice", "downgraded model", "downgraded-id")
	if ok, err := st.SetModel(ctx, 2, "", ""); err != nil || !ok {
		t.Fatalf("SetModel to remove: %v, %v", ok, err)
	}
	check("removed", "", "")
	if inMeta() {
		t.Error("SetModel to remove left the model in the meta bucket")
	}
}
