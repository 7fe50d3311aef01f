package classifier

import (
	"encoding/json"
	"math"
	"testing"
)

// A robs and robx whose product rounds to 0, which Validate lets through,
// make a token seen only in ham exactly 0 and one seen only in spam
// exactly 1. With one of each, in the header and in the body, each part
// is certain of its side (log-odds -Inf and +Inf): the score must stay a
// number, as it does when both are in one part, or the verdict is unsure
// by accident, the header field reads NaN and --format json cannot be
// written.
func TestScoreSplitPartsCertainOfOppositeSides(t *testing.T) {
	for _, p := range []Params{
		{RobS: 5e-324, MinSpam: -1, MinHam: -1},
		{RobS: 1e-200, RobX: 1e-200, MinSpam: -1, MinHam: -1},
	} {
		if err := p.Validate(); err != nil {
			t.Fatalf("robs %v, robx %v refused: %v", p.RobS, p.RobX, err)
		}
		p = p.withDefaults()
		tot := Totals{Spam: 10, Ham: 10}
		for _, tc := range []struct {
			tokens []string
			counts []Counts
		}{
			{[]string{"subj:cheap", "pills"}, []Counts{{Ham: 3}, {Spam: 3}}},
			{[]string{"subj:cheap", "pills"}, []Counts{{Spam: 3}, {Ham: 3}}},
		} {
			res := Score(p, tot, tc.tokens, tc.counts, true)
			if math.IsNaN(res.LogOdds) || math.IsNaN(res.Spamicity) {
				t.Errorf("robs %v, robx %v, counts %v: log-odds %v, spamicity %v", p.RobS, p.RobX, tc.counts, res.LogOdds, res.Spamicity)
			}
			// The one message's test weighs both tokens alike: no side.
			if res.Verdict != VerdictUnsure || res.Spamicity != 0.5 {
				t.Errorf("robs %v, robx %v, counts %v: %s %v, want unsure 0.5", p.RobS, p.RobX, tc.counts, res.Verdict, res.Spamicity)
			}
			if _, err := json.Marshal(res.Spamicity); err != nil {
				t.Errorf("spamicity %v: %v", res.Spamicity, err)
			}
		}
	}
}
