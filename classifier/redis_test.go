package classifier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
	"github.com/sluice-mail/sluice/classifier/storetest"
)

// redisPrefixes hands out a new key prefix per store, so that the contract
// tests get an empty store each on one server.
var redisPrefixes atomic.Int64

func openRedisStore(t testing.TB, opts classifier.RedisOptions) *classifier.RedisStore {
	t.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = fmt.Sprintf("test%d", redisPrefixes.Add(1))
	}
	st, err := classifier.OpenRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The contract of package storetest against a real redis-server, in each
// of the three deployments a site may run.
func TestRedisStoreContract(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) classifier.Store {
		return openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
	})
}

func TestRedisStoreContractSentinel(t *testing.T) {
	sn := redistest.StartSentinel(t)
	storetest.Run(t, func(t *testing.T) classifier.Store {
		return openRedisStore(t, classifier.RedisOptions{Addrs: []string{sn.Addr}, MasterName: sn.MasterName})
	})
}

// In a Cluster every operation's keys must share a slot; the contract
// passing there shows they do (Redis refuses CROSSSLOT scripts and
// transactions). Stores of different prefixes land on different nodes.
func TestRedisStoreContractCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	storetest.Run(t, func(t *testing.T) classifier.Store {
		return openRedisStore(t, classifier.RedisOptions{Addrs: cl.Addrs, Cluster: true})
	})
}

// countingObserver counts round trips by operation.
type countingObserver struct {
	mu     sync.Mutex
	trips  map[string]int
	errors map[string]int
}

func (o *countingObserver) RedisRoundTrip(op string, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.trips == nil {
		o.trips, o.errors = map[string]int{}, map[string]int{}
	}
	o.trips[op]++
	if err != nil {
		o.errors[op]++
	}
}

func (o *countingObserver) get(op string) (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.trips[op], o.errors[op]
}

// Classifying a message is one round trip, however many tokens it has;
// learning a batch of messages is one as well.
func TestRedisRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	obs := &countingObserver{}
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, Observer: obs})
	defer st.Close()
	ctx := context.Background()
	toks := make([]string, 5000)
	for i := range toks {
		toks[i] = fmt.Sprintf("tok%05d", i)
	}
	// The first learn also loads the script into Redis; count from the
	// second on.
	if _, err := st.Learn(ctx, []classifier.LearnOp{{Class: classifier.Ham, Tokens: []string{"warm-up"}}}); err != nil {
		t.Fatal(err)
	}
	var ops []classifier.LearnOp
	for i := range 50 {
		op := classifier.LearnOp{Class: classifier.Spam, Tokens: toks[i*10 : i*10+500], Date: 20240101}
		op.Digest[0] = byte(i)
		ops = append(ops, op)
	}
	if _, err := st.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if n, _ := obs.get("learn"); n != 3 {
		t.Errorf("learning 50 messages took %d round trips, want 1", n-2)
	}
	tot, counts, err := st.Lookup(ctx, toks)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := obs.get("lookup"); n != 1 {
		t.Errorf("looking up %d tokens took %d round trips, want 1", len(toks), n)
	}
	if tot.Spam != 50 || counts[0].Spam != 1 || counts[499].Spam != 50 || counts[4999].Spam != 0 {
		t.Errorf("totals %+v, counts %+v %+v %+v", tot, counts[0], counts[499], counts[4999])
	}
}

// After Redis lost its script cache (restart, failover, SCRIPT FLUSH) the
// store loads the script again and the batch is learned in order.
func TestRedisScriptReload(t *testing.T) {
	srv := redistest.Start(t)
	obs := &countingObserver{}
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, Observer: obs})
	defer st.Close()
	ctx := context.Background()
	op := classifier.LearnOp{Class: classifier.Ham, Tokens: []string{"a"}, Date: 20240101}
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	again := op
	again.Class = classifier.Spam
	out, err := st.Learn(ctx, []classifier.LearnOp{op, again, again})
	if err != nil {
		t.Fatal(err)
	}
	want := []classifier.Outcome{classifier.AlreadyLearned, classifier.Moved, classifier.AlreadyLearned}
	if fmt.Sprint(out) != fmt.Sprint(want) {
		t.Errorf("outcomes after SCRIPT FLUSH %v, want %v", out, want)
	}
	// Once for the first learn, once after the flush.
	if n, _ := obs.get("script_load"); n != 2 {
		t.Errorf("script loaded %d times, want 2", n)
	}
}

// Redis down or hung: operations fail within the timeout with
// ErrUnavailable; once Redis is back the same store works again, with no
// reopening.
func TestRedisUnavailableAndReconnect(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 300 * time.Millisecond
	obs := &countingObserver{}
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, Timeout: timeout, WriteTimeout: timeout, Observer: obs})
	defer st.Close()
	ctx := context.Background()
	learnOne := func(b byte) error {
		op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"x"}, Date: 20240101}
		op.Digest[0] = b
		_, err := st.Learn(ctx, []classifier.LearnOp{op})
		return err
	}
	if err := learnOne(1); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		for i := range 5 {
			start := time.Now()
			_, _, err := st.Lookup(ctx, []string{"x"})
			took := time.Since(start)
			if !errors.Is(err, classifier.ErrUnavailable) {
				t.Errorf("%s, lookup %d: %v, want ErrUnavailable", what, i, err)
			}
			if took > timeout+200*time.Millisecond {
				t.Errorf("%s, lookup %d took %v, timeout is %v", what, i, took, timeout)
			}
		}
		if err := learnOne(2); !errors.Is(err, classifier.ErrUnavailable) {
			t.Errorf("%s, learn: %v, want ErrUnavailable", what, err)
		}
	}

	srv.Pause(t)
	check("redis hung")
	srv.Resume(t)
	waitLookup(t, st, 1)

	srv.Kill(t)
	check("redis killed")
	srv.Restart(t) // empty: nothing was persisted
	waitLookup(t, st, 0)
	if err := learnOne(3); err != nil {
		t.Errorf("learn after restart: %v", err)
	}
	if _, e := obs.get("lookup"); e < 10 {
		t.Errorf("observer saw %d failed lookups, want at least 10", e)
	}
}

