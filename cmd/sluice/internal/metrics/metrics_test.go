package metrics_test

import (
	"fmt"
	"testing"
	"time"

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

// A bayes filter's failed auto-learns have a series per class at 0 from
// the filter's start, so that an alert on increase() sees the first one
// (docs/metrics.md), and each failure counts once under its class.
func TestBayesAutolearnFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test", "go")
	gather := func() map[string]float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range fams {
			if f.GetName() != "sluice_bayes_autolearn_failures_total" {
				continue
			}
			for _, s := range f.GetMetric() {
				l := map[string]string{}
				for _, lp := range s.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				got[l["filter"]+" "+l["class"]] = s.GetCounter().GetValue()
			}
		}
		return got
	}
	if got := gather(); len(got) != 0 {
		t.Errorf("series before any filter: %v", got)
	}
	m.BayesFilter("bayes", true)
	if got, want := gather(), map[string]float64{"bayes spam": 0, "bayes ham": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("at the filter's start: %v, want %v", got, want)
	}
	m.BayesAutolearnFailed("bayes", "spam")
	m.BayesAutolearnFailed("bayes", "spam")
	m.BayesFilter("bayes", false)
	if got, want := gather(), map[string]float64{"bayes spam": 2, "bayes ham": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after two failures and the filter's end: %v, want %v", got, want)
	}
}

// The reports of state from the filters a reload builds wait for the
// reload's outcome: written in order once it is in force, dropped when
// it failed, so that the running filters' series keep their values.
func TestStagedReports(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test", "go")
	rules := func() float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "sluice_sender_rules" {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	m.SenderFilter("senders", true)
	m.SenderRulesLoaded("senders", 2, nil)
	m.InForce([]string{"senders"})

	failed := m.Stage()
	failed.SenderFilter("senders", true)
	failed.SenderRulesLoaded("senders", 5, nil)
	if got := rules(); got != 2 {
		t.Errorf("while a reload builds: %v, want the running filter's 2", got)
	}
	failed.Discard([]string{"senders"})
	failed.SenderRulesLoaded("senders", 6, nil)
	failed.SenderFilter("senders", false)
	if got := rules(); got != 2 {
		t.Errorf("after a failed reload: %v, want the running filter's 2", got)
	}

	ok := m.Stage()
	ok.SenderFilter("senders", true)
	ok.SenderRulesLoaded("senders", 7, nil)
	ok.SenderRulesLoaded("senders", 8, nil)
	if got := rules(); got != 2 {
		t.Errorf("while a reload builds: %v, want the running filter's 2", got)
	}
	ok.Commit([]string{"senders"})
	if got := rules(); got != 8 {
		t.Errorf("after the reload: %v, want the new filter's last report, 8", got)
	}
	ok.SenderRulesLoaded("senders", 9, nil)
	if got := rules(); got != 9 {
		t.Errorf("a report after the reload: %v, want 9", got)
	}
}

// A failed reload takes the series of the filter names only it had with
// it: its filters never served, and what they counted while they were
// built must not stay for a filter that never ran. The names in force
// keep theirs, and so does a name a configuration in force once had.
func TestDiscardDropsSeriesOfFailedReloadsNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test", "go")
	filtersWithSeries := func() map[string]bool {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, f := range fams {
			for _, s := range f.GetMetric() {
				for _, lp := range s.GetLabel() {
					if lp.GetName() == "filter" {
						got[lp.GetValue()] = true
					}
				}
			}
		}
		return got
	}
	m.BayesFilter("bayes", true)
	m.BayesClassified("bayes", "ham", 0.1, time.Millisecond)
	m.ArchiveAppended("gone", "default", 10, time.Millisecond)
	m.InForce([]string{"bayes", "gone"})

	failed := m.Stage()
	failed.BayesFilter("bayes", true)
	failed.BayesFilter("new-bayes", true)
	failed.BayesRedisRoundTrip("new-bayes", "open", time.Millisecond, nil)
	failed.DNSBLProbing("new-dnsbl", "bl.example", true)
	failed.DNSBLQuery("new-dnsbl", "bl.example", time.Millisecond)
	failed.DNSBLError("new-dnsbl", "bl.example", "timeout")
	failed.BayesFilter("bayes", false)
	failed.BayesFilter("new-bayes", false)
	failed.DNSBLProbing("new-dnsbl", "bl.example", false)
	failed.Discard([]string{"bayes", "new-bayes", "new-dnsbl", "gone"})

	if got, want := filtersWithSeries(), map[string]bool{"bayes": true, "gone": true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("filter names with series after a failed reload: %v, want %v", got, want)
	}
}
