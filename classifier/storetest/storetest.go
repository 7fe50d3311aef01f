// Package storetest is the contract every classifier.Store must meet, as a
// test suite: the bbolt store runs it, and so must any later store (Redis),
// so that the CLI and the filter behave the same on all of them.
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) classifier.Store { return openMine(t) })
//	}
//
// open must return a new, empty store each call; Run closes it.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// Run runs the store contract tests.
func Run(t *testing.T, open func(t *testing.T) classifier.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s classifier.Store)
	}{
		{"LookupEmpty", testLookupEmpty},
		{"LearnOutcomes", testLearnOutcomes},
		{"LearnNoMove", testLearnNoMove},
		{"LearnDialect", testLearnDialect},
		{"BatchSameDigest", testBatchSameDigest},
		{"BatchClampsEachOp", testBatchClampsEachOp},
		{"BatchClampsEachOpAtMax", testBatchClampsEachOpAtMax},
		{"LastSeen", testLastSeen},
		{"AddWalkStats", testAddWalkStats},
		{"Prune", testPrune},
		{"Features", testFeatures},
		{"FeaturesAdd", testFeaturesAdd},
		{"Meta", testMeta},
		{"MetaLarge", testMetaLarge},
		{"WalkMeta", testWalkMeta},
		{"LearnGen", testLearnGen},
		{"SetModel", testSetModel},
		{"DropFeatures", testDropFeatures},
		{"ExportImport", testExportImport},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			tc.fn(t, s)
		})
	}
}

func digest(n int) classifier.Digest {
	var d classifier.Digest
	copy(d[:], fmt.Sprintf("message-%d", n))
	return d
}

func lookup(t *testing.T, s classifier.Store, toks ...string) (classifier.Totals, []classifier.Counts) {
	t.Helper()
	tot, c, err := s.Lookup(context.Background(), toks)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if len(c) != len(toks) {
		t.Fatalf("lookup returned %d counts for %d tokens", len(c), len(toks))
	}
	return tot, c
}

func learn(t *testing.T, s classifier.Store, ops ...classifier.LearnOp) []classifier.Outcome {
	t.Helper()
	out, err := s.Learn(context.Background(), ops)
	if err != nil {
		t.Fatalf("learn: %v", err)
	}
	if len(out) != len(ops) {
		t.Fatalf("learn returned %d outcomes for %d ops", len(out), len(ops))
	}
	return out
}

func testLookupEmpty(t *testing.T, s classifier.Store) {
	tot, c := lookup(t, s, "a", "b")
	if tot != (classifier.Totals{}) || c[0] != (classifier.Counts{}) || c[1] != (classifier.Counts{}) {
		t.Errorf("empty store: totals %+v counts %+v, want zeros", tot, c)
	}
	tot, c = lookup(t, s)
	if tot != (classifier.Totals{}) || len(c) != 0 {
		t.Errorf("no tokens: %+v %+v", tot, c)
	}
}

// checkLearn checks a learn op's outcome, the totals after it, and that
// each of toks is counted spam/ham times.
func checkLearn(t *testing.T, s classifier.Store, step string, out, want classifier.Outcome, toks []string, wantTot classifier.Totals, spam, ham uint32) {
	t.Helper()
	if out != want {
		t.Errorf("%s: outcome %v, want %v", step, out, want)
	}
	tot, c := lookup(t, s, toks...)
	if tot != wantTot {
		t.Errorf("%s: totals %+v, want %+v", step, tot, wantTot)
	}
	for i, cnt := range c {
		if cnt.Spam != spam || cnt.Ham != ham {
			t.Errorf("%s: %s counts %d/%d, want %d/%d", step, toks[i], cnt.Spam, cnt.Ham, spam, ham)
		}
	}
}

// A store whose dialect changed after the learner read it (a bogofilter
// word list imported into it while it was empty) refuses the learner's
// ops, of the other dialect, and changes nothing: their tokens mean
// nothing to the store's tokenizer. Ops of its dialect, and ops that
// name none, are learned.
func testLearnDialect(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	toks := []string{"cheap", "pills"}
	op := func(n int, d classifier.Dialect) classifier.LearnOp {
		return classifier.LearnOp{Digest: digest(n), Class: classifier.Spam, Tokens: toks, Date: 20240101, Dialect: d}
	}
	out := learn(t, s, op(1, classifier.DialectSluice))
	checkLearn(t, s, "sluice op, sluice store", out[0], classifier.Learned, toks, classifier.Totals{Spam: 1}, 1, 0)
	if err := s.SetMeta(ctx, classifier.MetaDialect, string(classifier.DialectBogofilter)); err != nil {
		t.Fatal(err)
	}
	for _, ops := range [][]classifier.LearnOp{
		{op(2, classifier.DialectSluice)},
		{op(3, classifier.DialectSluice), op(4, classifier.DialectSluice)},
		{{Digest: digest(1), Class: classifier.Spam, Unlearn: true, Tokens: toks, Dialect: classifier.DialectSluice}},
	} {
		if _, err := s.Learn(ctx, ops); !errors.Is(err, classifier.ErrDialect) {
			t.Errorf("learn of sluice tokens into a bogofilter store: error %v, want ErrDialect", err)
		}
		tot, c := lookup(t, s, toks...)
		if tot != (classifier.Totals{Spam: 1}) || c[0].Spam != 1 || c[1].Spam != 1 {
			t.Fatalf("after a refused learn: totals %+v, counts %+v; want those of the first message alone", tot, c)
		}
	}
	out = learn(t, s, op(5, classifier.DialectBogofilter), op(6, ""))
	if out[0] != classifier.Learned || out[1] != classifier.Learned {
		t.Errorf("ops of the store's dialect, or of none: outcomes %v, want learned", out)
	}
}

