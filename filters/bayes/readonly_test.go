package bayes_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// wouldLearn is a recorder that also hears what a read-only filter would
// have auto-learned.
type wouldLearn struct {
	recorder
	wmu   sync.Mutex
	would []string
}

func (w *wouldLearn) BayesWouldAutolearn(filter, class string) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.would = append(w.would, filter+" "+class)
}

// A filter built by OpenReadOnly writes nothing: not the messages that
// auto-learning would learn (it tells the observer of them instead, and
// the header lacks autolearn=), not a fit of a stale n-gram model however
// many refit intervals pass, and no file beside the store. Its verdicts
// and headers are otherwise those of the filter the daemon builds, the
// spamicity printed beside the autolearn threshold as there.
func TestOpenReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	st := trainedStoreAt(t, db)
	// Learned after the fit: the model is stale, and a filter that may
	// write fits it again within a refit interval.
	c := classifier.New(st, classifier.Params{})
	op := c.PrepareBytes([]byte("From: carol@lab.example\r\nSubject: lunch\r\n\r\nLunch at noon on friday?\r\n"), classifier.Ham, false)
	if _, err := c.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	if stale, err := classifier.ModelStale(ctx, st); err != nil || !stale {
		t.Fatalf("model stale: %t, %v", stale, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// A copy for the filter that writes, to compare headers with.
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	rw := filepath.Join(t.TempDir(), "bayes.db")
	if err := os.WriteFile(rw, data, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(db + ".lock")

	opts := "spam: {action: tag}\nautolearn: {spam: 0.9, ham: 0.1}\nrefit: 1ms\ndb: "
	obs := &wouldLearn{}
	env := filters.Env{Name: "bayes", Logger: slog.New(slog.DiscardHandler), StateDir: dir, Observer: obs}
	f, err := bayes.OpenReadOnly(env, fixtureOptions(t, opts+db), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env.Observer = nil
	writer, err := bayes.Open(env, fixtureOptions(t, opts+rw), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()

	for _, tc := range []struct {
		m     func() *filters.Message
		class string
	}{{spamMessage, "spam"}, {hamMessage, "ham"}} {
		got := added(check(t, f, tc.m()), "X-Sluice-Bayes")
		want := added(check(t, writer, tc.m()), "X-Sluice-Bayes")
		if got+", autolearn="+tc.class != want {
			t.Errorf("%s: read-only header %q, the daemon's %q: want the same without the autolearn note", tc.class, got, want)
		}
	}
	// Refit intervals come round.
	time.Sleep(100 * time.Millisecond)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"bayes spam", "bayes ham"}; !reflect.DeepEqual(obs.would, want) {
		t.Errorf("would auto-learn %v, want %v", obs.would, want)
	}
	if len(obs.autolearned) != 0 || len(obs.learnFailed) != 0 {
		t.Errorf("auto-learned %v, failed %v", obs.autolearned, obs.learnFailed)
	}
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(data) {
		t.Error("the store changed")
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 1 {
		t.Errorf("files in the store's directory: %v, want the store alone", names)
	}
}

// OpenReadOnly does not create a missing store, nor its lock file: it
// fails naming the store.
func TestOpenReadOnlyMissingStore(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	_, err := bayes.OpenReadOnly(filters.Env{Name: "bayes", StateDir: dir}, bayes.Config{}, "v")
	if err == nil || !strings.Contains(err.Error(), db) {
		t.Errorf("open of a missing store: %v, want an error naming %s", err, db)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*")); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}
