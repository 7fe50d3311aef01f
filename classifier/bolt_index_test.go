package classifier

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// Tokens that share a hash are read from the file, not answered with one
// another's counts; tokens set by a writer are found; zero counts read as
// absent.
func TestTokenIndexDuplicateHashes(t *testing.T) {
	x := newTokenIndex(fileID{}, 1, 10, 1000)
	x.insert([]byte("a"), Counts{Spam: 1})
	// The same token twice stands for two tokens with one hash.
	x.insert([]byte("b"), Counts{Spam: 2})
	x.insert([]byte("b"), Counts{Ham: 3})
	if c, ok := x.get("a"); !ok || c.Spam != 1 {
		t.Errorf("a: %+v %v", c, ok)
	}
	if _, ok := x.get("b"); ok {
		t.Error("b: a hash shared by two tokens was answered from the index")
	}
	if !x.set("b", Counts{Spam: 9}) {
		t.Fatal("set failed")
	}
	if _, ok := x.get("b"); ok {
		t.Error("b: set made an ambiguous hash unambiguous")
	}
	if c, ok := x.get("c"); !ok || c != (Counts{}) {
		t.Errorf("unknown token: %+v %v", c, ok)
	}
}

// The table grows past its first size and keeps every token; a maximum is
// enforced.
func TestTokenIndexGrowAndMax(t *testing.T) {
	x := newTokenIndex(fileID{}, 1, 0, 5000)
	for i := range 5000 {
		if !x.insert([]byte(fmt.Sprint(i)), Counts{Spam: uint32(i), LastSeen: 20240101}) {
			t.Fatalf("insert %d refused below the maximum", i)
		}
	}
	for i := range 5000 {
		if c, ok := x.get(fmt.Sprint(i)); !ok || c.Spam != uint32(i) || c.LastSeen != 20240101 {
			t.Fatalf("token %d: %+v %v", i, c, ok)
		}
	}
	if x.set("one more", Counts{Ham: 1}) {
		t.Error("set past the maximum succeeded")
	}
	if !x.set("0", Counts{Ham: 1}) {
		t.Error("updating a token at the maximum failed")
	}
	if float64(x.n) > indexLoad*float64(len(x.slots)) {
		t.Errorf("%d tokens in %d slots: fuller than %v", x.n, len(x.slots), indexLoad)
	}
}