// An op with NoMove learns a new message and leaves one learned in the
// other class where it is, counts, totals and features included; without
// NoMove the same op moves it.
func testLearnNoMove(t *testing.T, s classifier.Store) {
	toks := []string{"cheap", "pills"}
	f1, f2 := blob(31, 200), blob(32, 80)
	op := func(class classifier.Class, noMove bool, f []byte) classifier.LearnOp {
		return classifier.LearnOp{Digest: digest(1), Class: class, NoMove: noMove, Tokens: toks, Date: 20240102, Features: f}
	}
	steps := []struct {
		name      string
		op        classifier.LearnOp
		want      classifier.Outcome
		spam, ham uint32
		tot       classifier.Totals
		rec       classifier.DigestClass
	}{
		{"new message", op(classifier.Ham, true, f1), classifier.Learned, 0, 1, classifier.Totals{Ham: 1},
			classifier.DigestClass{Digest: digest(1), Class: classifier.Ham, Features: f1}},
		{"same class", op(classifier.Ham, true, f1), classifier.AlreadyLearned, 0, 1, classifier.Totals{Ham: 1},
			classifier.DigestClass{Digest: digest(1), Class: classifier.Ham, Features: f1}},
		{"other class", op(classifier.Spam, true, f2), classifier.NotMoved, 0, 1, classifier.Totals{Ham: 1},
			classifier.DigestClass{Digest: digest(1), Class: classifier.Ham, Features: f1}},
		{"other class, moved", op(classifier.Spam, false, f2), classifier.Moved, 1, 0, classifier.Totals{Spam: 1},
			classifier.DigestClass{Digest: digest(1), Class: classifier.Spam, Features: f2}},
	}
	for _, st := range steps {
		checkLearn(t, s, st.name, learn(t, s, st.op)[0], st.want, toks, st.tot, st.spam, st.ham)
		checkDigests(t, s, st.name, map[classifier.Digest]classifier.DigestClass{digest(1): st.rec})
	}
	// An unlearn is not changed by NoMove.
	un := op(classifier.Spam, true, nil)
	un.Unlearn = true
	if out := learn(t, s, un); out[0] != classifier.Unlearned {
		t.Errorf("unlearn with NoMove: outcome %v, want %v", out[0], classifier.Unlearned)
	}
}

