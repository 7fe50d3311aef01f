package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// TestCVMatchesStore checks that cross-validation scores a message exactly
// as a store trained on the other folds through the real path (Prepare,
// Learn, Refit, BuildIndex, ClassifyBytes) would, n-gram model included. Cross-validation adds and
// subtracts per-fold counts instead of training five stores; if the two
// ever differ (a tokenizer bound, deduplication by digest, the store's
// index), the parameters it chooses are chosen for a classifier that does
// not exist.
func TestCVMatchesStore(t *testing.T) {
	var train []sample
	for _, class := range []string{"ham", "spam"} {
		names, err := filepath.Glob(filepath.Join("..", "..", "..", "testdata", "bayes", class, "*.eml"))
		if err != nil || len(names) < 10 {
			t.Fatalf("fixtures for %s: %d, %v", class, len(names), err)
		}
		for i, n := range names {
			train = append(train, sample{rel: class + "/" + filepath.Base(n), path: n, spam: class == "spam", fold: i % 5})
		}
	}
	msgs, err := cvMessages(train, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := defaultsFor()
	compared := 0
	for o := range 5 {
		var in, out []sample
		var want []classifier.Result
		for k, s := range train {
			if s.fold != o {
				in = append(in, s)
				continue
			}
			out = append(out, s)
			want = append(want, msgs[k].score(p, false))
		}
		db := filepath.Join(t.TempDir(), "sluice.db")
		if _, err := trainSluice(db, in, p, 2); err != nil {
			t.Fatal(err)
		}
		got, _, _, err := scoreSluice(db, out, p, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i := range out {
			if math.Abs(got[i].rank-want[i].LogOdds) > 1e-9 || got[i].verdict != want[i].Verdict {
				t.Errorf("fold %d, %s: store gives log-odds %v (%v), cross-validation %v (%v)",
					o, out[i].rel, got[i].rank, got[i].verdict, want[i].LogOdds, want[i].Verdict)
			}
			if !want[i].Ngram {
				t.Errorf("fold %d, %s: the n-gram model was not averaged in; the comparison leaves it out", o, out[i].rel)
			}
			if want[i].Used == 0 {
				t.Errorf("fold %d, %s: no token counted; the comparison says nothing", o, out[i].rel)
			}
			compared++
		}
	}
	if compared != len(train) {
		t.Errorf("compared %d messages, want %d", compared, len(train))
	}
}
