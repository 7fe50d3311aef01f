package milter

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/filters"
)

// The reason the MTA records with a held message names the filter entry
// once: a filter's reason starts with its type, and an entry is named for
// its type unless the configuration names it.
func TestQuarantineReason(t *testing.T) {
	for _, c := range []struct{ filter, reason, want string }{
		{"bayes", "bayes: spam, spamicity=0.999871", "sluice: bayes: spam, spamicity=0.999871"},
		{"spamcheck", "bayes: spam, spamicity=0.999871", "sluice: spamcheck: bayes: spam, spamicity=0.999871"},
		{"rules", "held by test filter", "sluice: rules: held by test filter"},
		{"bayes", "bayesian: x", "sluice: bayes: bayesian: x"},
		{"bayes", "", "sluice: bayes"},
		{"senders", "senders: line1\r\nline2", "sluice: senders: line1  line2"},
		// A reason that quotes a From field of 100 kB is cut, at the
		// start of a character.
		{"senders", "senders: " + strings.Repeat("é", 50000), "sluice: senders: " + strings.Repeat("é", (maxQuarantineReason-len("sluice: senders: ..."))/2) + "..."},
	} {
		f := &flow{out: filters.Outcome{Filter: c.filter, Reason: c.reason}}
		got := f.quarantineReason()
		if got != c.want {
			t.Errorf("filter %q, reason %.60q: %.60q (%d bytes), want %.60q (%d bytes)", c.filter, c.reason, got, len(got), c.want, len(c.want))
		}
		if len(got) > maxQuarantineReason || !utf8.ValidString(got) {
			t.Errorf("reason of %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
		}
	}
}
