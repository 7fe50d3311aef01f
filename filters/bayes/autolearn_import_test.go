package bayes_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// An import that marks the store after the filter last looked (it looks
// every stats_interval): the filter still auto-learns, and the store, of
// either kind, refuses in the step that would learn, rather than learn a
// message the import may count again. The failure is logged as any
// other; the message keeps its verdict, without autolearn=, and the
// store's totals do not change.
func TestAutolearnIntoStoreMarkedMeanwhile(t *testing.T) {
	for _, kind := range []string{"bolt", "redis"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			var st classifier.Store
			if kind == "bolt" {
				st = trainedStore(t)
			} else {
				srv := redistest.Start(t)
				redisTrained(t, srv.Addr, "mm")
				rs, err := classifier.OpenRedis(classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "mm"})
				if err != nil {
					t.Fatal(err)
				}
				st = rs
			}
			defer st.Close()
			var log lockedBuffer
			env := filters.Env{Name: "bayes", Logger: slog.New(slog.NewTextHandler(&log, nil)), StateDir: t.TempDir()}
			f, err := bayes.New(env, fixtureOptions(t, "spam: {action: tag}\nautolearn: {spam: 0.9, ham: 0.1}\nstats_interval: 1h"), "1.2.3", st)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := st.SetMeta(ctx, classifier.MetaImporting, "2026-12-05T20:00:00Z"); err != nil {
				t.Fatal(err)
			}
			before, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h := added(check(t, f, spamMessage()), "X-Sluice-Bayes")
			if !strings.HasPrefix(h, "Spam,") || strings.Contains(h, "autolearn") {
				t.Errorf("header %q: want a spam verdict and no auto-learning", h)
			}
			if !strings.Contains(log.String(), "bayes: auto-learning failed") || !strings.Contains(log.String(), "learn: the store holds part of an import begun 2026-12-05T20:00:00Z that has not finished") {
				t.Errorf("the refused auto-learning is not logged with the store's error:\n%s", log.String())
			}
			if after, _ := st.Stats(ctx); after.Totals != before.Totals {
				t.Errorf("totals %+v -> %+v: learned into a store marked by an import", before.Totals, after.Totals)
			}
		})
	}
}