// waitLookup waits (at most 10 s) until a lookup works and finds spam
// totals of want: the store reconnects by itself.
func waitLookup(t *testing.T, st classifier.Store, want uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tot, _, err := st.Lookup(context.Background(), []string{"x"})
		if err == nil {
			if tot.Spam != want {
				t.Fatalf("after reconnecting: spam total %d, want %d", tot.Spam, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not reconnect within 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A corrupt value is an error, not "unavailable": the filter must not
// pass mail silently because of it, and a learn touching it changes
// nothing at all.
func TestRedisCorruptValue(t *testing.T) {
	srv := redistest.Start(t)
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "corrupt"})
	defer st.Close()
	ctx := context.Background()
	op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"good", "bad"}, Date: 20240101}
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client(t).HSet(ctx, "{corrupt}:tokens", "bad", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	_, _, err := st.Lookup(ctx, []string{"good", "bad"})
	if err == nil || errors.Is(err, classifier.ErrUnavailable) {
		t.Errorf("lookup of a corrupt token: %v, want a plain error", err)
	}
	op.Digest[0] = 1
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err == nil {
		t.Error("learn over a corrupt token: no error")
	}
	_, c, _ := st.Lookup(ctx, []string{"good"})
	tot, _ := st.Size(ctx)
	if c[0].Spam != 1 || tot.Spam != 1 {
		t.Errorf("a failed learn changed counts: good %+v, totals %+v", c[0], tot.Totals)
	}
}

// A learned message's features live in {PREFIX}:features under its raw
// digest, byte for byte, and go with the digest: unlearning leaves no field
// behind, and a field an older sluice left behind (it unlearns without
// knowing the hash) is not taken for the features of the message learned
// again without any. Size counts their memory.
func TestRedisFeaturesKey(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "feat"})
	defer st.Close()
	rc := srv.Client(t)
	const key = "{feat}:features"
	feats := bytes.Repeat([]byte("\x00\r\n\xff binary "), 20000) // 200 kB
	op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"a"}, Date: 20240101, Features: feats}
	op.Digest[0] = 1
	learnOne := func(op classifier.LearnOp, want classifier.Outcome) {
		t.Helper()
		out, err := st.Learn(ctx, []classifier.LearnOp{op})
		if err != nil || out[0] != want {
			t.Fatalf("learn: %v %v, want %v", out, err, want)
		}
	}
	learnOne(op, classifier.Learned)
	v, err := rc.HGet(ctx, key, string(op.Digest[:])).Result()
	if err != nil || v != string(feats) {
		t.Fatalf("features field: %d bytes, %v; want the %d bytes learned", len(v), err, len(feats))
	}
	size, err := st.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if size.Bytes < int64(len(feats)) || size.Digests != 1 {
		t.Errorf("size %+v: want the %d bytes of features counted, and 1 digest", size, len(feats))
	}

	op.Unlearn = true
	learnOne(op, classifier.Unlearned)
	if n, err := rc.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Errorf("features hash after unlearning its only message: exists %d, %v", n, err)
	}

	if err := rc.HSet(ctx, key, string(op.Digest[:]), "left behind").Err(); err != nil {
		t.Fatal(err)
	}
	op.Unlearn, op.Features = false, nil
	learnOne(op, classifier.Learned)
	err = st.WalkDigests(ctx, func(d classifier.DigestClass) error {
		if d.Features != nil {
			t.Errorf("digest %s learned without features has %q", d.Digest, d.Features)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rc.HLen(ctx, key).Result(); err != nil || n != 0 {
		t.Errorf("features hash after learning a message without features: %d fields, %v", n, err)
	}
}

// A store written in another layout is refused.
func TestRedisFormatVersion(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client(t).HSet(ctx, "{future}:meta", "version", "9").Err(); err != nil {
		t.Fatal(err)
	}
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "future"})
	defer st.Close()
	if _, _, err := st.Lookup(ctx, []string{"a"}); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("lookup on a version 9 store: %v", err)
	}
	if _, err := st.Learn(ctx, []classifier.LearnOp{{Class: classifier.Ham, Tokens: []string{"a"}}}); err == nil {
		t.Error("learn on a version 9 store: no error")
	}
}

// Moving a store between bbolt and Redis through export and import is
// lossless in both directions: the exports are byte for byte the same.
func TestRedisMigrateFromAndToBolt(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	bolt := openTestStore(t, filepath.Join(t.TempDir(), "db"))
	defer bolt.Close()
	c := classifier.New(bolt, classifier.Params{})
	for _, class := range []string{"spam", "ham"} {
		files, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "train", class, "*.eml"))
		if len(files) == 0 {
			t.Fatalf("no %s fixtures", class)
		}
		cl, _ := classifier.ParseClass(class)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Learn(ctx, []classifier.LearnOp{c.PrepareBytes(raw, cl, false)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var fromBolt bytes.Buffer
	if err := classifier.Export(ctx, bolt, &fromBolt); err != nil {
		t.Fatal(err)
	}
	rs := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
	defer rs.Close()
	if _, err := classifier.Import(ctx, rs, bytes.NewReader(fromBolt.Bytes())); err != nil {
		t.Fatal(err)
	}
	var fromRedis bytes.Buffer
	if err := classifier.Export(ctx, rs, &fromRedis); err != nil {
		t.Fatal(err)
	}
	if fromBolt.String() != fromRedis.String() {
		t.Fatalf("export of the Redis store differs from the bbolt export it was imported from")
	}
	back := openTestStore(t, filepath.Join(t.TempDir(), "db"))
	defer back.Close()
	if _, err := classifier.Import(ctx, back, bytes.NewReader(fromRedis.Bytes())); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := classifier.Export(ctx, back, &again); err != nil {
		t.Fatal(err)
	}
	if again.String() != fromBolt.String() {
		t.Fatal("bbolt -> Redis -> bbolt changed the export")
	}
	lines := strings.Count(fromBolt.String(), "\nt ")
	if lines < 100 {
		t.Errorf("the migrated store has only %d tokens; the fixtures should give more", lines)
	}
	// Both stores classify alike.
	cr := classifier.New(rs, classifier.Params{})
	checks, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "check", "*.eml"))
	for _, f := range checks {
		raw, _ := os.ReadFile(f)
		a, err1 := c.ClassifyBytes(ctx, raw, false)
		b, err2 := cr.ClassifyBytes(ctx, raw, false)
		if err1 != nil || err2 != nil || a.Spamicity != b.Spamicity {
			t.Errorf("%s: bbolt %v %v, Redis %v %v", filepath.Base(f), a.Spamicity, err1, b.Spamicity, err2)
		}
	}
}

