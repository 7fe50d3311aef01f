package classifier_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
	"github.com/sluice-mail/sluice/classifier/storetest"
)

// hmgetCalls returns how many HMGETs the server has run: a lookup sends one
// for the totals, and one more if it asks for tokens.
func hmgetCalls(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	for _, f := range strings.Split(srv.Info(t, "commandstats")["cmdstat_hmget"], ",") {
		if v, ok := strings.CutPrefix(f, "calls="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("commandstats: %q", f)
			}
			return n
		}
	}
	return 0
}

// waitCache waits until the cache of st is complete at floor.
func waitCache(t *testing.T, st *classifier.RedisStore, floor uint64) classifier.RedisCacheStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs := st.CacheStatus()
		if cs.Complete && cs.Floor == floor {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache was not loaded at floor %d within 10 s: %+v", floor, cs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The Redis store's cache leaves out the tokens too rare for the
// classifiers on the store to count. Classifying through it gives what the
// store without a cache gives, to the last bit, without asking Redis for a
// token; Lookup still gives exact counts; a token another host's learning
// lifts to the floor comes in through the change log; the limit of the
// cache counts only the tokens it holds; and a classifier that counts
// rarer tokens has the cache loaded again with them.
func TestRedisCacheFloor(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const prefix = "floor"
	open := func(cacheTokens int) *classifier.RedisStore {
		st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: prefix, CacheTokens: cacheTokens})
		t.Cleanup(func() { st.Close() })
		return st
	}
	other, plain := open(-1), open(-1)

	// Twelve messages, learned by another host: "common" in all,
	// "spamword" and "hamword" in the six of their class, "four" in
	// four, "three" in three ham, pairI in two and rareI in one. With
	// the default parameters only the first four tokens can count (a
	// token seen in four ham messages only, and none seen in fewer).
	var ops []classifier.LearnOp
	for i := range 12 {
		op := classifier.LearnOp{Class: classifier.Ham, Tokens: []string{"common", "hamword"}, Date: 20240101}
		if i%2 == 0 {
			op.Class, op.Tokens = classifier.Spam, []string{"common", "spamword"}
		}
		op.Tokens = append(op.Tokens, fmt.Sprintf("rare%d", i), fmt.Sprintf("pair%d", i/2))
		if i < 4 {
			op.Tokens = append(op.Tokens, "four")
		}
		if i < 6 && i%2 == 1 {
			op.Tokens = append(op.Tokens, "three")
		}
		op.Digest[0] = byte(i + 1)
		ops = append(ops, op)
	}
	if _, err := other.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	const common = 4 // tokens seen in four messages or more

	// Parameters that count a token once it is seen in four messages.
	p := classifier.Params{RobX: 0.45, RobS: 0.5, MinDev: 0.45}
	want := classifier.New(plain, p)
	toks := []string{"common", "spamword", "hamword", "four", "three", "rare0", "rare7", "pair1", "never"}
	// same classifies toks with c and with want, on the store without
	// a cache, and returns how many HMGETs c's lookup sent.
	same := func(step string, c, want *classifier.Classifier) int {
		t.Helper()
		msg := classifier.Message{Tokens: toks}
		exp, err := want.ClassifyMessage(ctx, msg, true)
		if err != nil {
			t.Fatal(err)
		}
		h := hmgetCalls(t, srv)
		got, err := c.ClassifyMessage(ctx, msg, true)
		if err != nil {
			t.Fatal(err)
		}
		if got.LogOdds != exp.LogOdds || got.Used != exp.Used || !slices.Equal(got.Clues, exp.Clues) {
			t.Errorf("%s: classified through the cache %+v; without a cache %+v", step, got, exp)
		}
		return hmgetCalls(t, srv) - h
	}
	// exact looks up toks in st and in the store without a cache and
	// returns how many HMGETs st's lookup sent.
	exact := func(step string, st *classifier.RedisStore) int {
		t.Helper()
		wt, wc, err := plain.Lookup(ctx, toks)
		if err != nil {
			t.Fatal(err)
		}
		h := hmgetCalls(t, srv)
		gt, gc, err := st.Lookup(ctx, toks)
		if err != nil {
			t.Fatal(err)
		}
		if gt != wt || !slices.Equal(gc, wc) {
			t.Errorf("%s: Lookup through the cache %+v %+v; without a cache %+v %+v", step, gt, gc, wt, wc)
		}
		return hmgetCalls(t, srv) - h
	}

	st := open(0)
	c := classifier.New(st, p)
	same("first lookup", c, want) // starts the load
	cs := waitCache(t, st, 4)
	if cs.Tokens != common {
		t.Errorf("the complete cache holds %d tokens, want the %d seen in four messages or more", cs.Tokens, common)
	}
	if n := same("loaded", c, want); n != 1 {
		t.Errorf("classifying with the cache loaded: %d HMGETs, want 1 (the totals)", n)
	}
	if n := exact("loaded", st); n != 2 {
		t.Errorf("Lookup with the cache loaded: %d HMGETs, want 2 (the totals and the rare tokens)", n)
	}

	// The other host lifts "three" to the floor, and teaches a token
	// seen once.
	op := classifier.LearnOp{Class: classifier.Ham, Tokens: []string{"three", "rare-late"}, Date: 20240102}
	op.Digest[0] = 100
	if _, err := other.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	same("after another host learned", c, want)
	res, err := c.ClassifyMessage(ctx, classifier.Message{Tokens: []string{"three"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clues) != 1 || res.Clues[0].Ham != 4 {
		t.Errorf("three, in four ham: clues %+v; want it to count", res.Clues)
	}
	if cs := st.CacheStatus(); !cs.Complete || cs.Tokens != common+1 {
		t.Errorf("after the change log: %+v; want complete, with %d tokens", cs, common+1)
	}
	if n := same("after another host learned, again", c, want); n != 1 {
		t.Errorf("classifying after the change log: %d HMGETs, want 1 (the totals)", n)
	}
	exact("after another host learned", st)

	// Room for the common tokens only: the store has four times more,
	// and still fits.
	small := open(common + 1)
	cs2 := classifier.New(small, p)
	same("small cache", cs2, want)
	if cs := waitCache(t, small, 4); cs.Tokens != common+1 {
		t.Errorf("cache with room for %d tokens: %+v", common+1, cs)
	}
	same("small cache, loaded", cs2, want)
	exact("small cache, loaded", small)

	// A cache too small for the common tokens stays partial, and exact.
	tiny := open(2)
	ct := classifier.New(tiny, p)
	for i := range 3 {
		same(fmt.Sprintf("tiny cache, %d", i), ct, want)
		exact(fmt.Sprintf("tiny cache, %d", i), tiny)
	}
	if cs := tiny.CacheStatus(); cs.Complete {
		t.Errorf("a cache of 2 tokens for 5 common ones: %+v", cs)
	}

	// bogofilter's parameters count a token seen once: until the cache
	// holds every token, their lookups ask Redis for the others.
	bp := classifier.BogofilterParams()
	bogo := classifier.New(st, bp)
	same("floor 1 before the load", bogo, classifier.New(plain, bp))
	exact("floor 1 before the load", st)
	all, err := plain.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cs := waitCache(t, st, 1); cs.Tokens != all.Tokens {
		t.Errorf("cache with floor 1 holds %d tokens, want all %d", cs.Tokens, all.Tokens)
	}
	if n := same("floor 1", bogo, classifier.New(plain, bp)); n != 1 {
		t.Errorf("classifying with every token cached: %d HMGETs, want 1 (the totals)", n)
	}
	if n := exact("floor 1", st); n != 1 {
		t.Errorf("Lookup with every token cached: %d HMGETs, want 1 (the totals)", n)
	}
	same("default parameters, floor 1", c, want)
}

// The store contract holds with a cache that leaves out rare tokens: each
// store has a classifier with the default parameters made on it first.
func TestRedisStoreContractFloor(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) classifier.Store {
		st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
		classifier.New(st, classifier.DefaultParams())
		return st
	})
}
