package classifier_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// benchWord returns the i-th word of a synthetic vocabulary.
func benchWord(i int) string { return fmt.Sprintf("w%07dx", i) }

// benchMessage builds a message of about size bytes whose words are drawn
// from the first vocab words of the vocabulary.
func benchMessage(r *rand.Rand, size, vocab int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender%d@example.com\nTo: rcpt@example.net\nSubject: %s %s %s\n", r.IntN(100),
		benchWord(r.IntN(vocab)), benchWord(r.IntN(vocab)), benchWord(r.IntN(vocab)))
	b.WriteString("Received: from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.net with ESMTP\n")
	b.WriteString("Message-ID: <bench@example.com>\nContent-Type: text/plain; charset=us-ascii\n\n")
	for b.Len() < size {
		b.WriteString(benchWord(r.IntN(vocab)))
		if r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return []byte(b.String())
}

// storeWithTokens fills a new bbolt store with n tokens (the vocabulary)
// and plausible counts.
func storeWithTokens(b *testing.B, n int) *classifier.BoltStore {
	b.Helper()
	st := openTestStore(b, filepath.Join(b.TempDir(), "db"))
	r := rand.New(rand.NewPCG(1, 2))
	const batch = 100000
	for i := 0; i < n; i += batch {
		recs := make([]classifier.Record, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			recs = append(recs, classifier.Record{Token: benchWord(j), Counts: classifier.Counts{
				Spam: uint32(r.IntN(20)), Ham: uint32(r.IntN(20) + 1), LastSeen: 20240101}})
		}
		err := st.Add(context.Background(), classifier.Batch{Records: recs, Totals: classifier.Totals{Spam: 5000, Ham: 5000}})
		if err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// BenchmarkClassify5KB1M classifies a ~5 KB message against a store of one
// million tokens, the size the issue asks about.
func BenchmarkClassify5KB1M(b *testing.B) {
	const tokens = 1_000_000
	st := storeWithTokens(b, tokens)
	defer st.Close()
	c := classifier.New(st, classifier.Params{})
	r := rand.New(rand.NewPCG(3, 4))
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = benchMessage(r, 5000, tokens)
	}
	ctx := context.Background()
	b.SetBytes(int64(len(msgs[0])))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		res, err := c.Classify(ctx, bytes.NewReader(msgs[i%len(msgs)]))
		if err != nil {
			b.Fatal(err)
		}
		if res.Used == 0 {
			b.Fatal("no token of the message was found in the store")
		}
	}
}

// BenchmarkTrain measures training throughput: tokenising and learning
// messages in batches of 200, as bulk training does, into a store that
// grows as it goes. Reported as messages per second.
func BenchmarkTrain(b *testing.B) {
	st := openTestStore(b, filepath.Join(b.TempDir(), "db"))
	defer st.Close()
	c := classifier.New(st, classifier.Params{})
	r := rand.New(rand.NewPCG(5, 6))
	msgs := make([][]byte, 200)
	for i := range msgs {
		msgs[i] = benchMessage(r, 5000, 200_000)
	}
	ctx := context.Background()
	n := 0
	b.ResetTimer()
	for b.Loop() {
		ops := make([]classifier.LearnOp, len(msgs))
		for i, m := range msgs {
			ops[i] = c.PrepareBytes(m, classifier.Class(1+(n+i)%2), false)
			// Distinct digests: every message is new to the store.
			ops[i].Digest[0], ops[i].Digest[1], ops[i].Digest[2] = byte(n), byte(n>>8), byte(n>>16)
			ops[i].Digest[3] = byte(i)
		}
		n++
		if _, err := c.Learn(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*len(msgs))/b.Elapsed().Seconds(), "msgs/s")
}
