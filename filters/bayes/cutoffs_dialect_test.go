package bayes_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// bogofilterStore makes a store of bogofilter's dialect (as "sluice db
// import --bogoutil" leaves it) at dir/bayes.db.
func bogofilterStore(t *testing.T, dir string) (*classifier.BoltStore, string) {
	t.Helper()
	path := filepath.Join(dir, "bayes.db")
	st, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetMeta(context.Background(), classifier.MetaDialect, string(classifier.DialectBogofilter)); err != nil {
		t.Fatal(err)
	}
	return st, path
}

// A store imported from bogofilter scores with bogofilter's cutoffs
// (spam 0.99, ham 0.45) where the configuration sets none, so ham_cutoff
// 0.9 is good for it; the filter refused it, checking the cutoffs against
// sluice's own defaults (spam 0.85) before it knew the store.
func TestHamCutoffOnBogofilterStore(t *testing.T) {
	st, _ := bogofilterStore(t, t.TempDir())
	ham := 0.9
	cfg := bayes.Config{HamCutoff: &ham}
	env := filters.Env{Name: "bayes", Logger: slog.New(slog.DiscardHandler), StateDir: t.TempDir()}
	f, err := bayes.New(env, cfg, "1.2.3", st)
	if err != nil {
		st.Close()
		t.Fatalf("ham_cutoff 0.9 on a bogofilter store (its spam_cutoff is 0.99): %v", err)
	}
	f.Close()
}

// "sluice config check" (Env.CheckOnly) refuses what the daemon refuses
// when it opens the store, and takes what it takes: spam_cutoff 0.4 is
// below a bogofilter store's ham cutoff (0.45), so a reload would fail
// after the check had passed it.
func TestConfigCheckJudgesCutoffsByTheStore(t *testing.T) {
	for _, tc := range []struct {
		name       string
		spam, ham  *float64
		bogofilter bool
	}{
		{"spam_cutoff below bogofilter's ham cutoff", ptr(0.4), nil, true},
		{"ham_cutoff above sluice's spam cutoff, bogofilter store", nil, ptr(0.9), true},
		{"ham_cutoff above sluice's spam cutoff, sluice store", nil, ptr(0.9), false},
		{"spam_cutoff below sluice's ham cutoff, bogofilter store", ptr(0.04), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var st *classifier.BoltStore
			var path string
			if tc.bogofilter {
				st, path = bogofilterStore(t, dir)
			} else {
				path = filepath.Join(dir, "bayes.db")
				var err error
				if st, err = classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true}); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			cfg := bayes.Config{DB: path, SpamCutoff: tc.spam, HamCutoff: tc.ham}
			env := filters.Env{Name: "bayes", Logger: slog.New(slog.DiscardHandler), StateDir: dir}
			f, daemonErr := bayes.Open(env, cfg, "1.2.3")
			if f != nil {
				f.Close()
			}
			env.CheckOnly = true
			_, checkErr := bayes.Open(env, cfg, "1.2.3")
			if (daemonErr == nil) != (checkErr == nil) {
				t.Fatalf("the daemon says %v, config check says %v", daemonErr, checkErr)
			}
		})
	}
}
