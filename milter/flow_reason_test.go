package milter

import (
	"testing"

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
	} {
		f := &flow{out: filters.Outcome{Filter: c.filter, Reason: c.reason}}
		if got := f.quarantineReason(); got != c.want {
			t.Errorf("filter %q, reason %q: %q, want %q", c.filter, c.reason, got, c.want)
		}
	}
}
