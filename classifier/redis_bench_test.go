package classifier_test

import (
	"context"
	"crypto/sha1"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// corpusMessage is one message of the SpamAssassin corpus.
type corpusMessage struct {
	raw  []byte
	spam bool
}

// corpusSplit fetches the SpamAssassin corpus (testdata/corpus) and splits
// it as the accuracy benchmark (classifier/internal/accuracy) does: a
// message is in the test set iff the SHA-1 of its path relative to the
// data directory, read as a number, is 0 modulo 5.
func corpusSplit(b *testing.B) (train, test []corpusMessage) {
	b.Helper()
	out, err := exec.Command("bash", filepath.Join("..", "testdata", "corpus", "fetch-spamassassin.sh")).Output()
	if err != nil {
		redistest.Unavailable(b, "SpamAssassin corpus: fetch-spamassassin.sh: %v", err)
	}
	data := strings.TrimSpace(string(out))
	five := big.NewInt(5)
	for _, g := range []struct {
		name string
		spam bool
	}{{"easy-ham-1", false}, {"easy-ham-2", false}, {"hard-ham-1", false}, {"spam-1", true}, {"spam-2", true}} {
		names, _ := filepath.Glob(filepath.Join(data, g.name, "*.txt"))
		if len(names) == 0 {
			b.Fatalf("no messages in %s/%s", data, g.name)
		}
		for _, name := range names {
			raw, err := os.ReadFile(name)
			if err != nil {
				b.Fatal(err)
			}
			sum := sha1.Sum([]byte(g.name + "/" + filepath.Base(name)))
			m := corpusMessage{raw: raw, spam: g.spam}
			if new(big.Int).Mod(new(big.Int).SetBytes(sum[:]), five).Sign() == 0 {
				test = append(test, m)
			} else {
				train = append(train, m)
			}
		}
	}
	return train, test
}

// trainAll learns the messages into st in batches of 200, as sluice train
// did before its token bound came to end most of its batches; both stores
// get the same ones.
func trainAll(b *testing.B, st classifier.Store, ops []classifier.LearnOp) {
	b.Helper()
	for i := 0; i < len(ops); i += 200 {
		if _, err := st.Learn(context.Background(), ops[i:min(i+200, len(ops))]); err != nil {
			b.Fatal(err)
		}
	}
}

// classifyPass classifies every message with workers goroutines and
// returns the time it took and the spamicities.
func classifyPass(b *testing.B, c *classifier.Classifier, msgs []corpusMessage, workers int) (time.Duration, []float64) {
	b.Helper()
	scores := make([]float64, len(msgs))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(msgs); i += workers {
				res, err := c.ClassifyBytes(context.Background(), msgs[i].raw, false)
				if err != nil {
					errs <- err
					return
				}
				scores[i] = res.Spamicity
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took, scores
}

// BenchmarkRedisVsBoltClassify trains a bbolt store and a Redis store
// (a redis-server on loopback, started by the benchmark) on the training
// part of the SpamAssassin corpus, then classifies the test part with
// each, alternately, one pass per iteration: sequentially and with one
// worker per CPU, as the daemon's sessions do. Every Redis pass gets a
// store opened for it, as a daemon that has been running: before the
// timed pass (untimed) it classifies the training messages, and meanwhile
// loads its cache of token counts in the background (see
// RedisOptions.CacheTokens). The bbolt store keeps its in-memory index,
// which holds the whole store, across passes. It reports messages per
// second for both, the ratio Redis/bbolt (the target is at least 0.5),
// Redis round trips per classified message (the design is 1), the share
// of timed passes that started with the whole store in the cache and how
// long loading it took (redis_load_ms, untimed), and the Redis memory per
// entry of the trained store (INFO memory, change log included). Both
// stores must give every message the same spamicity.
//
//	go test -run '^$' -bench RedisVsBolt -benchtime 5x ./classifier/
func BenchmarkRedisVsBoltClassify(b *testing.B) {
	train, test := corpusSplit(b)
	srv := redistest.Start(b)
	ctx := context.Background()
	base := srv.Info(b, "memory")

	bolt := openTestStore(b, filepath.Join(b.TempDir(), "db"))
	defer bolt.Close()
	obs := &countingObserver{}
	rs, err := classifier.OpenRedis(classifier.RedisOptions{Addrs: []string{srv.Addr}, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	tok := classifier.New(bolt, classifier.Params{})
	ops := make([]classifier.LearnOp, len(train))
	for i, m := range train {
		class := classifier.Ham
		if m.spam {
			class = classifier.Spam
		}
		ops[i] = tok.PrepareBytes(m.raw, class, false)
	}
	trainAll(b, bolt, ops)
	stats0 := srv.Info(b, "commandstats")
	trainAll(b, rs, ops)
	stats1 := srv.Info(b, "commandstats")
	// Both stores get the n-gram model, as train fits it.
	for _, s := range []classifier.Store{bolt, rs} {
		if _, err := classifier.Refit(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	st, err := rs.Size(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mem := srv.Info(b, "memory")
	used := atoi(b, mem["used_memory"]) - atoi(b, base["used_memory"])

	p := classifier.DefaultParams()
	cb := classifier.New(bolt, p)
	// Each pass gets a Redis store of its own, as a daemon that has
	// been running: it classified the training messages before (not
	// timed), as they arrived, so its cache of token counts holds what
	// that mail had. The test messages are new to it. (A store kept
	// across passes would find every token of a pass cached from the
	// previous one.)
	var complete, loads int
	var loadTime time.Duration
	passStore := func() (*classifier.Classifier, func()) {
		b.StopTimer()
		defer b.StartTimer()
		st, err := classifier.OpenRedis(classifier.RedisOptions{Addrs: []string{srv.Addr}, Observer: obs})
		if err != nil {
			b.Fatal(err)
		}
		c := classifier.New(st, p)
		classifyPass(b, c, train, runtime.GOMAXPROCS(0))
		// The pass runs as it finds the cache: complete, or partial
		// while the load is still running.
		cs := st.CacheStatus()
		if cs.Complete {
			complete++
		}
		return c, func() {
			cs := st.CacheStatus()
			loads += cs.Loads
			loadTime += cs.LoadTime
			st.Close()
		}
	}
	workers := runtime.GOMAXPROCS(0)
	var boltSeq, redisSeq, boltPar, redisPar time.Duration
	var lookups, failed int
	var cpu time.Duration
	// timed runs a Redis pass, counting its round trips and Redis's CPU.
	timed := func(c *classifier.Classifier, workers int) (time.Duration, []float64) {
		l0, f0 := obs.get("lookup")
		cpu0 := redisCPU(b, srv)
		d, scores := classifyPass(b, c, test, workers)
		cpu += redisCPU(b, srv) - cpu0
		l1, f1 := obs.get("lookup")
		lookups += l1 - l0
		failed += f1 - f0
		return d, scores
	}
	passes := 0
	var execUsec int64
	b.ResetTimer()
	for b.Loop() {
		tb, sb := classifyPass(b, cb, test, 1)
		cr, done := passStore()
		e0 := lookupUsec(srv.Info(b, "commandstats"))
		tr, sr := timed(cr, 1)
		execUsec += lookupUsec(srv.Info(b, "commandstats")) - e0
		done()
		for i := range sb {
			if sb[i] != sr[i] {
				b.Fatalf("test message %d: bbolt spamicity %v, Redis %v", i, sb[i], sr[i])
			}
		}
		tbp, _ := classifyPass(b, cb, test, workers)
		cr, done = passStore()
		e0 = lookupUsec(srv.Info(b, "commandstats"))
		trp, _ := timed(cr, workers)
		execUsec += lookupUsec(srv.Info(b, "commandstats")) - e0
		done()
		boltSeq += tb
		redisSeq += tr
		boltPar += tbp
		redisPar += trp
		passes++
	}
	if failed != 0 {
		b.Fatalf("%d lookups failed", failed)
	}
	n := float64(passes * len(test))
	rate := func(d time.Duration) float64 { return n / d.Seconds() }
	b.ReportMetric(rate(boltSeq), "bbolt_msgs/s")
	b.ReportMetric(rate(redisSeq), "redis_msgs/s")
	b.ReportMetric(rate(redisSeq)/rate(boltSeq), "redis/bbolt")
	b.ReportMetric(rate(boltPar), "bbolt_par_msgs/s")
	b.ReportMetric(rate(redisPar), "redis_par_msgs/s")
	b.ReportMetric(rate(redisPar)/rate(boltPar), "redis/bbolt_par")
	b.ReportMetric(float64(lookups)/(2*n), "round_trips/msg")
	b.ReportMetric(float64(complete)/float64(2*passes), "redis_complete_passes")
	if loads > 0 {
		b.ReportMetric(float64(loadTime.Milliseconds())/float64(loads), "redis_load_ms")
	}
	b.ReportMetric(float64(used)/float64(st.Tokens+st.Digests), "redis_B/entry")
	// Redis's own time (its one thread) per lookup, in the commands a
	// lookup sends (HMGETs, XRANGE; also counted so inside a MULTI/EXEC),
	// and per learned message, one EVALSHA.
	b.ReportMetric(float64(execUsec)/float64(lookups), "redis_us/lookup")
	b.ReportMetric(float64(cmdUsec(stats1, "evalsha")-cmdUsec(stats0, "evalsha"))/float64(len(ops)), "redis_us/learn")
	// All the CPU time of redis-server per lookup: reading and parsing
	// the request and writing the reply as well as the commands.
	b.ReportMetric(cpu.Seconds()*1e6/float64(lookups), "redis_cpu_us/lookup")
	b.Logf("train %d, test %d messages (%d workers in the parallel passes); Redis store: %d tokens, %d digests, used_memory +%d bytes (%.1f MB)",
		len(train), len(test), workers, st.Tokens, st.Digests, used, float64(used)/1e6)
}

// redisCPU returns the CPU time redis-server has used (INFO cpu).
func redisCPU(b *testing.B, srv *redistest.Server) time.Duration {
	b.Helper()
	info := srv.Info(b, "cpu")
	var total float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, err := strconv.ParseFloat(info[k], 64)
		if err != nil {
			b.Fatalf("INFO cpu %s: %q", k, info[k])
		}
		total += v
	}
	return time.Duration(total * float64(time.Second))
}

// lookupUsec returns the microseconds Redis spent in the commands of
// lookups.
func lookupUsec(stats map[string]string) int64 {
	return cmdUsec(stats, "hmget") + cmdUsec(stats, "xrange")
}

// cmdUsec returns the microseconds Redis spent in a command, from INFO
// commandstats ("cmdstat_exec:calls=3,usec=120,...").
func cmdUsec(stats map[string]string, cmd string) int64 {
	for _, f := range strings.Split(stats["cmdstat_"+cmd], ",") {
		if v, ok := strings.CutPrefix(f, "usec="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func atoi(b *testing.B, s string) int64 {
	b.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		b.Fatalf("INFO value %q: %v", s, err)
	}
	return n
}

// memToken returns the i-th token of a vocabulary shaped like real ones:
// lengths spread as the tokens of the SpamAssassin corpus are (mostly 4 to
// 14 bytes, some header-tagged and longer).
func memToken(r *rand.Rand, i int) string {
	prefixes := []string{"", "", "", "", "", "subj:", "from:", "url:", "rcvd:", "to:"}
	n := 3 + r.IntN(10)
	return fmt.Sprintf("%s%0*x", prefixes[r.IntN(len(prefixes))], n, i)
}

// BenchmarkRedisMemory fills a fresh Redis store with one million tokens
// (plausible counts and dates) and 100,000 learned-message digests, and
// reports the memory Redis uses for them, measured with INFO memory:
// the sizing figure of docs/scaling.md.
//
//	go test -run '^$' -bench RedisMemory -benchtime 1x ./classifier/
func BenchmarkRedisMemory(b *testing.B) {
	const tokens, digests = 1_000_000, 100_000
	for b.Loop() {
		srv := redistest.Start(b)
		rs, err := classifier.OpenRedis(classifier.RedisOptions{Addrs: []string{srv.Addr}})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		before := atoi(b, srv.Info(b, "memory")["used_memory"])
		r := rand.New(rand.NewPCG(7, 8))
		for i := 0; i < tokens; i += 20000 {
			var batch classifier.Batch
			for j := i; j < min(i+20000, tokens); j++ {
				batch.Records = append(batch.Records, classifier.Record{Token: memToken(r, j), Counts: classifier.Counts{
					Spam: uint32(r.IntN(30)), Ham: uint32(r.IntN(30) + 1), LastSeen: classifier.Date(20240101 + r.IntN(28))}})
			}
			if err := rs.Add(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		mid := atoi(b, srv.Info(b, "memory")["used_memory"])
		for i := 0; i < digests; i += 20000 {
			var batch classifier.Batch
			for j := i; j < min(i+20000, digests); j++ {
				var d classifier.DigestClass
				d.Class = classifier.Class(1 + j%2)
				for k := range d.Digest {
					d.Digest[k] = byte(r.Uint32())
				}
				batch.Digests = append(batch.Digests, d)
			}
			if err := rs.Add(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		after := atoi(b, srv.Info(b, "memory")["used_memory"])
		st, err := rs.Size(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.Tokens != tokens || st.Digests != digests {
			b.Fatalf("store has %d tokens and %d digests, want %d and %d", st.Tokens, st.Digests, tokens, digests)
		}
		rs.Close()
		b.ReportMetric(float64(mid-before)/tokens, "B/token")
		b.ReportMetric(float64(mid-before)/1e6, "MB/1M_tokens")
		b.ReportMetric(float64(after-mid)/digests, "B/digest")
		b.ReportMetric(float64(after)/1e6, "used_memory_MB")
		srv.Kill(b)
	}
}
