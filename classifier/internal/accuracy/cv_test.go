package main

import (
	"math"
	"path/filepath"
	"slices"
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

// TestChooseCutoffsMargin checks that a margin keeps the chosen spam
// cutoff that far in log-odds above the highest ham: without it the
// lowest cutoff above that ham wins.
func TestChooseCutoffsMargin(t *testing.T) {
	var res []scored
	add := func(spam bool, logOdds float64) {
		res = append(res, scored{spam: spam, score: 1 / (1 + math.Exp(-logOdds)), rank: logOdds})
	}
	add(false, 1.2) // 0.769: below 0.8, within 0.5 of it in log-odds
	add(false, -6)
	for _, l := range []float64{4, 5, 6} {
		add(true, l)
	}
	p := defaultsFor()
	for _, c := range []struct {
		margin, spamCut float64
		fpCounts        int
	}{
		{0, 0.8, 0},
		{0.5, 0.85, 0}, // logit(0.85)-0.5 = 1.23 > 1.2
		{1, 0.95, 0},   // logit(0.9)-1 = 1.197 <= 1.2 counts the ham at 0.9
	} {
		got := chooseCutoffs(p, res, 3, targets{margin: c.margin})
		if got.p.SpamCutoff != c.spamCut || got.fp != c.fpCounts || got.fn != 0 {
			t.Errorf("margin %g: spam cutoff %g, fp %d, fn %d; want %g, %d, 0", c.margin, got.p.SpamCutoff, got.fp, got.fn, c.spamCut, c.fpCounts)
		}
		// The ham at 0.769 is above every ham cutoff of the grid: unsure
		// at every spam cutoff, counted once, with or without a margin.
		if got.uns != 1 {
			t.Errorf("margin %g: %d unsure, want 1 (unsure verdicts are counted at the cutoffs themselves)", c.margin, got.uns)
		}
	}
}

// TestTargetsThenAUC checks the order cross-validation chooses by: a grid
// point whose cutoffs meet the targets wins over one of higher AUC whose
// cutoffs cannot, and among points that meet them (or among points that
// do not) the higher AUC wins.
func TestTargetsThenAUC(t *testing.T) {
	tg := targets{set: true, fnRate: 0.01, unsRt: 0.03, fnFirst: true}
	pt := func(uns int, auc float64) cvPoint {
		return cvPoint{uns: uns, cost: uns, auc: auc, nTotal: 1000}
	}
	meetsLow := pt(20, 0.9990)
	meetsHigh := pt(29, 0.9992)
	missesHigh := pt(84, 0.9999) // 8.4% unsure: over the cap
	missesLow := pt(40, 0.9980)
	if !tg.meets(meetsLow) || !tg.meets(meetsHigh) || tg.meets(missesHigh) || tg.meets(missesLow) {
		t.Fatal("fixture points do not meet or miss the targets as intended")
	}
	got := []cvPoint{missesHigh, meetsLow, missesLow, meetsHigh}
	slices.SortFunc(got, tg.targetsThenAUC)
	want := []cvPoint{meetsHigh, meetsLow, missesHigh, missesLow}
	for i := range want {
		if got[i].uns != want[i].uns {
			t.Errorf("position %d: unsure %d, AUC %v; want unsure %d, AUC %v", i, got[i].uns, got[i].auc, want[i].uns, want[i].auc)
		}
	}
	// Without targets (no bogofilter run to set them) the AUC alone
	// orders, as before.
	slices.SortFunc(got, targets{}.targetsThenAUC)
	if got[0].uns != missesHigh.uns {
		t.Errorf("without targets: first is unsure %d, want the highest AUC (unsure %d)", got[0].uns, missesHigh.uns)
	}
}
