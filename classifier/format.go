package classifier

import (
	"fmt"
	"math"
	"strconv"
)

// FormatSpamicity returns res.Spamicity with six decimals, as bogofilter
// prints it, for a header, a reply or the CLI: the value printed beside
// res.Verdict. p are the parameters res was scored with.
//
// Rounded to the nearest six-place value, a spamicity just below a cutoff
// can print as the cutoff itself (0.8499996 as 0.850000 with spam cutoff
// 0.85, verdict unsure), and one just above the ham cutoff as the ham
// cutoff: a reader, or a Sieve or procmail rule, comparing the printed
// number with the cutoff would then reach another verdict than sluice
// did. So when the nearest six-place value is not on the verdict's side
// of the cutoffs (as decide compares them), the nearest one that is gets
// printed instead (0.849999). A verdict that the score did not decide
// (unsure for want of training) has no side to keep, and the spamicity
// is only rounded; so is one whose unsure interval holds no six-place
// value (cutoffs less than a millionth apart).
func FormatSpamicity(res Result, p Params) string {
	return FormatSpamicityBeside(res, p, nil, nil)
}

// FormatSpamicityBeside is FormatSpamicity for a caller that compares the
// spamicity with thresholds of its own too, and prints it beside what it
// decided (package bayes: auto-learning, whose "autolearn=spam" must not
// sit beside 0.998999 with autolearn.spam 0.999, nor its absence beside
// 0.999000 because 0.9989996 rounded up). The printed value is also on
// the spamicity's side of each threshold of atLeast, compared as
// spamicity >= t, and of atMost, compared as spamicity <= t: the nearest
// six-place value that is. The verdict's cutoffs come first: a threshold
// that leaves no six-place value on the verdict's side (less than a
// millionth from a cutoff) is not kept, and nor is one that leaves none
// on the side of the thresholds before it. Thresholds are in [0,1].
func FormatSpamicityBeside(res Result, p Params, atLeast, atMost []float64) string {
	s := res.Spamicity
	rounded := strconv.FormatFloat(s, 'f', 6, 64)
	if math.IsNaN(s) {
		return rounded
	}
	p = p.withDefaults()
	spamCut, hamCut := p.SpamCutoff, max(p.HamCutoff, 0) // as decide reads them
	// k is the rounded value in millionths: exact, since a six-place
	// decimal times 1e6 is within an ulp of its integer.
	v, err := strconv.ParseFloat(rounded, 64)
	if err != nil {
		return rounded
	}
	k := int64(math.Round(v * 1e6))
	// [lo, hi] are the six-place values, in millionths, the printed one
	// may be; unbounded until a cutoff or threshold bounds them.
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	switch {
	case res.Verdict == VerdictSpam && s >= spamCut:
		lo = firstAtLeast(spamCut)
	case res.Verdict == VerdictHam && s <= hamCut:
		// Below the spam cutoff too, which decide tests first: with
		// the cutoffs equal (no unsure verdict), the ham cutoff itself
		// reads as spam.
		hi = min(firstAbove(hamCut), firstAtLeast(spamCut)) - 1
	case res.Verdict == VerdictUnsure && s > hamCut && s < spamCut:
		if a, b := firstAbove(hamCut), firstAtLeast(spamCut)-1; a <= b {
			lo, hi = a, b
		}
	}
	keep := func(a, b int64) {
		a, b = max(a, lo), min(b, hi)
		if a <= b && b >= 0 {
			lo, hi = a, b
		}
	}
	for _, t := range atLeast {
		if s >= t {
			keep(firstAtLeast(t), math.MaxInt64)
		} else {
			keep(math.MinInt64, firstAtLeast(t)-1)
		}
	}
	for _, t := range atMost {
		if s <= t {
			keep(math.MinInt64, firstAbove(t)-1)
		} else {
			keep(firstAbove(t), math.MaxInt64)
		}
	}
	if k >= lo && k <= hi {
		return rounded
	}
	return millionths(min(max(k, lo), hi))
}

// millionths formats k/1e6 with six decimals; k is not negative.
func millionths(k int64) string { return fmt.Sprintf("%d.%06d", k/1e6, k%1e6) }

// millionthsValue is the number a reader parses from millionths(k).
func millionthsValue(k int64) float64 {
	v, _ := strconv.ParseFloat(millionths(k), 64)
	return v
}

// firstAtLeast returns the smallest k whose six-place value, as printed
// and read back, is at least c (c in [0,1]). The product c*1e6 may be off
// by an ulp, so the guess is moved until it is exact.
func firstAtLeast(c float64) int64 {
	k := max(int64(math.Ceil(c*1e6)), 0)
	for millionthsValue(k) < c {
		k++
	}
	for k > 0 && millionthsValue(k-1) >= c {
		k--
	}
	return k
}

// firstAbove returns the smallest k whose six-place value, as printed and
// read back, is above c (c in [0,1]).
func firstAbove(c float64) int64 {
	k := max(int64(math.Floor(c*1e6)), 0)
	for millionthsValue(k) <= c {
		k++
	}
	for k > 0 && millionthsValue(k-1) > c {
		k--
	}
	return k
}
