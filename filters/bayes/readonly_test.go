package bayes_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
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

func (w *wouldLearn) BayesWouldAutolearn(filter, class, learnedAs string) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.would = append(w.would, strings.TrimSpace(filter+" "+class+" "+learnedAs))
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
	// The writer fits no model while the two are compared: a fit that
	// lands between its checks moves its scores from the read-only
	// filter's, which scores with the stale model throughout.
	writerOpts := strings.Replace(opts, "refit: 1ms", "refit: 0s", 1)
	writer, err := bayes.Open(env, fixtureOptions(t, writerOpts+rw), "1.2.3")
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

// spamVariant is spamMessage with another subject: another message, of
// another digest, that still scores as spam.
func spamVariant(subject string) *filters.Message {
	m := spamMessage()
	for i, h := range m.Headers {
		if h.Name == "Subject" {
			m.Headers[i].Value = subject
		}
	}
	return m
}

// learnedBeforeStore prepares st, a store trained on the fixtures, for
// TestOpenReadOnlyReportsLearnedBefore: it learns spamMessage as spam,
// and spamVariant("learned as ham") as ham (its digest alone, as
// TestAutolearnKeepsManualTraining does, so that it still scores as
// spam in a store of a dozen messages).
func learnedBeforeStore(t *testing.T, st classifier.Store) {
	t.Helper()
	ctx := context.Background()
	c := classifier.New(st, classifier.Params{})
	raw := func(m *filters.Message) []byte {
		b, err := io.ReadAll(m.Raw())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	spam := c.PrepareBytes(raw(spamMessage()), classifier.Spam, false)
	ham := c.PrepareBytes(raw(spamVariant("learned as ham")), classifier.Ham, false)
	ham.Tokens, ham.Features = nil, nil
	out, err := st.Learn(ctx, []classifier.LearnOp{spam, ham})
	if err != nil || out[0] != classifier.Learned || out[1] != classifier.Learned {
		t.Fatalf("learn: %v, %v", out, err)
	}
}

// A read-only filter tells, with each message auto-learning would try to
// learn, the class the store holds the message in already, looked up
// under the digest the daemon's auto-learning records: a message learned
// as spam is not learned again, and one learned as ham stays there
// (auto-learning never moves a message), so the daemon would change
// nothing for either. It used to report both as messages auto-learning
// would learn, as if the store had never seen them. The store is only
// read.
func TestOpenReadOnlyReportsLearnedBefore(t *testing.T) {
	ctx := context.Background()
	opts := "spam: {action: tag}\nautolearn: {spam: 0.9, ham: 0.1}\n"
	messages := []*filters.Message{spamMessage(), spamVariant("learned as ham"), spamVariant("never learned")}
	want := []string{"bayes spam spam", "bayes spam ham", "bayes spam"}
	run := func(t *testing.T, cfg bayes.Config, unchanged func() bool) {
		t.Helper()
		obs := &wouldLearn{}
		env := filters.Env{Name: "bayes", Logger: slog.New(slog.DiscardHandler), StateDir: t.TempDir(), Observer: obs}
		f, err := bayes.OpenReadOnly(env, cfg, "1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, m := range messages {
			h := added(check(t, f, m), "X-Sluice-Bayes")
			if !strings.HasPrefix(h, "Spam, ") || strings.Contains(h, "autolearn") {
				t.Errorf("header %q: want Spam, without an autolearn note", h)
			}
		}
		if !reflect.DeepEqual(obs.would, want) {
			t.Errorf("would auto-learn %q, want %q", obs.would, want)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if !unchanged() {
			t.Error("the store changed")
		}
	}

	t.Run("bolt", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "bayes.db")
		st := trainedStoreAt(t, db)
		learnedBeforeStore(t, st)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		run(t, fixtureOptions(t, opts+"db: "+db), func() bool {
			after, err := os.ReadFile(db)
			return err == nil && string(after) == string(before)
		})
	})

	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		redisTrained(t, srv.Addr, "rl")
		rs, err := classifier.OpenRedis(classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "rl"})
		if err != nil {
			t.Fatal(err)
		}
		learnedBeforeStore(t, rs)
		rs.Close()
		rdb := srv.Client(t)
		// The hashes and the string keys, read by value: a hash's
		// DUMP follows its table's order, which reads may rehash.
		snapshot := func() string {
			keys, err := rdb.Keys(ctx, "{rl}*").Result()
			if err != nil || len(keys) == 0 {
				t.Fatalf("keys: %v, %v", keys, err)
			}
			slices.Sort(keys)
			var b strings.Builder
			for _, k := range keys {
				var v any
				switch typ := rdb.Type(ctx, k).Val(); typ {
				case "hash":
					v, err = rdb.HGetAll(ctx, k).Result()
				case "string":
					v, err = rdb.Get(ctx, k).Result()
				case "stream":
					v, err = rdb.XRange(ctx, k, "-", "+").Result()
				default:
					t.Fatalf("key %s of type %s", k, typ)
				}
				if err != nil {
					t.Fatalf("read %s: %v", k, err)
				}
				fmt.Fprintf(&b, "%s=%v\n", k, v)
			}
			return b.String()
		}
		before := snapshot()
		run(t, fixtureOptions(t, opts+redisOptions(srv.Addr, "rl", "")), func() bool { return snapshot() == before })
	})
}