// A bogofilter word list imports into Redis as into bbolt: the same
// export, dialect and verdicts.
func TestRedisImportBogoutil(t *testing.T) {
	needBogofilter(t)
	srv := redistest.Start(t)
	ctx := context.Background()
	fix := filepath.Join("..", "testdata", "classifier")
	spam, _ := filepath.Glob(filepath.Join(fix, "train", "spam", "*.eml"))
	ham, _ := filepath.Glob(filepath.Join(fix, "train", "ham", "*.eml"))
	bdir := t.TempDir()
	for _, args := range [][]string{
		append([]string{"-d", bdir, "-s", "-B"}, spam...),
		append([]string{"-d", bdir, "-n", "-B"}, ham...),
	} {
		if out, err := exec.Command("bogofilter", args...).CombinedOutput(); err != nil {
			t.Fatalf("bogofilter: %v\n%s", err, out)
		}
	}
	dump, err := exec.Command("bogoutil", "-d", filepath.Join(bdir, "wordlist.db")).Output()
	if err != nil {
		t.Fatal(err)
	}
	bolt := openTestStore(t, filepath.Join(t.TempDir(), "db"))
	defer bolt.Close()
	rs := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
	defer rs.Close()
	var exports [2]bytes.Buffer
	for i, st := range []classifier.Store{bolt, rs} {
		is, err := classifier.ImportBogoutil(ctx, st, bytes.NewReader(dump))
		if err != nil {
			t.Fatal(err)
		}
		if is.Totals.Spam != uint32(len(spam)) || is.Tokens < 50 {
			t.Fatalf("import: %+v", is)
		}
		if err := classifier.Export(ctx, st, &exports[i]); err != nil {
			t.Fatal(err)
		}
	}
	if exports[0].String() != exports[1].String() {
		t.Error("bogoutil import into Redis differs from the import into bbolt")
	}
	if d, _ := rs.Meta(ctx, classifier.MetaDialect); d != string(classifier.DialectBogofilter) {
		t.Errorf("dialect %q after bogoutil import into Redis", d)
	}
}

// Random learning, unlearning, moving, raw adds and pruning give the
// Redis store exactly the bbolt store's contents (compared through their
// exports), with messages and batches larger than the chunks the scripts
// work in.
//
// It runs with a cache far smaller than the lookups, so that tokens are
// evicted and replaced all the time, and with the default cache, which
// loads the whole store and follows the learning through the change log.
func TestRedisMatchesBolt(t *testing.T) {
	for _, size := range []int{256, 0} {
		t.Run(fmt.Sprintf("cache_tokens=%d", size), func(t *testing.T) {
			testRedisMatchesBolt(t, size)
		})
	}
}

