package metrics_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/metrics"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// storeTokens returns sluice_bayes_store_tokens{filter=name}, -1 when
// there is no such series.
func storeTokens(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "sluice_bayes_store_tokens" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, lp := range s.GetLabel() {
				if lp.GetName() == "filter" && lp.GetValue() == name {
					return s.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// newBayes builds a bayes filter named "bayes" on the bolt store at path,
// measured every 10ms, reporting to obs.
func newBayes(t *testing.T, path string, obs any) *bayes.Filter {
	t.Helper()
	st, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var cfg bayes.Config
	if err := yaml.Unmarshal([]byte("stats_interval: 10ms\nrefit: 0s\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	env := filters.Env{Name: "bayes", Logger: slog.New(slog.DiscardHandler), StateDir: t.TempDir(), Observer: obs}
	f, err := bayes.New(env, cfg, "test", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// A reload that points the bayes filter at another store (a freshly
// trained one) builds the new filter under the same name, and the old
// one serves the MTA connections opened before the reload until they
// end. Its store gauges are then the new store's only: the old filter,
// still measuring its own store, must not overwrite them, or
// sluice_bayes_store_tokens jumps between the two stores for as long as
// those connections last, and after the old one closes stays on
// whichever wrote last.
func TestBayesRetiredFilterLeavesStoreGauges(t *testing.T) {
	dir := t.TempDir()
	oldPath := filepath.Join(dir, "old.db")
	st, err := classifier.OpenBolt(oldPath, classifier.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c := classifier.New(st, classifier.Params{})
	ops := []classifier.LearnOp{
		c.PrepareBytes([]byte("Subject: cheap pills\r\n\r\nbuy cheap pills now, limited offer, click here\r\n"), classifier.Spam, false),
		c.PrepareBytes([]byte("Subject: meeting\r\n\r\nthe review of the parser patch is done, see you thursday\r\n"), classifier.Ham, false),
	}
	if _, err := c.Learn(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test", "go")
	old := newBayes(t, oldPath, m)
	m.InForce([]string{"bayes"})
	deadline := time.Now().Add(5 * time.Second)
	for storeTokens(t, reg, "bayes") <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the old store's tokens never reported: %v", storeTokens(t, reg, "bayes"))
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The reload: the new filter is built and committed, then the old
	// pipeline is retired as milter.Server.SetConfig does, while a
	// session of the old configuration still holds it open.
	staged := m.Stage()
	newBayes(t, filepath.Join(dir, "new.db"), staged)
	staged.Commit([]string{"bayes"})
	filters.NewPipeline([]filters.Step{{Filter: old}}, nil).Retire()

	deadline = time.Now().Add(5 * time.Second)
	for storeTokens(t, reg, "bayes") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the new (empty) store's tokens never reported: %v", storeTokens(t, reg, "bayes"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < 40; i++ {
		if v := storeTokens(t, reg, "bayes"); v != 0 {
			t.Fatalf("after the reload, sluice_bayes_store_tokens{filter=\"bayes\"} is %v (the old store's), want the new store's 0", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
