package bayes

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// The spamicity the header prints is on its side of the autolearn
// thresholds as well as of the cutoffs: a value that rounds onto or
// across the threshold it did not reach (or the other way round) prints
// as the nearest six-place value that agrees with the decision to learn.
func TestPrintSpamicityAutolearnSide(t *testing.T) {
	def := classifier.Params{SpamCutoff: 0.85, HamCutoff: 0.1}
	tests := []struct {
		name                string
		s                   float64
		verdict             classifier.Verdict
		p                   classifier.Params
		learnSpam, learnHam float64
		want                string
	}{
		{"spam just below autolearn.spam: not learned", 0.9989996, classifier.VerdictSpam, def, 0.999, -1, "0.998999"},
		{"spam at autolearn.spam", 0.999, classifier.VerdictSpam, def, 0.999, -1, "0.999000"},
		{"spam at a seven-place autolearn.spam: learned", 0.9999992, classifier.VerdictSpam, def, 0.9999991, -1, "1.000000"},
		{"ham just above autolearn.ham: not learned", 0.0010004, classifier.VerdictHam, def, 0, 0.001, "0.001001"},
		{"ham at a seven-place autolearn.ham: learned", 0.0010006, classifier.VerdictHam, def, 0, 0.0010006, "0.001000"},
		{"autolearn.ham 0: learned only at 0", 0.0000004, classifier.VerdictHam, def, 0, 0, "0.000001"},
		{"autolearn off: only rounded", 0.9989996, classifier.VerdictSpam, def, 0, -1, "0.999000"},
		{"autolearn.spam does not touch a ham verdict", 0.0999996, classifier.VerdictHam, def, 0.999, -1, "0.100000"},
		{"unsure is never learned", 0.8499996, classifier.VerdictUnsure, def, 0.85, 0.1, "0.849999"},
		// Less than a millionth between the spam cutoff and autolearn.spam:
		// no six-place value is spam and below the threshold, and the
		// verdict comes first.
		{"the cutoff comes first", 0.85000015, classifier.VerdictSpam, classifier.Params{SpamCutoff: 0.8500001}, 0.8500002, -1, "0.850001"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := classifier.Result{Spamicity: tc.s, Verdict: tc.verdict}
			if got := printSpamicity(res, tc.p, tc.learnSpam, tc.learnHam); got != tc.want {
				t.Errorf("printSpamicity(%v, %s, autolearn %v/%v) = %s, want %s", tc.s, tc.verdict, tc.learnSpam, tc.learnHam, got, tc.want)
			}
		})
	}
}

// Around each autolearn threshold, the printed spamicity read back is on
// the same side of the threshold as autolearnClass's decision, on the
// same side of the cutoffs as the verdict, and at most a millionth off.
func TestPrintSpamicityAgreesWithAutolearn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := classifier.DefaultParams()
	verdictOf := func(s float64) classifier.Verdict {
		switch {
		case s >= p.SpamCutoff:
			return classifier.VerdictSpam
		case s <= p.HamCutoff:
			return classifier.VerdictHam
		}
		return classifier.VerdictUnsure
	}
	for _, th := range [][2]float64{{0.999, 0.001}, {0.9999991, 0.0010006}, {0.95, 0}, {1, 0.05}} {
		f := &Filter{s: settings{learnSpam: th[0], learnHam: th[1]}}
		for _, c := range th {
			for range 2000 {
				s := min(max(c+(rng.Float64()-0.5)*4e-6, 0), 1)
				res := classifier.Result{Spamicity: s, Verdict: verdictOf(s)}
				got := printSpamicity(res, p, th[0], th[1])
				v, err := strconv.ParseFloat(got, 64)
				if err != nil {
					t.Fatalf("%q: %v", got, err)
				}
				back := classifier.Result{Spamicity: v, Verdict: verdictOf(v)}
				if back.Verdict != res.Verdict || f.autolearnClass(back) != f.autolearnClass(res) {
					t.Fatalf("autolearn %v/%v: spamicity %v (%s, learn %v) printed %s, which reads as %s, learn %v",
						th[0], th[1], s, res.Verdict, f.autolearnClass(res), got, back.Verdict, f.autolearnClass(back))
				}
				if d := v - s; d > 1.0000001e-6 || d < -1.0000001e-6 {
					t.Fatalf("autolearn %v/%v: spamicity %v printed %s, %g off", th[0], th[1], s, got, d)
				}
			}
		}
	}
}