func testRedisMatchesBolt(t *testing.T, cacheTokens int) {
	srv := redistest.Start(t)
	ctx := context.Background()
	bolt := openTestStore(t, filepath.Join(t.TempDir(), "db"))
	defer bolt.Close()
	rs := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, CacheTokens: cacheTokens})
	defer rs.Close()
	stores := []classifier.Store{bolt, rs}
	r := rand.New(rand.NewPCG(11, 12))
	same := func(phase string) {
		t.Helper()
		var ex [2]bytes.Buffer
		for i, st := range stores {
			if err := classifier.Export(ctx, st, &ex[i]); err != nil {
				t.Fatal(err)
			}
		}
		if ex[0].String() != ex[1].String() {
			t.Fatalf("%s: the stores differ (bbolt %d bytes of export, Redis %d)", phase, ex[0].Len(), ex[1].Len())
		}
		// Lookups agree too, through the Redis store's cache, which
		// holds counts from the lookups of the previous phases.
		toks := make([]string, 2000)
		for i := range toks {
			toks[i] = fmt.Sprintf("w%d", (i*7+len(phase))%3100)
		}
		t1, c1, err1 := bolt.Lookup(ctx, toks)
		t2, c2, err2 := rs.Lookup(ctx, toks)
		if err1 != nil || err2 != nil || t1 != t2 || !slices.Equal(c1, c2) {
			t.Fatalf("%s: lookups differ: bbolt %+v %v, Redis %+v %v", phase, t1, err1, t2, err2)
		}
	}
	word := func() string { return fmt.Sprintf("w%d", r.IntN(3000)) }
	// Thirty messages, each always with the same tokens, learned and
	// unlearned in random classes; one date per batch, as sluice train
	// gives. (Within one batch bbolt sums the changes of every message
	// before writing, Redis applies them message by message: the results
	// agree for consistent messages, not for a digest reused with other
	// tokens, which real messages cannot do.)
	msgs := make([][]string, 30)
	feats := make([][]byte, len(msgs))
	for i := range msgs {
		seen := map[string]bool{}
		for range 1 + r.IntN(1500) {
			if w := word(); !seen[w] {
				seen[w] = true
				msgs[i] = append(msgs[i], w)
			}
		}
		feats[i] = make([]byte, 1+r.IntN(9000))
		for j := range feats[i] {
			feats[i][j] = byte(r.Uint32())
		}
	}
	for round := range 6 {
		var ops []classifier.LearnOp
		for range 40 {
			m := r.IntN(len(msgs))
			op := classifier.LearnOp{Class: classifier.Class(1 + r.IntN(2)), Unlearn: r.IntN(4) == 0, Date: classifier.Date(20240101 + round), Tokens: msgs[m]}
			op.Digest[0] = byte(m)
			// Features come with most ops, not all: a message learned
			// before the n-gram model, or from a caller without them.
			if r.IntN(3) != 0 {
				op.Features = feats[m]
			}
			ops = append(ops, op)
		}
		var outs [2][]classifier.Outcome
		for i, st := range stores {
			var err error
			if outs[i], err = st.Learn(ctx, ops); err != nil {
				t.Fatal(err)
			}
		}
		if fmt.Sprint(outs[0]) != fmt.Sprint(outs[1]) {
			t.Fatalf("round %d: outcomes differ:\nbbolt %v\nRedis %v", round, outs[0], outs[1])
		}
		same(fmt.Sprintf("round %d", round))
		if round == 0 && cacheTokens == 0 {
			// The first lookup started the load of the whole store.
			deadline := time.Now().Add(10 * time.Second)
			for !rs.CacheStatus().Complete {
				if time.Now().After(deadline) {
					t.Fatal("the cache did not load the store within 10 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	// Learning is in the change log: a complete cache stays complete.
	if st := rs.CacheStatus(); st.Complete != (cacheTokens == 0) {
		t.Errorf("after learning, cache status %+v", st)
	}
	var b classifier.Batch
	b.Totals = classifier.Totals{Spam: 3, Ham: 4}
	for range 4500 {
		b.Records = append(b.Records, classifier.Record{Token: word(), Counts: classifier.Counts{Spam: uint32(r.IntN(3)), Ham: uint32(r.IntN(3)), LastSeen: classifier.Date(20230101 + r.IntN(20))}})
	}
	// Digests old and new, with features or without, more of them than
	// one Add script of the Redis store takes.
	for i := range 600 {
		d := classifier.DigestClass{Class: classifier.Class(1 + r.IntN(2))}
		d.Digest[0], d.Digest[1] = byte(i%40), byte(i/40)
		if r.IntN(3) != 0 {
			d.Features = feats[r.IntN(len(feats))]
		}
		b.Digests = append(b.Digests, d)
	}
	for _, st := range stores {
		if err := st.Add(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	same("add")
	for _, st := range stores {
		if _, err := st.Prune(ctx, classifier.PruneOptions{Before: 20240110, MaxCount: 3}); err != nil {
			t.Fatal(err)
		}
	}
	same("prune")
}

// Sentinel failover: the master dies, the Sentinel promotes the replica,
// and the same store goes on with what was learned, on the new master,
// without being reopened.
func TestRedisSentinelFailover(t *testing.T) {
	sn := redistest.StartSentinel(t)
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{sn.Addr}, MasterName: sn.MasterName, Timeout: 300 * time.Millisecond})
	defer st.Close()
	ctx := context.Background()
	op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"x"}, Date: 20240101}
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	sn.WaitReplicated(t)
	sn.Master.Kill(t)
	deadline := time.Now().Add(30 * time.Second)
	for sn.MasterAddr(t) != sn.Replica.Addr {
		if time.Now().After(deadline) {
			t.Fatal("the Sentinel did not promote the replica within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitLookup(t, st, 1)
	op.Digest[0] = 1
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatalf("learn after failover: %v", err)
	}
	if tot, _, err := st.Lookup(ctx, []string{"x"}); err != nil || tot.Spam != 2 {
		t.Errorf("after failover: totals %+v, %v; want 2 spam", tot, err)
	}
}

// Two stores on one Redis stand for two hosts. Each caches counts; a
// learn by the other is seen by the next lookup all the same, in one round
// trip through the change log, whether the cache holds the whole store or
// only what was looked up; writes that do not log (raw adds, prunes) and a
// cache too far behind the log cost two round trips.
func TestRedisCacheFollowsOtherWriters(t *testing.T) {
	for _, size := range []int{0, 2} {
		t.Run(fmt.Sprintf("cache_tokens=%d", size), func(t *testing.T) {
			testCacheFollowsOtherWriters(t, size)
		})
	}
}

func testCacheFollowsOtherWriters(t *testing.T, cacheTokens int) {
	srv := redistest.Start(t)
	obs := &countingObserver{}
	a := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "two", Observer: obs, CacheTokens: cacheTokens})
	defer a.Close()
	b := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "two"})
	defer b.Close()
	ctx := context.Background()
	learn := func(st classifier.Store, n byte, class classifier.Class, toks ...string) {
		t.Helper()
		op := classifier.LearnOp{Class: class, Tokens: toks, Date: 20240101}
		op.Digest[0] = n
		if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
			t.Fatal(err)
		}
	}
	look := func(wantTrips int, want ...uint32) {
		t.Helper()
		before, _ := obs.get("lookup")
		tot, c, err := a.Lookup(ctx, []string{"x", "y", "z"})
		if err != nil {
			t.Fatal(err)
		}
		got := []uint32{tot.Spam, tot.Ham, c[0].Spam, c[0].Ham, c[1].Spam, c[1].Ham, c[2].Spam, c[2].Ham}
		if !slices.Equal(got, want) {
			t.Errorf("totals and counts %v, want %v", got, want)
		}
		if after, _ := obs.get("lookup"); after-before != wantTrips {
			t.Errorf("lookup took %d round trips, want %d", after-before, wantTrips)
		}
	}
	learn(b, 1, classifier.Spam, "x", "y", "p1", "p2", "p3")
	look(1, 1, 0, 1, 0, 1, 0, 0, 0) // nothing cached yet
	// The first lookup started a load of the whole store; with room for
	// two tokens only it fails (the store has five), and the cache stays
	// partial.
	deadline := time.Now().Add(10 * time.Second)
	for cacheTokens == 0 && !a.CacheStatus().Complete {
		if time.Now().After(deadline) {
			t.Fatal("the cache did not load the store within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := a.CacheStatus(); st.Complete != (cacheTokens == 0) {
		t.Fatalf("cache status %+v with room for %d tokens", st, cacheTokens)
	}
	hmget := func() int {
		var n int
		for _, f := range strings.Split(srv.Info(t, "commandstats")["cmdstat_hmget"], ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ = strconv.Atoi(v)
			}
		}
		return n
	}
	h0 := hmget()
	look(1, 1, 0, 1, 0, 1, 0, 0, 0) // all cached, same generation
	if cacheTokens == 0 {
		// A complete cache reads the totals only: z is unknown.
		if n := hmget() - h0; n != 1 {
			t.Errorf("lookup with the whole store cached: %d HMGETs, want 1 (the totals)", n)
		}
	}
	learn(b, 2, classifier.Ham, "y", "z")
	look(1, 1, 1, 1, 0, 1, 1, 0, 1) // the change log brings the new counts
	look(1, 1, 1, 1, 0, 1, 1, 0, 1)
	if _, err := b.Prune(ctx, classifier.PruneOptions{MaxCount: 1}); err != nil {
		t.Fatal(err)
	}
	look(2, 1, 1, 0, 0, 1, 1, 0, 0)       // not in the log: ask again
	learn(b, 2, classifier.Ham, "y", "z") // already learned: no change, same generation
	look(1, 1, 1, 0, 0, 1, 1, 0, 0)
	imp := classifier.Batch{Records: []classifier.Record{{Token: "x", Counts: classifier.Counts{Spam: 5, LastSeen: 20240101}}}}
	if err := b.Add(ctx, imp); err != nil {
		t.Fatal(err)
	}
	look(2, 1, 1, 5, 0, 1, 1, 0, 0)
	look(1, 1, 1, 5, 0, 1, 1, 0, 0)
	// More learned messages than a lookup reads of the log: ask again.
	for i := range 70 {
		learn(b, byte(10+i), classifier.Spam, "z")
	}
	look(2, 71, 1, 5, 0, 1, 1, 70, 0)
	// A message unlearned on the other host: its tokens' counts go to
	// zero (x is deleted from the store) in one round trip.
	learn(b, 3, classifier.Spam, "x", "q")
	look(1, 72, 1, 6, 0, 1, 1, 70, 0)
	op := classifier.LearnOp{Class: classifier.Spam, Unlearn: true, Tokens: []string{"x", "q"}, Date: 20240102}
	op.Digest[0] = 3
	if _, err := b.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	look(1, 71, 1, 5, 0, 1, 1, 70, 0)
	tot, c, err := a.Lookup(ctx, []string{"q"})
	if err != nil || tot.Spam != 71 || c[0] != (classifier.Counts{}) {
		t.Errorf("unlearned token q: totals %+v, counts %+v, %v; want 71 spam and no counts", tot, c[0], err)
	}
}

