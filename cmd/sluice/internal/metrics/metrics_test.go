package metrics_test

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/metrics"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// A message bayes skips is counted under its reason: over max_size as
// verdict "skipped", as it always was, and from a sender who
// authenticated as "authenticated" (docs/metrics.md).
func TestBayesSkippedVerdicts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test", "go")
	m.BayesSkipped("bayes", bayes.SkipSize)
	m.BayesSkipped("bayes", bayes.SkipAuthenticated)
	m.BayesSkipped("bayes", bayes.SkipAuthenticated)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "sluice_bayes_messages_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range s.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			got[l["filter"]+" "+l["verdict"]] = s.GetCounter().GetValue()
		}
	}
	if want := map[string]float64{"bayes skipped": 1, "bayes authenticated": 2}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sluice_bayes_messages_total %v, want %v", got, want)
	}
}
