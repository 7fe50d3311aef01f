package classifier

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// The printed spamicity is on the verdict's side of the cutoffs: a value
// that rounds onto or across a cutoff it did not reach (or the other way
// round) prints as the nearest six-place value that agrees.
func TestFormatSpamicity(t *testing.T) {
	def := Params{SpamCutoff: 0.85, HamCutoff: 0.1}
	tests := []struct {
		name    string
		s       float64
		verdict Verdict
		reason  string
		p       Params
		want    string
	}{
		{"unsure just below the spam cutoff", 0.8499996, VerdictUnsure, "", def, "0.849999"},
		{"spam at the cutoff", 0.85, VerdictSpam, "", def, "0.850000"},
		{"spam just above the cutoff", 0.8500004, VerdictSpam, "", def, "0.850000"},
		{"unsure well below the cutoff", 0.849, VerdictUnsure, "", def, "0.849000"},
		{"unsure just above the ham cutoff", 0.1000004, VerdictUnsure, "", def, "0.100001"},
		{"ham at the cutoff", 0.1, VerdictHam, "", def, "0.100000"},
		{"ham just below the cutoff", 0.0999996, VerdictHam, "", def, "0.100000"},
		{"spam cutoff of seven places", 0.8500004, VerdictSpam, "", Params{SpamCutoff: 0.8500004}, "0.850001"},
		{"unsure below a seven-place spam cutoff", 0.8500003, VerdictUnsure, "", Params{SpamCutoff: 0.8500004}, "0.850000"},
		{"ham cutoff of seven places", 0.0999996, VerdictHam, "", Params{HamCutoff: 0.0999996}, "0.099999"},
		{"ham cutoff off: near 0 is unsure", 0.0000004, VerdictUnsure, "", Params{HamCutoff: -1}, "0.000001"},
		{"ham cutoff off: 0 is ham", 0, VerdictHam, "", Params{HamCutoff: -1}, "0.000000"},
		{"spam cutoff 1: near 1 is unsure", 0.9999996, VerdictUnsure, "", Params{SpamCutoff: 1}, "0.999999"},
		{"spam cutoff 1: 1 is spam", 1, VerdictSpam, "", Params{SpamCutoff: 1}, "1.000000"},
		{"spam is 1", 1, VerdictSpam, "", def, "1.000000"},
		{"ham is 0", 0, VerdictHam, "", def, "0.000000"},
		// Unsure for want of training: the score did not decide, and
		// pulling it below the spam cutoff would misstate it.
		{"not enough training, spam score", 0.9999996, VerdictUnsure, "not enough training", def, "1.000000"},
		{"not enough training, ham score", 0.0000004, VerdictUnsure, "not enough training", def, "0.000000"},
		{"no six-place value between the cutoffs", 0.8499997, VerdictUnsure, "", Params{SpamCutoff: 0.85, HamCutoff: 0.8499995}, "0.850000"},
		{"NaN", math.NaN(), VerdictUnsure, "", def, "NaN"},
		// Equal cutoffs (allowed: no unsure verdict at all): a ham just
		// below them must not print as the cutoff, which reads as spam.
		{"equal cutoffs: ham just below", 0.4999996, VerdictHam, "", Params{SpamCutoff: 0.5, HamCutoff: 0.5}, "0.499999"},
		{"equal cutoffs: spam at them", 0.5, VerdictSpam, "", Params{SpamCutoff: 0.5, HamCutoff: 0.5}, "0.500000"},
		{"equal seven-place cutoffs: ham just below", 0.8500003, VerdictHam, "", Params{SpamCutoff: 0.8500004, HamCutoff: 0.8500004}, "0.850000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Result{Spamicity: tc.s, Verdict: tc.verdict, Reason: tc.reason}
			if got := FormatSpamicity(res, tc.p); got != tc.want {
				t.Errorf("FormatSpamicity(%v, %s) = %s, want %s", tc.s, tc.verdict, got, tc.want)
			}
		})
	}
}

