package classifier

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/sluice-mail/sluice/classifier/redistest"
)

// TestRefitNgramOffDropsFeatures checks that a store scored without the
// n-gram model, which still keeps each learned message's features, is
// bounded as a store with the model is: Refit fits nothing and drops the
// features of the learned messages beyond the keep of lowest digest.
// Without it, training such a store grew it by about 3.5 kB a message
// forever.
func TestRefitNgramOffDropsFeatures(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		st, _ := newBoltClassifier(t, Params{})
		testRefitNgramOffDropsFeatures(t, st)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		st, err := OpenRedis(RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "ngramoff"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		testRefitNgramOffDropsFeatures(t, st)
	})
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
	var digests []Digest
	for _, o := range ops {
		if o.Features == nil {
			t.Fatalf("learn op of %s has no features: the store keeps none with the model off, and the test checks nothing", o.Digest)
		}
		digests = append(digests, o.Digest)
	}
	slices.SortFunc(digests, func(a, b Digest) int { return bytes.Compare(a[:], b[:]) })

	m, err := c.Refit(ctx)
	if err != nil || m != nil {
		t.Fatalf("Refit with the model off: %v, %v; want no model and no error", m, err)
	}
	if m, id, err := StoredModel(ctx, st); err != nil || m != nil || id != "" {
		t.Errorf("stored model after Refit with the model off: %v, %q, %v; want none", m, id, err)
	}
	_, err = st.WalkLearned(ctx, func(d DigestClass) error {
		i := slices.Index(digests, d.Digest)
		switch {
		case i < 0:
			t.Errorf("digest %s walked, not learned", d.Digest)
		case i < keep && d.Features == nil:
			t.Errorf("digest %s, %d of lowest digest, lost its features: within the %d kept", d.Digest, i+1, keep)
		case i >= keep && d.Features != nil:
			t.Errorf("digest %s, %d of lowest digest, still has its features: beyond the %d kept", d.Digest, i+1, keep)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Digests != len(ops) || stats.Features != keep {
		t.Errorf("stats: %d digests, %d with features; want %d, %d", stats.Digests, stats.Features, len(ops), keep)
	}
	// Nothing left to drop the second time.
	if n, err := dropSurplusFeatures(ctx, st, keep); n != 0 || err != nil {
		t.Errorf("second drop: %d, %v; want 0, nil", n, err)
	}
}