// addNoLogUser adds the user "nolog" (password "nolog-pw") for the keys
// of prefix "nolog", allowed everything a store needs but the change
// log's commands (XADD, XRANGE).
func addNoLogUser(t *testing.T, srv *redistest.Server) {
	t.Helper()
	if err := srv.Client(t).Do(context.Background(), "ACL", "SETUSER", "nolog", "on", ">nolog-pw", "~{nolog}:*", "resetchannels",
		"-@all", "+@hash", "+exists", "+multi", "+exec", "+evalsha", "+script|load", "+time", "+ping", "+hello",
		"+client|setname", "+select").Err(); err != nil {
		t.Fatal(err)
	}
}

// A user whose ACL lacks the change log's commands (XADD, XRANGE) still
// learns and classifies: learning skips the log, and lookups, once Redis
// has refused the log's XRANGE, stop asking for it and see what other hosts
// learn by starting the cache over.
func TestRedisWithoutLogCommands(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	addNoLogUser(t, srv)
	a := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "nolog", Username: "nolog", Password: "nolog-pw"})
	defer a.Close()
	admin := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "nolog"})
	defer admin.Close()
	learn := func(st classifier.Store, n byte, toks ...string) {
		t.Helper()
		op := classifier.LearnOp{Class: classifier.Spam, Tokens: toks, Date: 20240101}
		op.Digest[0] = n
		out, err := st.Learn(ctx, []classifier.LearnOp{op})
		if err != nil || out[0] != classifier.Learned {
			t.Fatalf("learn %d: %v %v", n, out, err)
		}
	}
	look := func(wantSpam, wantX uint32) {
		t.Helper()
		tot, c, err := a.Lookup(ctx, []string{"x", "y"})
		if err != nil {
			t.Fatalf("lookup as a user without XRANGE: %v", err)
		}
		if tot.Spam != wantSpam || c[0].Spam != wantX {
			t.Errorf("lookup: %d spam learned, x in %d; want %d and %d", tot.Spam, c[0].Spam, wantSpam, wantX)
		}
	}
	learn(a, 1, "x", "y") // XADD refused inside the script: learned all the same
	look(1, 1)
	look(1, 1)
	learn(admin, 2, "x") // logged, but this user may not read the log
	look(2, 2)
	learn(admin, 3, "x", "z")
	look(3, 3)
	look(3, 3)
}