// Around each cutoff, whatever spamicity decide gives: the printed value
// read back reaches the verdict decide reached, and is the nearest
// six-place value that does.
func TestFormatSpamicityAgreesWithDecide(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []Params{DefaultParams(), BogofilterParams(), {SpamCutoff: 0.9876543, HamCutoff: 0.0123456}, {SpamCutoff: 1, HamCutoff: -1},
		{SpamCutoff: 0.5, HamCutoff: 0.5}, {SpamCutoff: 0.9876543, HamCutoff: 0.9876543}} {
		p = p.withDefaults()
		p.MinSpam, p.MinHam = -1, -1
		for _, c := range []float64{p.SpamCutoff, max(p.HamCutoff, 0)} {
			for range 2000 {
				s := min(max(c+(rng.Float64()-0.5)*4e-6, 0), 1)
				res := Result{LogOdds: math.Log(s / (1 - s))}
				res.decide(p)
				got := FormatSpamicity(res, p)
				v, err := strconv.ParseFloat(got, 64)
				if err != nil {
					t.Fatalf("%q: %v", got, err)
				}
				readBack := Result{Spamicity: v}
				switch {
				case v >= p.SpamCutoff:
					readBack.Verdict = VerdictSpam
				case v <= max(p.HamCutoff, 0):
					readBack.Verdict = VerdictHam
				default:
					readBack.Verdict = VerdictUnsure
				}
				if readBack.Verdict != res.Verdict {
					t.Fatalf("cutoffs %v/%v: spamicity %v is %s, printed %s reads as %s",
						p.SpamCutoff, p.HamCutoff, res.Spamicity, res.Verdict, got, readBack.Verdict)
				}
				// At most a millionth off: the rounded value, or the
				// next one on the verdict's side.
				if d := math.Abs(v - res.Spamicity); d > 1.0000001e-6 {
					t.Fatalf("cutoffs %v/%v: spamicity %v printed %s, %g off", p.SpamCutoff, p.HamCutoff, res.Spamicity, got, d)
				}
			}
		}
	}
}

// Thresholds of the caller's own keep the printed value on the
// spamicity's side of each too, after the verdict's cutoffs; one that
// leaves no six-place value on the side of those before it is not kept.
func TestFormatSpamicityBeside(t *testing.T) {
	def := Params{SpamCutoff: 0.85, HamCutoff: 0.1}
	tests := []struct {
		name            string
		s               float64
		verdict         Verdict
		atLeast, atMost []float64
		want            string
	}{
		{"below an at-least threshold", 0.9989996, VerdictSpam, []float64{0.999}, nil, "0.998999"},
		{"at an at-least threshold", 0.999, VerdictSpam, []float64{0.999}, nil, "0.999000"},
		{"above a seven-place at-least threshold", 0.9999992, VerdictSpam, []float64{0.9999991}, nil, "1.000000"},
		{"above an at-most threshold", 0.0010004, VerdictHam, nil, []float64{0.001}, "0.001001"},
		{"at a seven-place at-most threshold", 0.0010006, VerdictHam, nil, []float64{0.0010006}, "0.001000"},
		{"rounded already on every side", 0.5, VerdictUnsure, []float64{0.4}, []float64{0.6}, "0.500000"},
		{"the cutoff comes first", 0.8500002, VerdictSpam, []float64{0.8500003}, nil, "0.850000"},
		{"nor one that leaves nothing beside an earlier one", 0.9989996, VerdictSpam, []float64{0.999, 0.9989995}, nil, "0.998999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Result{Spamicity: tc.s, Verdict: tc.verdict}
			if got := FormatSpamicityBeside(res, def, tc.atLeast, tc.atMost); got != tc.want {
				t.Errorf("FormatSpamicityBeside(%v, %s, %v, %v) = %s, want %s", tc.s, tc.verdict, tc.atLeast, tc.atMost, got, tc.want)
			}
		})
	}
	// Spam from 0.8500001: no six-place value is spam and below 0.8500002,
	// and the verdict's side wins.
	res := Result{Spamicity: 0.85000015, Verdict: VerdictSpam}
	if got := FormatSpamicityBeside(res, Params{SpamCutoff: 0.8500001}, []float64{0.8500002}, nil); got != "0.850001" {
		t.Errorf("a threshold less than a millionth above the spam cutoff: printed %s, want 0.850001", got)
	}
}