func testLearnOutcomes(t *testing.T, s classifier.Store) {
	toks := []string{"cheap", "pills", "subj:offer"}
	op := classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: toks, Date: 20240102}
	steps := []struct {
		name      string
		class     classifier.Class
		unlearn   bool
		want      classifier.Outcome
		spam, ham uint32 // counts of each token afterwards
		tot       classifier.Totals
	}{
		{"learn spam", classifier.Spam, false, classifier.Learned, 1, 0, classifier.Totals{Spam: 1}},
		{"learn spam again", classifier.Spam, false, classifier.AlreadyLearned, 1, 0, classifier.Totals{Spam: 1}},
		{"unlearn as ham", classifier.Ham, true, classifier.NotLearned, 1, 0, classifier.Totals{Spam: 1}},
		{"move to ham", classifier.Ham, false, classifier.Moved, 0, 1, classifier.Totals{Ham: 1}},
		{"learn ham again", classifier.Ham, false, classifier.AlreadyLearned, 0, 1, classifier.Totals{Ham: 1}},
		{"move back to spam", classifier.Spam, false, classifier.Moved, 1, 0, classifier.Totals{Spam: 1}},
		{"unlearn spam", classifier.Spam, true, classifier.Unlearned, 0, 0, classifier.Totals{}},
		{"unlearn spam again", classifier.Spam, true, classifier.NotLearned, 0, 0, classifier.Totals{}},
		{"learn ham after unlearn", classifier.Ham, false, classifier.Learned, 0, 1, classifier.Totals{Ham: 1}},
	}
	for _, st := range steps {
		op.Class, op.Unlearn = st.class, st.unlearn
		checkLearn(t, s, st.name, learn(t, s, op)[0], st.want, toks, st.tot, st.spam, st.ham)
	}
	// Unlearning deletes tokens whose counts reach zero, learning other
	// messages leaves them alone.
	learn(t, s, classifier.LearnOp{Digest: digest(2), Class: classifier.Spam, Tokens: []string{"cheap", "other"}, Date: 20240102})
	_, c := lookup(t, s, "cheap", "other", "pills")
	if c[0].Spam != 1 || c[0].Ham != 1 || c[1].Spam != 1 || c[2].Spam != 0 || c[2].Ham != 1 {
		t.Errorf("after second message: %+v", c)
	}
	learn(t, s, classifier.LearnOp{Digest: digest(2), Class: classifier.Spam, Unlearn: true, Tokens: []string{"cheap", "other"}})
	var seen []string
	if err := s.Walk(context.Background(), func(r classifier.Record) error { seen = append(seen, r.Token); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []string{"cheap", "pills", "subj:offer"}) {
		t.Errorf("tokens after unlearn: %q, want the first message's", seen)
	}
	var digs []classifier.DigestClass
	if err := s.WalkDigests(context.Background(), func(d classifier.DigestClass) error { digs = append(digs, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(digs) != 1 || digs[0].Digest != digest(1) || digs[0].Class != classifier.Ham {
		t.Errorf("digests %+v, want message 1 as ham", digs)
	}
	if _, err := s.Learn(context.Background(), []classifier.LearnOp{{Digest: digest(3), Class: classifier.None}}); err == nil {
		t.Error("learn with class None: no error")
	}
}

func testBatchSameDigest(t *testing.T, s classifier.Store) {
	a := classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: []string{"x", "y"}, Date: 20240101}
	b := a
	b.Class = classifier.Ham
	c := a
	c.Digest = digest(2)
	out := learn(t, s, a, a, b, c)
	want := []classifier.Outcome{classifier.Learned, classifier.AlreadyLearned, classifier.Moved, classifier.Learned}
	if !slices.Equal(out, want) {
		t.Errorf("outcomes %v, want %v", out, want)
	}
	tot, cnt := lookup(t, s, "x", "y")
	if tot != (classifier.Totals{Spam: 1, Ham: 1}) {
		t.Errorf("totals %+v, want 1/1", tot)
	}
	for _, c := range cnt {
		if c.Spam != 1 || c.Ham != 1 {
			t.Errorf("counts %+v, want 1/1", c)
		}
	}
}

// A batch's ops change the counts one after the other, each clamped at
// zero: after a prune took a token away, a batch that moves a message out
// of spam and learns another as spam leaves the token at spam 1, as the
// two ops in separate batches would (the summed change, 0, would lose the
// second message's count).
func testBatchClampsEachOp(t *testing.T, s classifier.Store) {
	old := classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: []string{"x", "y"}, Date: 20200101}
	gone := classifier.LearnOp{Digest: digest(2), Class: classifier.Spam, Tokens: []string{"z"}, Date: 20200101}
	learn(t, s, old, gone)
	if n, err := s.Prune(context.Background(), classifier.PruneOptions{Before: 20240101}); err != nil || n != 3 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	moved := old
	moved.Class, moved.Date = classifier.Ham, 20250101
	fresh := classifier.LearnOp{Digest: digest(3), Class: classifier.Spam, Tokens: []string{"x"}, Date: 20250101}
	// Unlearning a message whose token was pruned, then learning another
	// with that token: spam 1, not nothing.
	unlearn := gone
	unlearn.Unlearn = true
	again := classifier.LearnOp{Digest: digest(4), Class: classifier.Spam, Tokens: []string{"z"}, Date: 20250101}
	out := learn(t, s, moved, fresh, unlearn, again)
	want := []classifier.Outcome{classifier.Moved, classifier.Learned, classifier.Unlearned, classifier.Learned}
	if !slices.Equal(out, want) {
		t.Errorf("outcomes %v, want %v", out, want)
	}
	_, cnt := lookup(t, s, "x", "y", "z")
	for i, want := range []classifier.Counts{{Spam: 1, Ham: 1}, {Ham: 1}, {Spam: 1}} {
		if got := cnt[i]; got.Spam != want.Spam || got.Ham != want.Ham {
			t.Errorf("token %d: %+v, want spam %d ham %d", i, got, want.Spam, want.Ham)
		}
	}
}

// A batch's ops are clamped one after the other at the top of a count
// too: a token at the largest count (an import of a huge word list) stays
// there when a message is learned, and a batch that learns the message
// and unlearns it again leaves the token one below, as the two ops in
// separate batches do. The summed change, 0, left it at the top.
func testBatchClampsEachOpAtMax(t *testing.T, s classifier.Store) {
	const top = 1<<32 - 1
	err := s.Add(context.Background(), classifier.Batch{Records: []classifier.Record{
		{Token: "x", Counts: classifier.Counts{Spam: top, Ham: top, LastSeen: 20240101}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	spam := classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: []string{"x"}, Date: 20240102}
	unspam := spam
	unspam.Unlearn = true
	ham := classifier.LearnOp{Digest: digest(2), Class: classifier.Ham, Tokens: []string{"x"}, Date: 20240102}
	unham := ham
	unham.Unlearn = true
	out := learn(t, s, spam, unspam, ham, unham)
	want := []classifier.Outcome{classifier.Learned, classifier.Unlearned, classifier.Learned, classifier.Unlearned}
	if !slices.Equal(out, want) {
		t.Errorf("outcomes %v, want %v", out, want)
	}
	_, cnt := lookup(t, s, "x")
	if cnt[0].Spam != top-1 || cnt[0].Ham != top-1 {
		t.Errorf("counts %+v, want spam and ham %d, as in separate batches", cnt[0], uint32(top-1))
	}
}

func testLastSeen(t *testing.T, s classifier.Store) {
	learn(t, s, classifier.LearnOp{Digest: digest(1), Class: classifier.Ham, Tokens: []string{"t"}, Date: 20240105})
	learn(t, s, classifier.LearnOp{Digest: digest(2), Class: classifier.Ham, Tokens: []string{"t"}, Date: 20240103})
	_, c := lookup(t, s, "t")
	if c[0].LastSeen != 20240105 || c[0].Ham != 2 {
		t.Errorf("counts %+v, want ham 2 last seen 20240105 (the later day wins)", c[0])
	}
	learn(t, s, classifier.LearnOp{Digest: digest(3), Class: classifier.Spam, Tokens: []string{"t"}, Date: 20240210})
	_, c = lookup(t, s, "t")
	if c[0].LastSeen != 20240210 {
		t.Errorf("last seen %v, want 20240210", c[0].LastSeen)
	}
}

func testAddWalkStats(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	b := classifier.Batch{
		Totals: classifier.Totals{Spam: 10, Ham: 20},
		Records: []classifier.Record{
			{Token: "zeta", Counts: classifier.Counts{Spam: 1, LastSeen: 20230101}},
			{Token: "alpha", Counts: classifier.Counts{Spam: 3, Ham: 4, LastSeen: 20240101}},
			{Token: "with space", Counts: classifier.Counts{Ham: 2, LastSeen: 20220101}},
		},
		Digests: []classifier.DigestClass{{Digest: digest(7), Class: classifier.Spam}},
	}
	if err := s.Add(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Adding again sums counts, keeps the later date.
	b2 := classifier.Batch{Records: []classifier.Record{{Token: "alpha", Counts: classifier.Counts{Spam: 1, LastSeen: 20200101}}}}
	if err := s.Add(ctx, b2); err != nil {
		t.Fatal(err)
	}
	var recs []classifier.Record
	if err := s.Walk(ctx, func(r classifier.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []classifier.Record{
		{Token: "alpha", Counts: classifier.Counts{Spam: 4, Ham: 4, LastSeen: 20240101}},
		{Token: "with space", Counts: classifier.Counts{Ham: 2, LastSeen: 20220101}},
		{Token: "zeta", Counts: classifier.Counts{Spam: 1, LastSeen: 20230101}},
	}
	if !slices.Equal(recs, want) {
		t.Errorf("walk:\n got %+v\nwant %+v", recs, want)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Totals != (classifier.Totals{Spam: 10, Ham: 20}) || st.Tokens != 3 || st.Digests != 1 ||
		st.Oldest != 20220101 || st.Newest != 20240101 || st.Singular != 1 {
		t.Errorf("stats %+v", st)
	}
	// Walk stops at the first error and returns it.
	stop := fmt.Errorf("stop")
	n := 0
	err = s.Walk(ctx, func(classifier.Record) error { n++; return stop })
	if err == nil || n != 1 {
		t.Errorf("walk with failing fn: err %v after %d calls, want the error after 1", err, n)
	}
}

func testPrune(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	err := s.Add(ctx, classifier.Batch{Records: []classifier.Record{
		{Token: "old-rare", Counts: classifier.Counts{Spam: 1, LastSeen: 20200101}},
		{Token: "old-common", Counts: classifier.Counts{Spam: 50, Ham: 50, LastSeen: 20200101}},
		{Token: "new-rare", Counts: classifier.Counts{Ham: 1, LastSeen: 20250101}},
		{Token: "new-common", Counts: classifier.Counts{Ham: 9, LastSeen: 20250101}},
		// Last seen on an unknown day (a word list imported without
		// dates): never old, and rare only by its counts.
		{Token: "undated", Counts: classifier.Counts{Spam: 3, Ham: 1}},
		// Counts whose sum passes 2^32 are not rare.
		{Token: "huge", Counts: classifier.Counts{Spam: 4294967295, Ham: 1, LastSeen: 20250101}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	remaining := func() []string {
		var out []string
		if err := s.Walk(ctx, func(r classifier.Record) error { out = append(out, r.Token); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if n, err := s.Prune(ctx, classifier.PruneOptions{}); err != nil || n != 0 {
		t.Errorf("prune with no criteria: %d, %v; want 0, nil", n, err)
	}
	if n, err := s.Prune(ctx, classifier.PruneOptions{Before: 20240101, MaxCount: 1}); err != nil || n != 1 {
		t.Errorf("prune old and rare: %d, %v; want 1", n, err)
	}
	if got := remaining(); !slices.Equal(got, []string{"huge", "new-common", "new-rare", "old-common", "undated"}) {
		t.Errorf("after old-and-rare prune: %q", got)
	}
	if n, err := s.Prune(ctx, classifier.PruneOptions{MaxCount: 1}); err != nil || n != 1 {
		t.Errorf("prune rare: %d, %v; want 1", n, err)
	}
	if n, err := s.Prune(ctx, classifier.PruneOptions{Before: 20240101}); err != nil || n != 1 {
		t.Errorf("prune old: %d, %v; want 1", n, err)
	}
	if got := remaining(); !slices.Equal(got, []string{"huge", "new-common", "undated"}) {
		t.Errorf("after prunes: %q", got)
	}
	if n, err := s.Prune(ctx, classifier.PruneOptions{MaxCount: 4}); err != nil || n != 1 {
		t.Errorf("prune by count: %d, %v; want 1 (undated)", n, err)
	}
	if got := remaining(); !slices.Equal(got, []string{"huge", "new-common"}) {
		t.Errorf("after the prune by count: %q", got)
	}
}

func testMeta(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	if v, err := s.Meta(ctx, "k"); err != nil || v != "" {
		t.Errorf("unset meta: %q, %v", v, err)
	}
	if err := s.SetMeta(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Meta(ctx, "k"); err != nil || v != "v1" {
		t.Errorf("meta: %q, %v; want v1", v, err)
	}
	if err := s.SetMeta(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Meta(ctx, "k"); err != nil || v != "" {
		t.Errorf("cleared meta: %q, %v", v, err)
	}
}

// testWalkMeta: the keys with the prefix, in byte order, none other;
// glob and pattern characters in a key are themselves.
func testWalkMeta(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	set := map[string]string{
		"imported:b": "2", "imported:a": "1", "imported:*": "star", "imported:[x]": "brackets",
		"imported": "not under the prefix", "importe:d": "other", "x:imported:c": "other", "dialect": "sluice",
	}
	for k, v := range set {
		if err := s.SetMeta(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	walk := func(prefix string) []string {
		t.Helper()
		var got []string
		err := s.WalkMeta(ctx, prefix, func(k, v string) error {
			got = append(got, k+"="+v)
			return nil
		})
		if err != nil {
			t.Fatalf("walk meta %q: %v", prefix, err)
		}
		return got
	}
	if got, want := walk("imported:"), []string{"imported:*=star", "imported:[x]=brackets", "imported:a=1", "imported:b=2"}; !slices.Equal(got, want) {
		t.Errorf("walk meta: %q, want %q", got, want)
	}
	if got, want := walk("imported:["), []string{"imported:[x]=brackets"}; !slices.Equal(got, want) {
		t.Errorf("walk meta of a glob character: %q, want %q", got, want)
	}
	if err := s.SetMeta(ctx, "imported:a", ""); err != nil {
		t.Fatal(err)
	}
	if got := walk("imported:a"); len(got) != 0 {
		t.Errorf("walk meta after the key was cleared: %q", got)
	}
	stop := errors.New("stop")
	n := 0
	err := s.WalkMeta(ctx, "imported:", func(string, string) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("walk meta stopped by fn: %d calls, %v", n, err)
	}
}

// blob returns n bytes (n >= 16) for features or a Meta value: the bytes
// that text handling mangles first (NUL, CR, LF, space, a Lua pattern
// character, invalid UTF-8), then pseudo-random ones from seed, so that
// blobs of different seeds differ and a store must keep each exactly.
func blob(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, "\x00\r\n %\xff\xfe\x80\"'\\")
	return b
}

// featureBlob returns the encoding of n distinct features, which
// classifier.DecodeFeatures reads back (blob's bytes need not decode).
func featureBlob(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0xfea7))
	seen := map[uint32]bool{}
	var f []uint32
	for len(f) < n {
		v := r.Uint32N(1 << 20)
		if !seen[v] {
			seen[v] = true
			f = append(f, v)
		}
	}
	slices.Sort(f)
	return classifier.EncodeFeatures(f)
}

// checkDigests compares what WalkDigests returns with want, features byte
// for byte: a digest without features must have nil ones.
func checkDigests(t *testing.T, s classifier.Store, step string, want map[classifier.Digest]classifier.DigestClass) {
	t.Helper()
	got := map[classifier.Digest]classifier.DigestClass{}
	var order []classifier.Digest
	err := s.WalkDigests(context.Background(), func(d classifier.DigestClass) error {
		if _, dup := got[d.Digest]; dup {
			t.Errorf("%s: digest %s walked twice", step, d.Digest)
		}
		got[d.Digest] = d
		order = append(order, d.Digest)
		return nil
	})
	if err != nil {
		t.Fatalf("%s: walk digests: %v", step, err)
	}
	if !slices.IsSortedFunc(order, func(a, b classifier.Digest) int { return bytes.Compare(a[:], b[:]) }) {
		t.Errorf("%s: digests not walked in byte order", step)
	}
	for d, w := range want {
		g, ok := got[d]
		switch {
		case !ok:
			t.Errorf("%s: digest %s missing, want it as %v", step, d, w.Class)
		case g.Class != w.Class:
			t.Errorf("%s: digest %s is %v, want %v", step, d, g.Class, w.Class)
		case w.Features == nil && g.Features != nil:
			t.Errorf("%s: digest %s has %d bytes of features, want none (nil)", step, d, len(g.Features))
		case !bytes.Equal(g.Features, w.Features):
			t.Errorf("%s: digest %s features differ: got %d bytes %.16q..., want %d bytes %.16q...",
				step, d, len(g.Features), g.Features, len(w.Features), w.Features)
		}
	}
	for d, g := range got {
		if _, ok := want[d]; !ok {
			t.Errorf("%s: unexpected digest %s (%v)", step, d, g.Class)
		}
	}
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("%s: stats: %v", step, err)
	}
	if st.Digests != len(want) {
		t.Errorf("%s: stats count %d digests, want %d", step, st.Digests, len(want))
	}
	withFeatures := 0
	for _, w := range want {
		if len(w.Features) > 0 {
			withFeatures++
		}
	}
	if st.Features != withFeatures {
		t.Errorf("%s: stats count %d digests with features, want %d", step, st.Features, withFeatures)
	}
}

// Features are kept with the learned digest by the rules of the bbolt
// store's digest values, step by step and within one batch.
func testFeatures(t *testing.T, s classifier.Store) {
	const (
		spam, ham = classifier.Spam, classifier.Ham
	)
	f1, f2, f3, f4 := blob(1, 300), blob(2, 40), blob(3, 12000), blob(4, 6000)
	toks := []string{"feat-a", "feat-b"}
	want := map[classifier.Digest]classifier.DigestClass{}
	steps := []struct {
		name     string
		msg      int
		class    classifier.Class
		unlearn  bool
		features []byte
		outcome  classifier.Outcome
		// What the store records for msg afterwards: class None for
		// nothing, features nil for none.
		recClass    classifier.Class
		recFeatures []byte
	}{
		{"learn with features", 1, spam, false, f1, classifier.Learned, spam, f1},
		{"learn without features", 2, spam, false, nil, classifier.Learned, spam, nil},
		{"learn another without features", 3, ham, false, nil, classifier.Learned, ham, nil},
		{"again with other features", 1, spam, false, f2, classifier.AlreadyLearned, spam, f2},
		{"again with the same features", 1, spam, false, f2, classifier.AlreadyLearned, spam, f2},
		{"again without features", 1, spam, false, nil, classifier.AlreadyLearned, spam, f2},
		{"again, empty non-nil features", 1, spam, false, []byte{}, classifier.AlreadyLearned, spam, f2},
		{"again, gaining features", 2, spam, false, f3, classifier.AlreadyLearned, spam, f3},
		{"unlearn in the other class", 3, spam, true, f2, classifier.NotLearned, ham, nil},
		{"unlearn in the other class, with features", 1, ham, true, f4, classifier.NotLearned, spam, f2},
		{"move with features", 1, ham, false, f4, classifier.Moved, ham, f4},
		{"move without features", 1, spam, false, nil, classifier.Moved, spam, f4},
		{"move, neither has features", 3, spam, false, nil, classifier.Moved, spam, nil},
		{"move, gaining features", 3, ham, false, f2, classifier.Moved, ham, f2},
		{"unlearn", 1, spam, true, f4, classifier.Unlearned, classifier.None, nil},
		{"learn again after unlearn, without features", 1, ham, false, nil, classifier.Learned, ham, nil},
		{"unlearn without features", 2, spam, true, nil, classifier.Unlearned, classifier.None, nil},
		{"learn again after unlearn, with features", 2, ham, false, f2, classifier.Learned, ham, f2},
		{"unlearn an unknown message", 9, spam, true, f1, classifier.NotLearned, classifier.None, nil},
	}
	for _, st := range steps {
		out := learn(t, s, classifier.LearnOp{
			Digest: digest(st.msg), Class: st.class, Unlearn: st.unlearn, Tokens: toks, Date: 20240301, Features: st.features,
		})
		if out[0] != st.outcome {
			t.Errorf("%s: outcome %v, want %v", st.name, out[0], st.outcome)
		}
		if st.recClass == classifier.None {
			delete(want, digest(st.msg))
		} else {
			want[digest(st.msg)] = classifier.DigestClass{Digest: digest(st.msg), Class: st.recClass, Features: st.recFeatures}
		}
		checkDigests(t, s, st.name, want)
	}
	// Within one batch each op sees the digests the ops before it left.
	out := learn(t, s,
		classifier.LearnOp{Digest: digest(4), Class: spam, Tokens: toks, Date: 20240302, Features: f2},
		classifier.LearnOp{Digest: digest(4), Class: ham, Tokens: toks, Date: 20240302},
		classifier.LearnOp{Digest: digest(5), Class: ham, Tokens: toks, Date: 20240302},
		classifier.LearnOp{Digest: digest(5), Class: ham, Tokens: toks, Date: 20240302, Features: f1},
		classifier.LearnOp{Digest: digest(6), Class: spam, Tokens: toks, Date: 20240302, Features: f3},
		classifier.LearnOp{Digest: digest(6), Class: spam, Unlearn: true, Tokens: toks, Date: 20240302},
		classifier.LearnOp{Digest: digest(6), Class: spam, Tokens: toks, Date: 20240302},
	)
	wantOut := []classifier.Outcome{classifier.Learned, classifier.Moved, classifier.Learned, classifier.AlreadyLearned,
		classifier.Learned, classifier.Unlearned, classifier.Learned}
	if !slices.Equal(out, wantOut) {
		t.Errorf("batch: outcomes %v, want %v", out, wantOut)
	}
	want[digest(4)] = classifier.DigestClass{Digest: digest(4), Class: ham, Features: f2}
	want[digest(5)] = classifier.DigestClass{Digest: digest(5), Class: ham, Features: f1}
	want[digest(6)] = classifier.DigestClass{Digest: digest(6), Class: spam}
	checkDigests(t, s, "batch", want)
}

// Add sets a digest's class and features, replacing what the store had,
// features included, and keeps many large features exactly.
func testFeaturesAdd(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	f1, f2, f3 := blob(21, 700), blob(22, 9000), blob(23, 64)
	learn(t, s,
		classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: []string{"x"}, Date: 20240101, Features: f1},
		classifier.LearnOp{Digest: digest(2), Class: classifier.Ham, Tokens: []string{"x"}, Date: 20240101, Features: f1},
	)
	want := map[classifier.Digest]classifier.DigestClass{
		digest(1): {Digest: digest(1), Class: classifier.Ham, Features: f2},  // replaced
		digest(2): {Digest: digest(2), Class: classifier.Ham},                // features dropped
		digest(3): {Digest: digest(3), Class: classifier.Spam, Features: f3}, // new
		digest(4): {Digest: digest(4), Class: classifier.Spam},               // new, none
		digest(5): {Digest: digest(5), Class: classifier.Ham},                // given twice, the last wins
		digest(6): {Digest: digest(6), Class: classifier.Spam, Features: f1}, // given twice, the last wins
	}
	b := classifier.Batch{Digests: []classifier.DigestClass{
		want[digest(1)], want[digest(2)], want[digest(3)], want[digest(4)],
		{Digest: digest(5), Class: classifier.Spam, Features: f2}, want[digest(5)],
		{Digest: digest(6), Class: classifier.Ham}, want[digest(6)],
	}}
	// More features than one write of a network store may carry at once
	// (megabytes), each different.
	for i := range 400 {
		d := classifier.DigestClass{Digest: digest(1000 + i), Class: classifier.Class(1 + i%2), Features: blob(uint64(1000+i), 8000+i)}
		b.Digests = append(b.Digests, d)
		want[d.Digest] = d
	}
	if err := s.Add(ctx, b); err != nil {
		t.Fatal(err)
	}
	checkDigests(t, s, "add", want)
	// Learning keeps to the same rules after Add: no features yet, so
	// learning again in the class gives them.
	out := learn(t, s, classifier.LearnOp{Digest: digest(2), Class: classifier.Ham, Tokens: []string{"x"}, Date: 20240101, Features: f3})
	if out[0] != classifier.AlreadyLearned {
		t.Errorf("learn after add: %v, want already learned", out[0])
	}
	want[digest(2)] = classifier.DigestClass{Digest: digest(2), Class: classifier.Ham, Features: f3}
	checkDigests(t, s, "learn after add", want)
}

// A large binary Meta value (the n-gram model, MetaModel, is about 4 MB
// of float32s) comes back byte for byte, and can be replaced and cleared.
func testMetaLarge(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	if err := s.SetMeta(ctx, "small", "v"); err != nil {
		t.Fatal(err)
	}
	for i, v := range [][]byte{blob(31, 4<<20), blob(32, 4<<20+3)} {
		if err := s.SetMeta(ctx, classifier.MetaModel, string(v)); err != nil {
			t.Fatalf("value %d: set: %v", i, err)
		}
		got, err := s.Meta(ctx, classifier.MetaModel)
		if err != nil {
			t.Fatalf("value %d: get: %v", i, err)
		}
		if got != string(v) {
			t.Errorf("value %d: got %d bytes back for %d, equal up to byte %d", i, len(got), len(v), commonPrefix(got, string(v)))
		}
	}
	if v, err := s.Meta(ctx, "small"); err != nil || v != "v" {
		t.Errorf("other key after the large value: %q, %v", v, err)
	}
	// The store goes on working with the large value in it.
	learn(t, s, classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: []string{"m"}, Date: 20240101})
	if tot, c := lookup(t, s, "m"); tot.Spam != 1 || c[0].Spam != 1 {
		t.Errorf("lookup with a large meta value: totals %+v counts %+v", tot, c[0])
	}
	if err := s.SetMeta(ctx, classifier.MetaModel, ""); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Meta(ctx, classifier.MetaModel); err != nil || v != "" {
		t.Errorf("cleared large value: %d bytes, %v", len(v), err)
	}
}

// learnGen returns the learn generation and the digests WalkLearned
// walks.
func learnGen(t *testing.T, s classifier.Store, step string) (uint64, int) {
	t.Helper()
	n := 0
	g, err := s.WalkLearned(context.Background(), func(classifier.DigestClass) error { n++; return nil })
	if err != nil {
		t.Fatalf("%s: walk learned: %v", step, err)
	}
	return g, n
}

// Every change of the learned digests or of their features raises the
// learn generation that WalkLearned returns; nothing lowers it.
func testLearnGen(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	f1, f2 := blob(51, 200), blob(52, 300)
	op := func(msg int, class classifier.Class, unlearn bool, features []byte) classifier.LearnOp {
		return classifier.LearnOp{Digest: digest(msg), Class: class, Unlearn: unlearn, Tokens: []string{"g"}, Date: 20240401, Features: features}
	}
	prev, n := learnGen(t, s, "empty store")
	if prev != 0 || n != 0 {
		t.Errorf("empty store: generation %d, %d digests; want 0, 0", prev, n)
	}
	steps := []struct {
		name    string
		op      classifier.LearnOp
		add     bool // an Add of digest 9 instead of op
		rises   bool
		digests int
	}{
		{"learn", op(1, classifier.Spam, false, f1), false, true, 1},
		{"learn without features", op(2, classifier.Ham, false, nil), false, true, 2},
		{"learn again, same features", op(1, classifier.Spam, false, f1), false, false, 2},
		{"learn again, no features", op(1, classifier.Spam, false, nil), false, false, 2},
		{"learn again, other features", op(1, classifier.Spam, false, f2), false, true, 2},
		{"unlearn in the other class", op(1, classifier.Ham, true, f1), false, false, 2},
		{"move", op(1, classifier.Ham, false, nil), false, true, 2},
		{"unlearn", op(2, classifier.Ham, true, nil), false, true, 1},
		{"unlearn an unknown message", op(3, classifier.Ham, true, nil), false, false, 1},
		{"add digests", classifier.LearnOp{}, true, true, 2},
	}
	for _, st := range steps {
		if !st.add {
			learn(t, s, st.op)
		} else if err := s.Add(ctx, classifier.Batch{Digests: []classifier.DigestClass{{Digest: digest(9), Class: classifier.Spam, Features: f1}}}); err != nil {
			t.Fatal(err)
		}
		g, n := learnGen(t, s, st.name)
		switch {
		case g < prev:
			t.Errorf("%s: generation went back from %d to %d", st.name, prev, g)
		case st.rises && g == prev:
			t.Errorf("%s: generation stayed %d: a refit that read before could replace the model of one that read after", st.name, g)
		}
		if n != st.digests {
			t.Errorf("%s: walked %d digests, want %d", st.name, n, st.digests)
		}
		prev = g
	}
	// Counts alone (Add of records, Prune) are no concern of the model;
	// they may leave the generation, but not lower it.
	if err := s.Add(ctx, classifier.Batch{Records: []classifier.Record{{Token: "r", Counts: classifier.Counts{Spam: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, classifier.PruneOptions{MaxCount: 1}); err != nil {
		t.Fatal(err)
	}
	if g, _ := learnGen(t, s, "add records, prune"); g < prev {
		t.Errorf("add records, prune: generation went back from %d to %d", prev, g)
	}
}

// SetModel writes the model and its id together, and refuses to replace
// a model fitted at a later learn generation: of two refits at once, the
// model of the later read stays, whichever writes last.
func testSetModel(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	model := func(step, wantModel, wantID string) {
		t.Helper()
		m, err1 := s.Meta(ctx, classifier.MetaModel)
		id, err2 := s.Meta(ctx, classifier.MetaModelID)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v, %v", step, err1, err2)
		}
		if m != wantModel || id != wantID {
			t.Errorf("%s: model %.20q with id %q, want %.20q with id %q", step, m, id, wantModel, wantID)
		}
	}
	set := func(step string, gen uint64, m, id string, want bool) {
		t.Helper()
		ok, err := s.SetModel(ctx, gen, m, id)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if ok != want {
			t.Errorf("%s: stored %v, want %v", step, ok, want)
		}
	}
	// An empty store takes a model of generation 0.
	g0, _ := learnGen(t, s, "empty store")
	set("first model", g0, "m0", "id0", true)
	model("first model", "m0", "id0")
	learn(t, s, classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: []string{"x"}, Date: 20240401, Features: blob(61, 100)})
	g1, _ := learnGen(t, s, "after a learn")
	if g1 <= g0 {
		t.Fatalf("learn generation %d after a learn, %d before", g1, g0)
	}
	// Refit B read after the learn and writes first; refit A read before
	// it and writes last: B's model stays.
	set("later read", g1, "mB", "idB", true)
	set("earlier read, written last", g0, "mA", "idA", false)
	model("after both", "mB", "idB")
	// The same generation again replaces it (the same messages).
	set("same generation", g1, "mB2", "idB2", true)
	model("same generation", "mB2", "idB2")
	// Removing the model follows the same rule.
	set("remove, earlier read", g0, "", "", false)
	model("remove, earlier read", "mB2", "idB2")
	learn(t, s, classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Unlearn: true, Tokens: []string{"x"}, Date: 20240401})
	g2, _ := learnGen(t, s, "after an unlearn")
	set("remove", g2, "", "", true)
	model("removed", "", "")
	set("earlier read after the removal", g1, "mC", "idC", false)
	model("earlier read after the removal", "", "")
	// A model of 4 MB of any bytes comes back exactly.
	big := string(blob(62, 4<<20))
	set("large model", g2, big, "idBig", true)
	if m, err := s.Meta(ctx, classifier.MetaModel); err != nil || m != big {
		t.Errorf("large model: %d bytes back for %d, equal up to byte %d, %v", len(m), len(big), commonPrefix(m, big), err)
	}
	if id, err := s.Meta(ctx, classifier.MetaModelID); err != nil || id != "idBig" {
		t.Errorf("large model: id %q, %v", id, err)
	}
}

// DropFeatures clears the features of the digests given that are learned
// and have some, and nothing else: the digests stay learned in their
// class, the counts stay, and the learn generation rises with a change
// and only then. A list longer than a store's batch is dropped whole.
func testDropFeatures(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	f1, f2 := featureBlob(71, 300), featureBlob(72, 400)
	toks := []string{"d1", "shared"}
	learn(t, s,
		classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: toks, Date: 20240401, Features: f1},
		classifier.LearnOp{Digest: digest(2), Class: classifier.Ham, Tokens: []string{"d2", "shared"}, Date: 20240401, Features: f2},
		classifier.LearnOp{Digest: digest(3), Class: classifier.Spam, Tokens: []string{"d3"}, Date: 20240401},
	)
	drop := func(step string, digests []classifier.Digest, want int, rises bool) {
		t.Helper()
		g0, n0 := learnGen(t, s, step+": before")
		n, err := s.DropFeatures(ctx, digests)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if n != want {
			t.Errorf("%s: dropped %d, want %d", step, n, want)
		}
		g, n1 := learnGen(t, s, step)
		switch {
		case g < g0:
			t.Errorf("%s: generation went back from %d to %d", step, g0, g)
		case rises && g == g0:
			t.Errorf("%s: generation stayed %d: a refit that read before the drop could replace the model of one that read after", step, g)
		case !rises && g != g0:
			t.Errorf("%s: generation rose from %d to %d, with nothing dropped", step, g0, g)
		}
		if n1 != n0 {
			t.Errorf("%s: %d digests learned, %d before: a drop must leave the digests", step, n1, n0)
		}
	}
	drop("nothing", nil, 0, false)
	// Message 3 has no features, message 4 is not learned.
	drop("drop", []classifier.Digest{digest(4), digest(1), digest(3)}, 1, true)
	checkDigests(t, s, "after the drop", map[classifier.Digest]classifier.DigestClass{
		digest(1): {Digest: digest(1), Class: classifier.Spam},
		digest(2): {Digest: digest(2), Class: classifier.Ham, Features: f2},
		digest(3): {Digest: digest(3), Class: classifier.Spam},
	})
	tot, c := lookup(t, s, "d1", "shared")
	if tot != (classifier.Totals{Spam: 2, Ham: 1}) || c[0].Spam != 1 || c[1].Spam != 1 || c[1].Ham != 1 {
		t.Errorf("after the drop: totals %+v, counts %+v: a drop must leave the counts", tot, c)
	}
	drop("again", []classifier.Digest{digest(1), digest(3), digest(4)}, 0, false)
	// The message is still learned: learning it again is a no-op (and
	// brings its features back), moving and unlearning work.
	if out := learn(t, s, classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: toks, Date: 20240401}); out[0] != classifier.AlreadyLearned {
		t.Errorf("learn again after the drop: %v, want already learned", out[0])
	}
	if out := learn(t, s, classifier.LearnOp{Digest: digest(1), Class: classifier.Ham, Tokens: toks, Date: 20240401}); out[0] != classifier.Moved {
		t.Errorf("move after the drop: %v, want moved", out[0])
	}
	if out := learn(t, s, classifier.LearnOp{Digest: digest(1), Class: classifier.Ham, Unlearn: true, Tokens: toks, Date: 20240401}); out[0] != classifier.Unlearned {
		t.Errorf("unlearn after the drop: %v, want unlearned", out[0])
	}
	tot, c = lookup(t, s, "d1", "shared")
	if tot != (classifier.Totals{Spam: 1, Ham: 1}) || c[0] != (classifier.Counts{}) || c[1].Spam != 0 || c[1].Ham != 1 {
		t.Errorf("after moving and unlearning: totals %+v, counts %+v", tot, c)
	}
	// A drop of an unlearned message's digest changes nothing.
	drop("unlearned", []classifier.Digest{digest(1)}, 0, false)
	// More digests than any store writes at once: 2,600, of which every
	// second one dropped (1,300, over the batches of either store).
	var digs []classifier.DigestClass
	var doomed []classifier.Digest
	want := map[classifier.Digest]classifier.DigestClass{
		digest(2): {Digest: digest(2), Class: classifier.Ham, Features: f2},
		digest(3): {Digest: digest(3), Class: classifier.Spam},
	}
	for i := range 2600 {
		d := classifier.DigestClass{Digest: digest(1000 + i), Class: classifier.Class(1 + i%3%2), Features: featureBlob(uint64(1000+i), 8)}
		digs = append(digs, d)
		if i%2 == 0 {
			doomed = append(doomed, d.Digest)
			d.Features = nil
		}
		want[d.Digest] = d
	}
	if err := s.Add(ctx, classifier.Batch{Digests: digs}); err != nil {
		t.Fatal(err)
	}
	drop("many", doomed, len(doomed), true)
	checkDigests(t, s, "after dropping many", want)
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func testExportImport(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	// An import takes only features that decode, as a refit reads them.
	feats := featureBlob(10, 2500)
	learn(t, s,
		classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: []string{"a", "b", `"quoted"`, "tab\there", "é"}, Date: 20240101, Features: feats},
		classifier.LearnOp{Digest: digest(2), Class: classifier.Ham, Tokens: []string{"b", "c"}, Date: 20240202},
	)
	var first bytes.Buffer
	if err := classifier.Export(ctx, s, &first); err != nil {
		t.Fatal(err)
	}
	// Message 1's digest line carries its features, message 2's has none.
	for _, l := range strings.Split(first.String(), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "d" && f[1] == digest(1).String() && len(f) != 4,
			len(f) > 1 && f[0] == "d" && f[1] == digest(2).String() && len(f) != 3:
			t.Errorf("export digest line %q: features missing or where there are none", l)
		}
	}
	// Round trip through a second, empty store of the same kind is not
	// possible here (one store per test), so clear this one by unlearning
	// and re-import; the export must then be identical.
	learn(t, s,
		classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Unlearn: true, Tokens: []string{"a", "b", `"quoted"`, "tab\there", "é"}},
		classifier.LearnOp{Digest: digest(2), Class: classifier.Ham, Unlearn: true, Tokens: []string{"b", "c"}},
	)
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tokens != 0 || st.Digests != 0 || st.Totals != (classifier.Totals{}) {
		t.Fatalf("store not empty after unlearning everything: %+v", st)
	}
	is, err := classifier.Import(ctx, s, bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if is.Tokens != 6 || is.Digests != 2 || is.Totals != (classifier.Totals{Spam: 1, Ham: 1}) {
		t.Errorf("import stats %+v, want 6 tokens, 2 digests, totals 1/1", is)
	}
	var second bytes.Buffer
	if err := classifier.Export(ctx, s, &second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Errorf("export after import differs:\n%s\n---\n%s", first.String(), second.String())
	}
	checkDigests(t, s, "after import", map[classifier.Digest]classifier.DigestClass{
		digest(1): {Digest: digest(1), Class: classifier.Spam, Features: feats},
		digest(2): {Digest: digest(2), Class: classifier.Ham},
	})
	// The digests came back too: learning message 1 as spam is a no-op.
	out := learn(t, s, classifier.LearnOp{Digest: digest(1), Class: classifier.Spam, Tokens: []string{"a"}, Date: 20240101})
	if out[0] != classifier.AlreadyLearned {
		t.Errorf("relearn after import: %v, want already learned", out[0])
	}
}

func testConcurrent(t *testing.T, s classifier.Store) {
	ctx := context.Background()
	const writers, perWriter = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*2)
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				_, err := s.Learn(ctx, []classifier.LearnOp{{
					Digest: digest(w*1000 + i), Class: classifier.Spam, Tokens: []string{"shared", fmt.Sprint("w", w)}, Date: 20240101,
				}})
				if err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range perWriter {
				if _, _, err := s.Lookup(ctx, []string{"shared"}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	tot, c := lookup(t, s, "shared")
	if tot.Spam != writers*perWriter || c[0].Spam != writers*perWriter {
		t.Errorf("after concurrent learning: totals %+v shared %+v, want %d", tot, c[0], writers*perWriter)
	}
}
