package bayes_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/storetest"
	"github.com/sluice-mail/sluice/filters"
)

// vocabWord is the i-th word of a synthetic vocabulary: letters only, so
// that every tokenizer dialect keeps it whole.
func vocabWord(i int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := []byte("tok")
	for n := i; ; n /= 26 {
		b = append(b, letters[n%26])
		if n < 26 {
			break
		}
	}
	return string(b)
}

// bigStore returns a store of n tokens with plausible counts, as a site's
// store after months of training.
func bigStore(b *testing.B, n int) *classifier.BoltStore {
	b.Helper()
	st, err := classifier.OpenBolt(filepath.Join(b.TempDir(), "bayes.db"), classifier.BoltOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const batch = 100_000
	for i := 0; i < n; i += batch {
		recs := make([]classifier.Record, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			recs = append(recs, classifier.Record{Token: vocabWord(j), Counts: classifier.Counts{
				Spam: uint32(r.IntN(20)), Ham: uint32(r.IntN(20) + 1), LastSeen: 20240101}})
		}
		if err := st.Add(context.Background(), classifier.Batch{Records: recs, Totals: classifier.Totals{Spam: 5000, Ham: 5000}}); err != nil {
			b.Fatal(err)
		}
	}
	storetest.AddNgramModel(b, st, 2000)
	return st
}

// benchMessage is a ~5 KB message as the milter edge hands it over, its
// words drawn from the vocabulary of the store.
func benchMessage(r *rand.Rand, vocab int) *filters.Message {
	var body strings.Builder
	for body.Len() < 4600 {
		body.WriteString(vocabWord(r.IntN(vocab)))
		if r.IntN(12) == 0 {
			body.WriteString(".\r\n")
		} else {
			body.WriteByte(' ')
		}
	}
	return msg(fmt.Sprintf("4Q%06d", r.IntN(1e6)), []filters.Header{
		{Name: "Received", Value: "from mail.example.com (mail.example.com [192.0.2.1]) by mx.example.net (Postfix) with ESMTP"},
		{Name: "From", Value: "sender@example.com"},
		{Name: "To", Value: "rcpt@example.net"},
		{Name: "Subject", Value: vocabWord(r.IntN(vocab)) + " " + vocabWord(r.IntN(vocab))},
		{Name: "Message-ID", Value: "<bench@example.com>"},
		{Name: "Content-Type", Value: "text/plain; charset=us-ascii"},
	}, body.String())
}

// BenchmarkFilter5KB1M runs the filter's end-of-message check (header
// and verdict included) on ~5 KB messages against a store of one million
// tokens, and the classifier alone on the same messages for comparison.
// The store keeps recently used counts in memory, so the number of
// distinct messages matters: 64 messages fit that cache after the first
// round (common words, as in real mail, hit it), 2048 random ones mostly
// miss it and descend the B+tree. Each run opens the store afresh.
// Run: go test -run '^$' -bench Filter5KB1M ./filters/bayes
func BenchmarkFilter5KB1M(b *testing.B) {
	const tokens = 1_000_000
	st := bigStore(b, tokens)
	path := st.Path()
	st.Close()
	r := rand.New(rand.NewPCG(3, 4))
	all := make([]*filters.Message, 2048)
	for i := range all {
		all[i] = benchMessage(r, tokens)
	}
	size := headerBytes(all[0]) + all[0].Body.Size()
	ctx := context.Background()
	for _, n := range []int{64, len(all)} {
		msgs := all[:n]
		b.Run(fmt.Sprintf("msgs=%d/check", n), func(b *testing.B) {
			f := newFilter(b, openStore(b, path), "spam: {action: tag}", nil)
			if res, _ := f.Classifier().Classify(ctx, msgs[0].Raw()); res.Used == 0 || !res.Ngram {
				b.Fatalf("no token of the message is in the store, or no n-gram model (%v)", res.Ngram)
			}
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				v, err := f.Check(ctx, filters.StageEOM, msgs[i%len(msgs)])
				if err != nil {
					b.Fatal(err)
				}
				if len(v.Edits) == 0 {
					b.Fatal("no header")
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("msgs=%d/classify-only", n), func(b *testing.B) {
			f := newFilter(b, openStore(b, path), "", nil)
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				if _, err := f.Classifier().Classify(ctx, msgs[i%len(msgs)].Raw()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func openStore(b *testing.B, path string) *classifier.BoltStore {
	st, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func headerBytes(m *filters.Message) int64 {
	n := int64(2)
	for _, h := range m.Headers {
		n += int64(len(h.Name) + len(h.Value) + 4)
	}
	return n
}
