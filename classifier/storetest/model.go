package storetest

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// AddNgramModel adds n learned messages with n-grams (of random printable
// text, half spam, half ham; no token counts) to a store, and fits the
// n-gram model on them, so that benchmarks of a store built from raw
// records also pay for the model as a trained store's classifier does.
func AddNgramModel(tb testing.TB, s classifier.Store, n int) {
	tb.Helper()
	r := rand.New(rand.NewPCG(5, 6))
	raw := make([]byte, 3000)
	digs := make([]classifier.DigestClass, 0, n)
	for i := range n {
		for k := range raw {
			raw[k] = byte(' ' + r.IntN(95))
		}
		d := classifier.DigestClass{Class: classifier.Ham, Features: classifier.EncodeFeatures(classifier.NgramFeatures(raw))}
		if i%2 == 0 {
			d.Class = classifier.Spam
		}
		for k := range d.Digest {
			d.Digest[k] = byte(r.Uint32())
		}
		digs = append(digs, d)
	}
	ctx := context.Background()
	if err := s.Add(ctx, classifier.Batch{Digests: digs}); err != nil {
		tb.Fatal(err)
	}
	if m, err := classifier.Refit(ctx, s); err != nil || m == nil {
		tb.Fatalf("refit: %v, %v", m, err)
	}
}