// A lookup that reads tokens is a MULTI/EXEC, and Redis refuses a whole
// transaction with EXECABORT when it refuses one of its commands: without
// XRANGE the user must still classify when the cache lacks some of a
// message's tokens, as it does until the store is loaded, or always when
// the store has more tokens than the cache may hold.
func TestRedisWithoutLogCommandsTransaction(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	addNoLogUser(t, srv)
	// Room for four tokens, and the store has five: it is never loaded,
	// so the cache stays partial.
	a := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "nolog", Username: "nolog", Password: "nolog-pw", CacheTokens: 4})
	defer a.Close()
	admin := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "nolog"})
	defer admin.Close()
	learn := func(n byte, toks ...string) {
		t.Helper()
		op := classifier.LearnOp{Class: classifier.Spam, Tokens: toks, Date: 20240101}
		op.Digest[0] = n
		if _, err := admin.Learn(ctx, []classifier.LearnOp{op}); err != nil {
			t.Fatal(err)
		}
	}
	look := func(wantSpam, wantFirst uint32, toks ...string) {
		t.Helper()
		tot, c, err := a.Lookup(ctx, toks)
		if err != nil {
			t.Fatalf("lookup of %q as a user without XRANGE: %v", toks, err)
		}
		if tot.Spam != wantSpam || c[0].Spam != wantFirst {
			t.Errorf("lookup of %q: %d spam learned, %s in %d; want %d and %d", toks, tot.Spam, toks[0], c[0].Spam, wantSpam, wantFirst)
		}
	}
	learn(1, "a", "b", "c", "d", "e")
	look(1, 1, "a")      // nothing cached: no log to ask for
	look(1, 1, "a", "b") // b is not cached: tokens and log in one MULTI
	learn(2, "b")
	look(2, 2, "b", "c")
	look(2, 1, "c", "z")
	if st := a.CacheStatus(); st.Complete {
		t.Errorf("cache status %+v: the store has more tokens than it may hold", st)
	}
}

// refusalGate holds the first lookup round trip that Redis failed until a
// second one has failed too, so that two lookups were both sent before
// either could react to the failure.
type refusalGate struct {
	mu     sync.Mutex
	failed int
	second chan struct{}
}

func (g *refusalGate) RedisRoundTrip(op string, _ time.Duration, err error) {
	if op != "lookup" || err == nil {
		return
	}
	g.mu.Lock()
	g.failed++
	n := g.failed
	g.mu.Unlock()
	switch n {
	case 1:
		select {
		case <-g.second:
		case <-time.After(10 * time.Second):
		}
	case 2:
		close(g.second)
	}
}

// Lookups that were already on their way when Redis first refused the log
// to a user without XRANGE are asked again without it, like the first:
// every one of them succeeds, not just the one that noticed first.
func TestRedisWithoutLogCommandsConcurrent(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	addNoLogUser(t, srv)
	gate := &refusalGate{second: make(chan struct{})}
	// Room for one token, so that the store is never loaded and every
	// lookup below is a MULTI/EXEC.
	a := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "nolog", Username: "nolog", Password: "nolog-pw", Observer: gate, CacheTokens: 1})
	defer a.Close()
	admin := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "nolog"})
	defer admin.Close()
	learn := func(n byte) {
		t.Helper()
		op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"x", "p"}, Date: 20240101}
		op.Digest[0] = n
		if _, err := admin.Learn(ctx, []classifier.LearnOp{op}); err != nil {
			t.Fatal(err)
		}
	}
	learn(1)
	// The cache now has a generation, so the next lookups ask for the
	// log since it.
	if _, _, err := a.Lookup(ctx, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	learn(2)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			tot, c, err := a.Lookup(ctx, []string{"x", "y"})
			if err == nil && (tot.Spam != 2 || c[0].Spam != 2) {
				err = fmt.Errorf("%d spam learned, x in %d; want 2 and 2", tot.Spam, c[0].Spam)
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("lookup in flight when Redis refused the log: %v", err)
		}
	}
	gate.mu.Lock()
	defer gate.mu.Unlock()
	if gate.failed < 2 {
		t.Errorf("%d lookup round trips refused, want 2 or more (the test did not run both lookups at once)", gate.failed)
	}
}

// A server that refuses the connection's AUTH answers no script: every
// write must fail, naming the refusal, and none may report success. An
// import that reported success with nothing written would be believed.
func TestRedisWriteAuthRefused(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "secret")
	ctx := context.Background()
	for _, pw := range []string{"", "wrong"} {
		st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, Password: pw})
		want := "WRONGPASS"
		if pw == "" {
			want = "NOAUTH"
		}
		check := func(what string, err error) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("password %q, %s: %v, want an error naming %s", pw, what, err, want)
			}
		}
		_, err := st.Learn(ctx, []classifier.LearnOp{{Class: classifier.Spam, Tokens: []string{"a"}, Date: 20240101}})
		check("learn", err)
		err = st.Add(ctx, classifier.Batch{Totals: classifier.Totals{Spam: 1}, Records: []classifier.Record{{Token: "a", Counts: classifier.Counts{Spam: 1}}}})
		check("add", err)
		_, err = st.Prune(ctx, classifier.PruneOptions{MaxCount: 1})
		check("prune", err)
		check("set meta", st.SetMeta(ctx, classifier.MetaDialect, "sluice"))
		_, err = st.SetModel(ctx, 1, "model", "id")
		check("set model", err)
		st.Close()
	}
}

// With maxmemory reached under noeviction, Redis refuses writes, and
// docs/scaling.md promises that classification goes on. Redis also
// refuses every command queued in a MULTI then, reads included, so a
// lookup must not depend on one.
func TestRedisLookupOutOfMemory(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
	ctx := context.Background()
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "oom", CacheTokens: -1})
	defer st.Close()
	var err error
	learned := 0
	for i := 0; i < 5000; i++ {
		op := classifier.LearnOp{Class: classifier.Spam, Date: 20240101}
		op.Digest[0], op.Digest[1] = byte(i), byte(i>>8)
		for j := range 200 {
			op.Tokens = append(op.Tokens, fmt.Sprintf("token-%d-%d-%s", i, j, strings.Repeat("x", 20)))
		}
		if _, err = st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
			break
		}
		learned++
	}
	if err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("learning until maxmemory: %v, want an OOM error", err)
	}
	for _, cache := range []int{-1, 0} {
		st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "oom", CacheTokens: cache})
		tot, c, err := st.Lookup(ctx, []string{"token-0-0-" + strings.Repeat("x", 20), "unknown"})
		if err != nil {
			t.Errorf("cache_tokens %d: lookup at maxmemory: %v", cache, err)
		} else if tot.Spam != uint32(learned) || c[0].Spam != 1 || c[1] != (classifier.Counts{}) {
			t.Errorf("cache_tokens %d: lookup at maxmemory: totals %+v, counts %+v; want %d spam, 1 and 0", cache, tot, c, learned)
		}
		st.Close()
	}
	// An administrator's first look (sluice db stats), and the Bayes
	// filter's store metrics.
	st2 := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "oom", CacheTokens: -1})
	defer st2.Close()
	if size, err := st2.Size(ctx); err != nil || size.Spam != uint32(learned) {
		t.Errorf("size at maxmemory: %+v, %v; want %d spam", size, err, learned)
	}
	if stats, err := st2.Stats(ctx); err != nil || stats.Spam != uint32(learned) || stats.Tokens != 200*learned {
		t.Errorf("stats at maxmemory: %+v, %v; want %d spam, %d tokens", stats, err, learned, 200*learned)
	}
	// The cache loads all the same: the lookups of a daemon started
	// during the shortage need not each ask Redis for their tokens.
	st3 := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "oom"})
	defer st3.Close()
	if _, _, err := st3.Lookup(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	waitCache(t, st3, 1)
}

