package classifier_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// overlapMessage returns the learn op of test message i: spam if i is
// even, ham if odd, with a token of its own and one all share.
func overlapMessage(i int) classifier.LearnOp {
	c := classifier.Spam
	if i%2 == 1 {
		c = classifier.Ham
	}
	return classifier.LearnOp{
		Digest: classifier.MessageDigest(fmt.Appendf(nil, "message %d", i)),
		Class:  c,
		Tokens: []string{"common", fmt.Sprintf("word%d", i)},
		Date:   20261201,
	}
}

// learnRange learns test messages from to to-1 into st.
func learnRange(t *testing.T, st classifier.Store, from, to int) {
	t.Helper()
	var ops []classifier.LearnOp
	for i := from; i < to; i++ {
		ops = append(ops, overlapMessage(i))
	}
	out, err := st.Learn(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o != classifier.Learned {
			t.Fatalf("message %d: %v", from+i, o)
		}
	}
}

func exportBytes(t *testing.T, st classifier.Store) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := classifier.Export(context.Background(), st, &out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// noDigestLookup hides a store's own digest lookup: an import then finds
// the messages the store learned by walking its digests.
type noDigestLookup struct{ classifier.Store }

// storeKind opens a new, empty store of one kind for a test.
type storeKind struct {
	name string
	open func(t *testing.T) classifier.Store
}

// digestStoreKinds are the stores the digest lookups are tried on:
// bbolt, Redis on srv (keys under prefix, "" for the default), and bbolt
// without a lookup of its own ("walked"), whose digests are walked and
// whose import is finished in two steps, as another kind of store's
// would be. The caller closes what it opens.
func digestStoreKinds(srv *redistest.Server, prefix string) []storeKind {
	bolt := func(t *testing.T) classifier.Store {
		st, err := classifier.Open(filepath.Join(t.TempDir(), "db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	return []storeKind{
		{"bolt", bolt},
		{"redis", func(t *testing.T) classifier.Store {
			return openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: prefix})
		}},
		{"walked", func(t *testing.T) classifier.Store { return noDigestLookup{bolt(t)} }},
	}
}

// closedStoreKinds are digestStoreKinds whose stores are closed when the
// test that opened them ends.
func closedStoreKinds(srv *redistest.Server, prefix string) []storeKind {
	stores := digestStoreKinds(srv, prefix)
	for i, sc := range stores {
		open := sc.open
		stores[i].open = func(t *testing.T) classifier.Store {
			st := open(t)
			t.Cleanup(func() { st.Close() })
			return st
		}
	}
	return stores
}

// Import adds an export's token counts and message totals to the store
// and sets its digests. A message the store has learned already would be
// counted twice while the store keeps one digest for it: the same export
// imported twice (once more after an import whose n-gram fit failed,
// though the import was complete) gave a store of 50 spam and 50 ham
// with 25 and 25 digests, and unlearning one of the messages then took
// away one count of two. Such an import is refused before it writes
// anything, naming how many of the export's messages the store has, and
// the store is left as it was. An export of other messages still adds.
func TestImportOverlap(t *testing.T) {
	ctx := context.Background()
	stores := digestStoreKinds(redistest.Start(t), "")
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			exportOfRange := func(from, to int) []byte {
				src := sc.open(t)
				defer src.Close()
				learnRange(t, src, from, to)
				return exportBytes(t, src)
			}
			first50 := exportOfRange(0, 50)
			refused := func(st classifier.Store, text []byte, want string) {
				t.Helper()
				before := exportBytes(t, st)
				beforeStats, err := st.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				_, err = classifier.Import(ctx, st, bytes.NewReader(text))
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "count their tokens and the message totals a second time") {
					t.Errorf("import: %v, want a refusal saying %q", err, want)
				}
				if err != nil && strings.Contains(err.Error(), "line") {
					t.Errorf("import: %v, names a line of the export, which none caused", err)
				}
				if after := exportBytes(t, st); !bytes.Equal(after, before) {
					afterStats, _ := st.Stats(ctx)
					t.Errorf("the refused import changed the store: %+v, was %+v", afterStats, beforeStats)
				}
				if m, err := classifier.IncompleteImport(ctx, st); err != nil || m.Began != "" {
					t.Errorf("the refused import left the store marked: %+v, %v", m, err)
				}
			}

			// The same export twice.
			st := sc.open(t)
			defer st.Close()
			if _, err := classifier.Import(ctx, st, bytes.NewReader(first50)); err != nil {
				t.Fatal(err)
			}
			refused(st, first50, "already learned 50 of the 50 messages")

			// Stores that share history: this one learned messages 0 to
			// 24 itself.
			shared := sc.open(t)
			defer shared.Close()
			learnRange(t, shared, 0, 25)
			refused(shared, first50, "already learned 25 of the 50 messages")

			// Messages 50 to 99 are new to st: their export adds.
			if _, err := classifier.Import(ctx, st, bytes.NewReader(exportOfRange(50, 100))); err != nil {
				t.Fatalf("import of other messages: %v", err)
			}
			s, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Spam != 50 || s.Ham != 50 || s.Digests != 100 {
				t.Errorf("after an import of other messages: %+v, want 50 spam, 50 ham, 100 digests", s)
			}
			// And unlearning one of them takes its own counts.
			op := overlapMessage(7)
			op.Unlearn = true
			if out, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil || out[0] != classifier.Unlearned {
				t.Fatalf("unlearn: %v, %v", out, err)
			}
			tot, counts, err := st.Lookup(ctx, []string{"common", "word7"})
			if err != nil {
				t.Fatal(err)
			}
			if tot.Ham != 49 || counts[0].Ham != 49 || counts[1] != (classifier.Counts{LastSeen: counts[1].LastSeen}) {
				t.Errorf("after unlearning a ham message: totals %+v, counts %+v", tot, counts)
			}
		})
	}
}

