package classifier

import (
	"context"
	"testing"
)

// TestRefitNgramOffDropsFeatures checks that a store scored without the
// n-gram model, which still keeps each learned message's features, is
// bounded as a store with the model is: Refit fits nothing and drops the
// features of the learned messages beyond the keep of lowest digest.
// Without it, training such a store grew it by about 3.5 kB a message
// forever.
func TestRefitNgramOffDropsFeatures(t *testing.T) {
	onBothStores(t, "ngramoff", testRefitNgramOffDropsFeatures)
}

func testRefitNgramOffDropsFeatures(t *testing.T, st Store) {
	const keep = 5
	ctx := context.Background()
	c, err := NewForStore(ctx, st, Params{Ngram: NgramOff})
	if err != nil {
		t.Fatal(err)
	}
	c.keepFeatures = keep
	ops := fixtureOps(t, c, Spam, Ham)
	if _, err := c.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if o.Features == nil {
			t.Fatalf("learn op of %s has no features: the store keeps none with the model off, and the test checks nothing", o.Digest)
		}
	}
	digests, op := byDigest(ops)

	m, err := c.Refit(ctx)
	if err != nil || m != nil {
		t.Fatalf("Refit with the model off: %v, %v; want no model and no error", m, err)
	}
	if m, id, err := StoredModel(ctx, st); err != nil || m != nil || id != "" {
		t.Errorf("stored model after Refit with the model off: %v, %q, %v; want none", m, id, err)
	}
	checkKeptFeatures(t, st, digests, op, keep)
	// Nothing left to drop the second time.
	if n, err := dropSurplusFeatures(ctx, st, keep); n != 0 || err != nil {
		t.Errorf("second drop: %d, %v; want 0, nil", n, err)
	}
}