// A corrupt digest entry or message count fails a learn, and the import
// too, before anything is written, as a corrupt token does: taken as
// "not learned" or as 0, they would be overwritten, the message counted
// twice, and the totals silently reset.
func TestRedisCorruptDigestOrTotal(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := srv.Client(t)
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "cdt", CacheTokens: -1})
	defer st.Close()
	op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"tok"}, Date: 20240101}
	op.Digest[0] = 1
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		if v := rdb.HGet(ctx, "{cdt}:tokens", "tok").Val(); v != "1 0 20240101" {
			t.Errorf("%s: token counts %q, want them unchanged", what, v)
		}
	}

	if err := rdb.HSet(ctx, "{cdt}:digests", string(op.Digest[:]), "x").Err(); err != nil {
		t.Fatal(err)
	}
	if out, err := st.Learn(ctx, []classifier.LearnOp{op}); err == nil {
		t.Errorf("learn over a corrupt digest entry: %v, no error", out)
	}
	unchanged("learn over a corrupt digest entry")
	rdb.HSet(ctx, "{cdt}:digests", string(op.Digest[:]), "1")

	for _, bad := range []string{"zz", "-1", "4294967296", "1e3"} {
		if err := rdb.HSet(ctx, "{cdt}:meta", "spam", bad).Err(); err != nil {
			t.Fatal(err)
		}
		op2 := op
		op2.Digest[0] = 2
		if out, err := st.Learn(ctx, []classifier.LearnOp{op2}); err == nil {
			t.Errorf("learn over spam total %q: %v, no error", bad, out)
		}
		if err := st.Add(ctx, classifier.Batch{Totals: classifier.Totals{Spam: 1}, Records: []classifier.Record{{Token: "tok", Counts: classifier.Counts{Spam: 1}}}}); err == nil {
			t.Errorf("import over spam total %q: no error", bad)
		}
		unchanged(fmt.Sprintf("learn and import over spam total %q", bad))
		if v := rdb.HGet(ctx, "{cdt}:meta", "spam").Val(); v != bad {
			t.Errorf("spam total %q became %q", bad, v)
		}
	}
}

// A few learned messages of the tokenizer's 20,000 tokens each, which a
// sender whose spam is auto-learned can provide, fill the change log with
// 200,000 token changes. Another host's next lookup, and every lookup it
// has in flight meanwhile, would read and apply them all, seconds of CPU
// each; beyond a budget of changes its cache starts over instead, as it
// does when it is too many messages behind, and the counts stay right.
func TestRedisLogTooManyChanges(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "big"})
	defer st.Close()
	other := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "big"})
	defer other.Close()
	if _, err := st.Learn(ctx, []classifier.LearnOp{{Class: classifier.Ham, Tokens: []string{"first"}, Date: 20240101}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Lookup(ctx, []string{"first"}); err != nil {
		t.Fatal(err)
	}
	waitCache(t, other, 1)
	const msgs, toks = 10, 20000
	for i := range msgs {
		op := classifier.LearnOp{Class: classifier.Spam, Date: 20240102}
		op.Digest[0] = byte(i + 1)
		for j := range toks {
			op.Tokens = append(op.Tokens, fmt.Sprintf("big%02d-%05d", i, j))
		}
		op.Tokens = append(op.Tokens, "first")
		if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
			t.Fatal(err)
		}
	}
	tot, c, err := other.Lookup(ctx, []string{"first", "big03-00007"})
	if err != nil {
		t.Fatal(err)
	}
	if tot != (classifier.Totals{Spam: msgs, Ham: 1}) || c[0].Spam != msgs || c[0].Ham != 1 || c[1].Spam != 1 {
		t.Errorf("after the big messages: totals %+v, counts %+v", tot, c)
	}
	if cs := other.CacheStatus(); cs.Complete || cs.Tokens > toks {
		t.Errorf("the cache took in the log of %d token changes: %+v", msgs*toks, cs)
	}
}