// An export of more messages than one look-up of the store takes: the
// one message the store learned is found wherever it is.
func TestImportOverlapMany(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	const n = 4500
	var b classifier.Batch
	b.Totals = classifier.Totals{Spam: n}
	for i := range n {
		b.Digests = append(b.Digests, classifier.DigestClass{Digest: overlapMessage(2 * i).Digest, Class: classifier.Spam})
	}
	b.Records = []classifier.Record{{Token: "common", Counts: classifier.Counts{Spam: n, LastSeen: 20261201}}}
	for name, open := range map[string]func() classifier.Store{
		"bolt": func() classifier.Store {
			st, err := classifier.Open(filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"redis": func() classifier.Store {
			return openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			src := open()
			defer src.Close()
			if err := src.Add(ctx, b); err != nil {
				t.Fatal(err)
			}
			text := exportBytes(t, src)
			// The export's digests are in byte order: the store learns
			// the last of them.
			var last classifier.Digest
			for _, d := range b.Digests {
				if bytes.Compare(d.Digest[:], last[:]) > 0 {
					last = d.Digest
				}
			}
			var op classifier.LearnOp
			for i := range n {
				if overlapMessage(2*i).Digest == last {
					op = overlapMessage(2 * i)
				}
			}
			st := open()
			defer st.Close()
			learnRange(t, st, 1, 2) // another message first
			if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
				t.Fatal(err)
			}
			_, err := classifier.Import(ctx, st, bytes.NewReader(text))
			want := fmt.Sprintf("already learned 1 of the %d messages whose digests the export holds (the first is %s)", n, last)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("import: %v, want %q", err, want)
			}
			s, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Spam != 1 || s.Ham != 1 || s.Digests != 2 {
				t.Errorf("after the refused import: %+v, want the store's own 1 spam and 1 ham", s)
			}
		})
	}
}
