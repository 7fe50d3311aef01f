package classifier_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// Sentinel failover (docs/scaling.md), as TestRedisClusterFailover for a
// Cluster: the master dies (or hangs: SIGSTOP, no reset, reads time out),
// the Sentinel promotes the replica, and two stores (two hosts) go on
// without being reopened, with every count learned before, within a few
// seconds of the promotion; a learn by one after the failover is seen by
// the other's cache. Then the old master comes back (resumed, or
// restarted empty) and the Sentinel makes it a replica of the new one:
// writes must not go to it, and every learn that reported success is
// counted exactly once, as is every failed learn once learned again.
func TestRedisSentinelFailoverHosts(t *testing.T) {
	t.Run("kill", func(t *testing.T) { testRedisSentinelFailoverHosts(t, false) })
	t.Run("pause", func(t *testing.T) { testRedisSentinelFailoverHosts(t, true) })
}

func testRedisSentinelFailoverHosts(t *testing.T, pause bool) {
	sn := redistest.StartSentinel(t)
	const timeout = 300 * time.Millisecond
	// A hung master holds a learn for its whole write timeout.
	const writeTimeout = time.Second
	opts := classifier.RedisOptions{Addrs: []string{sn.Addr}, MasterName: sn.MasterName, KeyPrefix: "sfailover",
		Timeout: timeout, WriteTimeout: writeTimeout}
	a := openRedisStore(t, opts)
	defer a.Close()
	b := openRedisStore(t, opts)
	defer b.Close()
	ctx := context.Background()

	// What the store must hold: the learns that reported success, each
	// once. A failed learn may or may not have been applied (on a master
	// that then lost it); it is kept to be learned again at the end.
	var (
		digest byte
		total  classifier.Totals
		counts = map[string][2]uint32{}
		failed []classifier.LearnOp
	)
	apply := func(op classifier.LearnOp) {
		i := 0
		if op.Class == classifier.Spam {
			total.Spam++
		} else {
			total.Ham++
			i = 1
		}
		for _, tok := range op.Tokens {
			c := counts[tok]
			c[i]++
			counts[tok] = c
		}
	}
	learnOp := func(st classifier.Store, op classifier.LearnOp) error {
		_, err := st.Learn(ctx, []classifier.LearnOp{op})
		if err == nil {
			apply(op)
		}
		return err
	}
	learn := func(st classifier.Store, class classifier.Class, toks ...string) error {
		op := newOp(&digest, class, toks...)
		err := learnOp(st, op)
		if err != nil {
			failed = append(failed, op)
		}
		return err
	}
	// check compares what st looks up with the model, exactly.
	check := func(st classifier.Store) error {
		toks := append(slices.Sorted(maps.Keys(counts)), "unseen")
		tot, c, err := st.Lookup(ctx, toks)
		if err != nil {
			return err
		}
		if tot != total {
			return fmt.Errorf("totals %+v, want %+v", tot, total)
		}
		for i, tok := range toks {
			if got, want := [2]uint32{c[i].Spam, c[i].Ham}, counts[tok]; got != want {
				return fmt.Errorf("token %s: spam/ham %v, want %v", tok, got, want)
			}
		}
		return nil
	}
	// retry runs fn until it works, failing the test after the deadline
	// or at an error other than ErrUnavailable.
	retry := func(what string, deadline time.Time, fn func() error) {
		t.Helper()
		for {
			err := fn()
			if err == nil {
				return
			}
			if !errors.Is(err, classifier.ErrUnavailable) {
				t.Fatalf("%s: %v, want ErrUnavailable until it works", what, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not working by the deadline: %v", what, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	for _, m := range []struct {
		class classifier.Class
		toks  []string
	}{
		{classifier.Spam, []string{"x", "y"}},
		{classifier.Spam, []string{"x", "z"}},
		{classifier.Ham, []string{"y", "z"}},
		{classifier.Spam, []string{"x"}},
		{classifier.Ham, []string{"z"}},
	} {
		if err := learn(a, m.class, m.toks...); err != nil {
			t.Fatal(err)
		}
	}
	if err := check(a); err != nil {
		t.Fatalf("before the failover: %v", err)
	}
	// b's cache follows a's learning from here on: load it.
	if err := check(b); err != nil {
		t.Fatalf("other store before the failover: %v", err)
	}

	old, replica := sn.Master, sn.Replica
	sn.WaitReplicated(t)
	if pause {
		old.Pause(t)
	} else {
		old.Kill(t)
	}
	stopped := time.Now()

	// The outage: lookups and learns fail as unavailable, each within its
	// timeout, instead of hanging.
	for i := range 3 {
		start := time.Now()
		err := check(a)
		if i == 0 {
			t.Logf("lookup in the outage: %v", err)
		}
		if took := time.Since(start); took > timeout+200*time.Millisecond {
			t.Errorf("lookup %d in the outage took %v, timeout %v", i, took, timeout)
		}
		if err == nil {
			// The Sentinel cannot have promoted the replica this
			// soon (down-after 1 s).
			if time.Since(stopped) < time.Second {
				t.Errorf("lookup %d worked %v after the master stopped", i, time.Since(stopped))
			}
			break
		}
		if !errors.Is(err, classifier.ErrUnavailable) {
			t.Errorf("lookup %d in the outage: %v, want ErrUnavailable", i, err)
		}
		start = time.Now()
		err = learn(b, classifier.Spam, "outage", "x")
		if i == 0 {
			t.Logf("learn in the outage: %v", err)
		}
		if took := time.Since(start); took > writeTimeout+200*time.Millisecond {
			t.Errorf("learn %d in the outage took %v", i, took)
		}
		if err != nil && !errors.Is(err, classifier.ErrUnavailable) {
			t.Errorf("learn %d in the outage: %v, want ErrUnavailable", i, err)
		}
		if err == nil && time.Since(stopped) < time.Second {
			t.Errorf("learn %d worked %v after the master stopped", i, time.Since(stopped))
		}
		time.Sleep(100 * time.Millisecond)
	}

	deadline := time.Now().Add(30 * time.Second)
	for sn.MasterAddr(t) != replica.Addr {
		if time.Now().After(deadline) {
			t.Fatal("the Sentinel did not promote the replica within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	promoted := time.Now()
	t.Logf("the Sentinel promoted %s %v after the master stopped", replica.Addr, promoted.Sub(stopped).Round(10*time.Millisecond))

	// Both stores find the new master by themselves, polling as mail
	// would, within seconds, with exactly what was learned: the failed
	// learns of the outage went to the old master, or nowhere.
	deadline = promoted.Add(5 * time.Second)
	retry("lookup after the promotion", deadline, func() error { return check(a) })
	t.Logf("lookups work again %v after the master stopped, %v after the promotion",
		time.Since(stopped).Round(10*time.Millisecond), time.Since(promoted).Round(10*time.Millisecond))
	// One message, tried until it works: a try that failed but was
	// applied must not count it twice.
	op := newOp(&digest, classifier.Spam, "x", "new")
	retry("learn after the promotion", deadline, func() error { return learnOp(a, op) })
	t.Logf("learning works again %v after the promotion", time.Since(promoted).Round(10*time.Millisecond))
	// The other host's cache sees that learn at its next lookup, from
	// the promoted replica's change log.
	retry("other store after the promotion", deadline, func() error { return check(b) })
	t.Logf("the other store follows %v after the promotion", time.Since(promoted).Round(10*time.Millisecond))

	// The old master comes back, still a master in its own view (with
	// the pause, it even runs the requests it received while hung) until
	// the Sentinel makes it a replica of the new one.
	if pause {
		old.Resume(t)
	} else {
		old.Restart(t)
	}
	back := time.Now()
	// Learns while it believes it is the master (the Sentinel reconfigures
	// a returning instance at its next INFO, up to 10 s later) go to the
	// new master all the same: a learn that went to the old one would be
	// lost when it becomes a replica, and fail the final count.
	for i, st := range []classifier.Store{a, b} {
		if err := learnOp(st, newOp(&digest, classifier.Spam, "z", "window")); err != nil {
			t.Errorf("learn %d as the old master came back: %v", i, err)
		}
	}
	oc := old.Client(t)
	if r := redistest.ParseInfo(oc.Info(ctx, "replication").Val()); r["role"] != "master" {
		t.Logf("the old master was already %q when the window learns were done", r["role"])
	}
	deadline = back.Add(40 * time.Second)
	for {
		info, err := oc.Info(ctx, "replication").Result()
		if err == nil {
			r := redistest.ParseInfo(info)
			if r["role"] == "slave" && r["master_port"] == strconv.Itoa(replica.Port) && r["master_link_status"] == "up" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old master is not a replica of %s within 40 s: %v %s", replica.Addr, err, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the Sentinel made the old master a replica %v after it came back", time.Since(back).Round(10*time.Millisecond))
	if err := oc.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	// Learns work at once, from both hosts (none goes to the old master:
	// it would refuse it as READONLY), and each cache follows the other.
	for i, st := range []classifier.Store{a, b, a} {
		if err := learnOp(st, newOp(&digest, classifier.Ham, "y", "back")); err != nil {
			t.Errorf("learn %d after the old master came back: %v", i, err)
		}
	}
	// The learns that failed in the outage, learned again: each counts
	// once whether or not an earlier try reached a master.
	for _, op := range failed {
		retry("learning a failed learn again", time.Now().Add(5*time.Second), func() error { return learnOp(b, op) })
	}
	t.Logf("%d learns of the outage failed and were learned again", len(failed))
	for _, st := range []classifier.Store{a, b} {
		if err := check(st); err != nil {
			t.Errorf("after the old master came back: %v", err)
		}
	}
	if n, err := replica.Client(t).Wait(ctx, 1, 10*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT for the old master to replicate the new one: %d %v", n, err)
	}
	stats := redistest.ParseInfo(oc.Info(ctx, "commandstats").Val())
	if s := stats["cmdstat_evalsha"]; s != "" {
		t.Errorf("the old master, a replica, was sent learns: %s", s)
	}
	// The old master now holds the same counts (the replica of a store
	// is the store).
	spam, err := oc.HGet(ctx, "{"+opts.KeyPrefix+"}:meta", "spam").Result()
	if err != nil || spam != strconv.FormatUint(uint64(total.Spam), 10) {
		t.Errorf("old master's spam total %q, %v; want %d", spam, err, total.Spam)
	}
}

// newOp returns a learn op of class with toks and the next digest: each
// call counts *digest up, so every op is another message.
func newOp(digest *byte, class classifier.Class, toks ...string) classifier.LearnOp {
	*digest++
	op := classifier.LearnOp{Class: class, Tokens: toks, Date: 20240101}
	op.Digest[0] = *digest
	return op
}

// A planned switchover (SENTINEL FAILOVER) while two hosts learn without
// pause: Redis replicates asynchronously and the Sentinel does not fence
// the old master, which goes on acknowledging learns between the
// replica's promotion and the Sentinel announcing it; those are lost when
// it becomes a replica. The test pins what sluice guarantees around that:
// no learn hangs, one that fails (in flight on a connection go-redis
// closes at the switch) fails as unavailable, the stores follow the
// switch, no learn counts twice, and learning every message again (as
// sluice train does) leaves each counted exactly once. How many were
// lost is logged. With wait_replicas 1 none may be: a learn the replica
// did not acknowledge fails instead.
func TestRedisSentinelSwitchover(t *testing.T) {
	t.Run("async", func(t *testing.T) { testRedisSentinelSwitchover(t, 0) })
	t.Run("wait_replicas", func(t *testing.T) { testRedisSentinelSwitchover(t, 1) })
}

func testRedisSentinelSwitchover(t *testing.T, waitReplicas int) {
	sn := redistest.StartSentinel(t)
	opts := classifier.RedisOptions{Addrs: []string{sn.Addr}, MasterName: sn.MasterName, KeyPrefix: "switchover",
		Timeout: 300 * time.Millisecond, WriteTimeout: time.Second, WaitReplicas: waitReplicas}
	a := openRedisStore(t, opts)
	defer a.Close()
	b := openRedisStore(t, opts)
	defer b.Close()
	ctx := context.Background()
	op := func(id uint32) classifier.LearnOp {
		o := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"x", "w" + strconv.Itoa(int(id>>24))}, Date: 20240101}
		o.Digest[0], o.Digest[1], o.Digest[2], o.Digest[3] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
		return o
	}
	// The replica's first sync done, before a learn waits for it. On a
	// busy machine the replica's acknowledgement of this first learn may
	// take longer than wait_replicas waits: the learn fails as
	// unavailable and is made again, which counts it once.
	sn.WaitReplicated(t)
	for try := 1; ; try++ {
		_, err := a.Learn(ctx, []classifier.LearnOp{op(0xff << 24)})
		if err == nil {
			break
		}
		if !errors.Is(err, classifier.ErrUnavailable) || try == 10 {
			t.Fatal(err)
		}
		t.Logf("first learn, try %d: %v", try, err)
	}
	sn.WaitReplicated(t)

	var (
		mu     sync.Mutex
		acked  = map[uint32]time.Time{}
		failed []uint32
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w, st := range []classifier.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint32(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := uint32(w)<<24 | i
				start := time.Now()
				_, err := st.Learn(ctx, []classifier.LearnOp{op(id)})
				took := time.Since(start)
				if err != nil && (!errors.Is(err, classifier.ErrUnavailable) || took > opts.WriteTimeout+200*time.Millisecond) {
					t.Errorf("learn during the switchover, after %v: %v; want ErrUnavailable within the write timeout", took, err)
				}
				mu.Lock()
				if err == nil {
					acked[id] = time.Now()
				} else {
					failed = append(failed, id)
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, Protocol: 2, DisableIdentity: true})
	defer sc.Close()
	start := time.Now()
	if err := sc.Failover(ctx, sn.MasterName).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := start.Add(30 * time.Second)
	for sn.MasterAddr(t) != sn.Replica.Addr {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatal("the Sentinel did not switch within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	switched := time.Since(start)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// Which acknowledged learns the new master lacks, and when they were
	// acknowledged; and how many learns it has in all.
	nc := sn.Replica.Client(t)
	has := func(id uint32) bool {
		d := op(id).Digest
		return nc.HExists(ctx, "{"+opts.KeyPrefix+"}:digests", string(d[:])).Val()
	}
	var lost, present int
	var first, last time.Duration
	for _, id := range failed {
		if has(id) {
			present++
		}
	}
	for id, at := range acked {
		if has(id) {
			present++
			continue
		}
		at := at.Sub(start)
		if lost == 0 || at < first {
			first = at
		}
		last = max(last, at)
		lost++
	}
	t.Logf("switch seen %v after SENTINEL FAILOVER; %d learns acknowledged, %d of them lost (acknowledged %v to %v after it); %d failed",
		switched.Round(time.Millisecond), len(acked), lost, first.Round(time.Millisecond), last.Round(time.Millisecond), len(failed))
	if waitReplicas > 0 && lost > 0 {
		t.Errorf("wait_replicas %d: %d learns reported success and were lost", waitReplicas, lost)
	}
	tot, _, err := b.Lookup(ctx, []string{"x"})
	if err != nil || int(tot.Spam) != 1+present {
		t.Errorf("after the switchover: spam %d, %v; want %d, each learn the new master has once", tot.Spam, err, 1+present)
	}

	// Everything learned again, in batches: each message counts once.
	// With wait_replicas, learns fail until the old master, a replica
	// now, has synced with the new one; a batch that failed is learned
	// again.
	ids := append(slices.Sorted(maps.Keys(acked)), failed...)
	all := len(ids)
	deadline = time.Now().Add(30 * time.Second)
	for len(ids) > 0 {
		n := min(len(ids), 500)
		ops := make([]classifier.LearnOp, n)
		for i, id := range ids[:n] {
			ops[i] = op(id)
		}
		if _, err := a.Learn(ctx, ops); err != nil {
			if waitReplicas == 0 || !errors.Is(err, classifier.ErrUnavailable) || time.Now().After(deadline) {
				t.Fatalf("learning again: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		ids = ids[n:]
	}
	for _, st := range []classifier.Store{a, b} {
		tot, c, err := st.Lookup(ctx, []string{"x", "w0", "w1"})
		if err != nil || int(tot.Spam) != 1+all || int(c[0].Spam) != 1+all || int(c[1].Spam+c[2].Spam) != all {
			t.Errorf("after learning again: %+v %+v, %v; want %d spam", tot, c, err, 1+all)
		}
	}
}