// A token is singular when seen in one message in all; counts near the
// top of uint32 must not wrap around to look like one, as they do not in
// the bbolt store.
func TestRedisStatsSingularNoWrap(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
	defer st.Close()
	err := st.Add(ctx, classifier.Batch{Records: []classifier.Record{
		{Token: "huge", Counts: classifier.Counts{Spam: math.MaxUint32, Ham: 2, LastSeen: 20240101}},
		{Token: "once", Counts: classifier.Counts{Ham: 1, LastSeen: 20240101}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Tokens != 2 || stats.Singular != 1 {
		t.Errorf("stats: %d tokens, %d singular; want 2 and 1", stats.Tokens, stats.Singular)
	}
}

// Several hosts auto-learn the same messages at the same moment, some as
// spam and some as ham: each message ends up counted exactly once, in one
// class, its tokens with it, and exactly one host saw it learned.
func TestRedisSameMessageSeveralHosts(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const hosts, msgs = 6, 30
	stores := make([]*classifier.RedisStore, hosts)
	for i := range stores {
		stores[i] = openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "same"})
		defer stores[i].Close()
	}
	var learned [msgs]atomic.Int32
	var wg sync.WaitGroup
	for h, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"shared", fmt.Sprint("m", m)}, Date: 20240101}
				if h%2 == 1 && m%3 == 0 {
					op.Class = classifier.Ham
				}
				op.Digest[0] = byte(m)
				out, err := st.Learn(ctx, []classifier.LearnOp{op})
				if err != nil {
					t.Error(err)
					return
				}
				if out[0] == classifier.Learned {
					learned[m].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for m := range msgs {
		if n := learned[m].Load(); n != 1 {
			t.Errorf("message %d learned by %d hosts, want 1", m, n)
		}
	}
	toks := []string{"shared"}
	for m := range msgs {
		toks = append(toks, fmt.Sprint("m", m))
	}
	tot, c, err := stores[0].Lookup(ctx, toks)
	if err != nil {
		t.Fatal(err)
	}
	if tot.Spam+tot.Ham != msgs || c[0].Spam != tot.Spam || c[0].Ham != tot.Ham {
		t.Errorf("totals %+v, shared %+v: want %d messages in all, as many as shared counts", tot, c[0], msgs)
	}
	for m := range msgs {
		if c[m+1].Spam+c[m+1].Ham != 1 {
			t.Errorf("message %d counted %+v, want once", m, c[m+1])
		}
	}
}

// Under an evicting maxmemory-policy Redis may drop the meta hash alone
// (docs/scaling.md). The store then looks new, and writing to it would
// start the totals again from 0 under token counts that go on: every
// score wrong, and nothing said. Writes refuse instead, naming the cause,
// and change nothing.
func TestRedisMetaLost(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rdb := srv.Client(t)
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "lost", CacheTokens: -1})
	defer st.Close()
	op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"tok"}, Date: 20240101}
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, "{lost}:meta").Err(); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "meta") {
			t.Errorf("%s on a store that lost its meta hash: %v, want an error naming it", what, err)
		}
	}
	op.Digest[0] = 1
	_, err := st.Learn(ctx, []classifier.LearnOp{op})
	check("learn", err)
	check("import", st.Add(ctx, classifier.Batch{Records: []classifier.Record{{Token: "tok", Counts: classifier.Counts{Spam: 1}}}}))
	check("set meta", st.SetMeta(ctx, classifier.MetaDialect, "sluice"))
	_, err = st.SetModel(ctx, 1, "model", "id")
	check("set model", err)
	if n := rdb.Exists(ctx, "{lost}:meta").Val(); n != 0 {
		t.Error("the meta hash was written again")
	}
	if v := rdb.HGet(ctx, "{lost}:tokens", "tok").Val(); v != "1 0 20240101" {
		t.Errorf("token counts %q, want them unchanged", v)
	}
	// The CLI's read-only commands still find the store, so that the
	// administrator sees its tokens (sluice db stats, export), not "no
	// store" as if the prefix were mistyped.
	if found, err := st.Exists(ctx); err != nil || !found {
		t.Errorf("exists: %v, %v; want true", found, err)
	}
	if stats, err := st.Stats(ctx); err != nil || stats.Tokens != 1 {
		t.Errorf("stats: %+v, %v; want 1 token", stats, err)
	}

	// A new store, and one whose tokens were all pruned, still take writes.
	fresh := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "fresh", CacheTokens: -1})
	defer fresh.Close()
	if err := fresh.SetMeta(ctx, classifier.MetaDialect, "sluice"); err != nil {
		t.Errorf("set meta on a new store: %v", err)
	}
	if _, err := fresh.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Errorf("learn on a new store: %v", err)
	}
	if _, err := fresh.Prune(ctx, classifier.PruneOptions{MaxCount: 10}); err != nil {
		t.Fatal(err)
	}
	op.Digest[0] = 2
	if _, err := fresh.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Errorf("learn on a pruned store: %v", err)
	}
}

// Tokens are whatever bytes a sender puts in a message: the change log's
// separators, NUL and invalid UTF-8, the names of the meta fields, a token
// of 200 kB. Each is its own field, reaches another host's cache through
// the log intact, and touches nothing else.
func TestRedisHostileTokens(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "hostile"})
	defer st.Close()
	other := openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "hostile"})
	defer other.Close()
	toks := []string{"a:b", "a b", "a\nb", "3:abc 1 1 1\n", "\x00\xff\xfe", "version", "spam", "gen", "m:dialect", "m:" + classifier.MetaModelID, "-0", strings.Repeat("L", 200_000)}
	if _, err := st.Learn(ctx, []classifier.LearnOp{{Class: classifier.Ham, Tokens: []string{"warm"}, Date: 20240101}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Lookup(ctx, toks); err != nil {
		t.Fatal(err)
	}
	waitCache(t, other, 1)
	op := classifier.LearnOp{Class: classifier.Spam, Tokens: toks, Date: 20240102}
	op.Digest[0] = 1
	if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*classifier.RedisStore{other, st} {
		tot, c, err := s.Lookup(ctx, toks)
		if err != nil {
			t.Fatal(err)
		}
		if tot != (classifier.Totals{Spam: 1, Ham: 1}) {
			t.Errorf("totals %+v, want 1 spam, 1 ham", tot)
		}
		for i, cnt := range c {
			if cnt != (classifier.Counts{Spam: 1, LastSeen: 20240102}) {
				t.Errorf("token %.20q: %+v", toks[i], cnt)
			}
		}
	}
	if cs := other.CacheStatus(); !cs.Complete {
		t.Errorf("the other host's cache started over: %+v", cs)
	}
	if d, err := st.Meta(ctx, classifier.MetaDialect); err != nil || d != "" {
		t.Errorf("dialect %q, %v; want none", d, err)
	}
	n := 0
	if err := st.Walk(ctx, func(classifier.Record) error { n++; return nil }); err != nil || n != len(toks)+1 {
		t.Errorf("walk: %d tokens, %v; want %d", n, err, len(toks)+1)
	}
}