// The index is built after IndexAfter tokens, patched (not rebuilt) by this
// process's writes, and rebuilt after another process's.
func TestBoltStoreIndexLifecycle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s, err := OpenBolt(path, BoltOptions{NoSync: true, IndexAfter: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := OpenBolt(path, BoltOptions{NoSync: true, IndexTokens: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	learn := func(st *BoltStore, n byte, toks ...string) {
		t.Helper()
		op := LearnOp{Class: Spam, Tokens: toks, Date: 20240101}
		op.Digest[0] = n
		if _, err := st.Learn(ctx, []LearnOp{op}); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(toks ...string) []Counts {
		t.Helper()
		_, c, err := s.Lookup(ctx, toks)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	learn(s, 1, "a", "b")
	lookup("a", "b")
	if s.idx.Load() != nil {
		t.Fatal("index built before IndexAfter tokens were looked up")
	}
	lookup("a")
	first := s.idx.Load()
	if first == nil {
		t.Fatal("no index after IndexAfter tokens")
	}
	learn(s, 2, "b", "c")
	if c := lookup("a", "b", "c"); c[1].Spam != 2 || c[2].Spam != 1 {
		t.Errorf("after own learn: %+v", c)
	}
	if s.idx.Load() != first {
		t.Error("own write rebuilt the index instead of patching it")
	}
	learn(other, 3, "c", "d")
	if c := lookup("c", "d"); c[0].Spam != 2 || c[1].Spam != 1 {
		t.Errorf("after another process's learn: %+v", c)
	}
	if x := s.idx.Load(); x == first || x == nil {
		t.Error("index not rebuilt after another process wrote")
	}
}

// BuildIndex builds the index at once, and not when it is turned off.
func TestBoltStoreBuildIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	for _, tc := range []struct {
		tokens int
		want   bool
	}{{0, true}, {-1, false}, {1, false}} {
		s, err := OpenBolt(path, BoltOptions{NoSync: true, IndexTokens: tc.tokens})
		if err != nil {
			t.Fatal(err)
		}
		op := LearnOp{Class: Ham, Tokens: []string{"x", "y"}, Date: 20240101}
		if _, err := s.Learn(ctx, []LearnOp{op}); err != nil {
			t.Fatal(err)
		}
		if err := s.BuildIndex(ctx); err != nil {
			t.Fatal(err)
		}
		if got := s.idx.Load() != nil; got != tc.want {
			t.Errorf("IndexTokens %d: index built %v, want %v", tc.tokens, got, tc.want)
		}
		s.Close()
	}
}

// getAll answers as get does, token by token, whether a token sits in its
// home slot, further along after a collision, is unknown or is ambiguous,
// and across the batches it works in.
func TestTokenIndexGetAll(t *testing.T) {
	// A table this full has long probe runs.
	x := newTokenIndex(fileID{}, 1, 3000, 1<<20)
	for i := range 3000 {
		x.insert([]byte(fmt.Sprint("t", i)), Counts{Spam: uint32(i), Ham: uint32(2 * i), LastSeen: 20240101})
	}
	x.insert([]byte("t7"), Counts{Ham: 1}) // t7 becomes ambiguous
	var tokens []string
	for i := range 6000 {
		tokens = append(tokens, fmt.Sprint("t", i)) // half of them unknown
	}
	probed := 0
	for _, tok := range tokens {
		if i, ok := x.find(x.hash(tok)); ok && i != x.home(x.hash(tok)) {
			probed++
		}
	}
	if probed == 0 {
		t.Fatal("no token away from its home slot: the test does not cover probing")
	}
	counts := make([]Counts, len(tokens))
	ask := x.getAll(tokens, counts, false)
	if len(ask) != 1 || tokens[ask[0]] != "t7" {
		t.Errorf("tokens to read from the file: %v, want [t7]", ask)
	}
	for i, tok := range tokens {
		want, ok := x.get(tok)
		if !ok {
			continue
		}
		if counts[i] != want {
			t.Errorf("%s: getAll %+v, get %+v", tok, counts[i], want)
		}
	}
	if c := counts[2999]; c.Spam != 2999 || c.Ham != 5998 {
		t.Errorf("t2999: %+v", c)
	}
}

// BenchmarkIndexGetAll looks up message-sized batches of tokens, half of
// them known, against an index of 1.5 M tokens, much larger than the CPU
// cache, as a daemon with a large store does. The batches cycle through
// 200,000 distinct tokens, so few lookups find their slot in cache.
func BenchmarkIndexGetAll(b *testing.B) {
	const stored, pool, perMsg = 1_500_000, 200_000, 600
	x := newTokenIndex(fileID{}, 1, stored, stored)
	for i := range stored {
		x.insert(fmt.Appendf(nil, "tok%d", 2*i), Counts{Spam: 1, Ham: 2})
	}
	toks := make([]string, pool)
	for i := range toks {
		// Spread over the stored range: even numbers are known.
		toks[i] = fmt.Sprintf("tok%d", (i*7919)%(2*stored))
	}
	counts := make([]Counts, perMsg)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		start := (n * perMsg) % (pool - perMsg)
		x.getAll(toks[start:start+perMsg], counts, false)
	}
}

// countFloor is the fewest messages a token must have been seen in to
// count: below it no split between spam and ham, against any totals,
// gives a probability Score counts, and at it one does.
func TestCountFloor(t *testing.T) {
	if got := countFloor(DefaultParams()); got != 3 {
		t.Errorf("defaults: floor %d, want 3", got)
	}
	if got := countFloor(BogofilterParams()); got != 1 {
		t.Errorf("bogofilter's parameters: floor %d, want 1", got)
	}
	totals := []Totals{{1, 1}, {1, 1000}, {1000, 1}, {37, 5000}, {0, 0}, {4294967295, 1}}
	for _, robx := range []float64{0.1, 0.45, 0.52, 0.9} {
		for _, robs := range []float64{0.0178, 0.5, 1, 3} {
			for _, minDev := range []float64{0.1, 0.375, 0.45, 0.49} {
				p := Params{RobX: robx, RobS: robs, MinDev: minDev}.withDefaults()
				floor := countFloor(p)
				countsAt := func(n uint32) bool {
					for s := uint32(0); s <= n; s++ {
						for _, tot := range totals {
							if significant(p, TokenProb(p, tot, s, n-s)) {
								return true
							}
						}
					}
					return false
				}
				for n := uint32(1); uint64(n) < floor; n++ {
					if countsAt(n) {
						t.Errorf("robx %v robs %v min_dev %v: floor %d, but a token seen in %d messages counts", robx, robs, minDev, floor, n)
					}
				}
				if floor < 1000 && !countsAt(uint32(floor)) {
					t.Errorf("robx %v robs %v min_dev %v: floor %d, but no token seen in that many counts", robx, robs, minDev, floor)
				}
			}
		}
	}
}

// An index that leaves out rare tokens scores exactly as the file does,
// still gives exact counts to Lookup, takes in a token once this process's
// learning makes it common enough, and is rebuilt with every token once a
// classifier that counts rare tokens is made on the store.
func TestBoltStoreIndexFloor(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	s, err := OpenBolt(path, BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	plain, err := OpenBolt(path, BoltOptions{NoSync: true, IndexTokens: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	// "rare" is in one spam, "three" in three, "common" in every message.
	var ops []LearnOp
	for i := range 12 {
		op := LearnOp{Class: Ham, Tokens: []string{"common", "hamword"}, Date: 20240101}
		if i%2 == 0 {
			op.Class, op.Tokens = Spam, []string{"common", "spamword"}
		}
		if i == 0 {
			op.Tokens = append(op.Tokens, "rare")
		}
		if i < 6 && i%2 == 0 {
			op.Tokens = append(op.Tokens, "three")
		}
		op.Digest[0] = byte(i + 1)
		ops = append(ops, op)
	}
	if _, err := s.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	// Parameters that count a token once it is seen in four messages.
	p := Params{RobX: 0.45, RobS: 0.5, MinDev: 0.45}
	c := New(s, p)
	if err := s.BuildIndex(ctx); err != nil {
		t.Fatal(err)
	}
	x := s.idx.Load()
	if x == nil || x.floor != 4 {
		t.Fatalf("index %+v, want one with floor 4", x)
	}
	if _, ok := x.find(x.hash("rare")); ok {
		t.Error("a token seen in one message is in the index")
	}
	if _, ok := x.find(x.hash("spamword")); !ok {
		t.Error("a token seen in six messages is not in the index")
	}
	toks := []string{"common", "hamword", "spamword", "rare", "three", "never"}
	_, exact, err := plain.Lookup(ctx, toks)
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := s.Lookup(ctx, toks); err != nil {
		t.Fatal(err)
	} else if !slices.Equal(got, exact) {
		t.Errorf("Lookup through the index %+v, from the file %+v", got, exact)
	}
	msg := Message{Tokens: toks}
	want := Score(p, Totals{Spam: 6, Ham: 6}, toks, exact, true)
	got, err := c.ClassifyMessage(ctx, msg, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.LogOdds != want.LogOdds || got.Used != want.Used || !slices.Equal(got.Clues, want.Clues) {
		t.Errorf("classified through the index: %+v; from the file: %+v", got, want)
	}

	// One more spam with "three" makes it common enough to count.
	op := LearnOp{Class: Spam, Tokens: []string{"three"}, Date: 20240102}
	op.Digest[0] = 99
	if _, err := s.Learn(ctx, []LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	if s.idx.Load() != x {
		t.Fatal("own write rebuilt the index instead of patching it")
	}
	if _, ok := x.find(x.hash("three")); !ok {
		t.Error("a token that reached the floor was not added to the index")
	}
	if _, got, err := s.lookup(ctx, []string{"three"}, 4); err != nil || got[0].Spam != 4 {
		t.Errorf("three: %+v, %v; want 4 spam", got, err)
	}

	// bogofilter's parameters count a token seen once.
	bogo := New(s, BogofilterParams())
	res, err := bogo.ClassifyMessage(ctx, Message{Tokens: []string{"rare"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clues) != 1 || res.Clues[0].Spam != 1 {
		t.Errorf("rare token with bogofilter's parameters: clues %+v, want one seen in 1 spam", res.Clues)
	}
	if x := s.idx.Load(); x == nil || x.floor != 1 {
		t.Errorf("index after a classifier with floor 1: %+v", x)
	}
}
