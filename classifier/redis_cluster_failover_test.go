package classifier_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// Cluster failover (docs/scaling.md): the master holding the store's slot
// dies (or hangs), its replica takes over, and the same stores go on,
// without being reopened, with every count learned before (replicated
// before the kill), within a few seconds of the promotion. While no node
// serves the slot, lookups and learning fail within their timeouts with
// ErrUnavailable. Two stores stand for two hosts, each with its cache (on
// by default): after the failover a learn by one is seen by the other's
// next lookup.
func TestRedisClusterFailover(t *testing.T) {
	t.Run("kill", func(t *testing.T) { testRedisClusterFailover(t, false) })
	t.Run("pause", func(t *testing.T) { testRedisClusterFailover(t, true) })
}

func testRedisClusterFailover(t *testing.T, pause bool) {
	cl := redistest.StartClusterReplicas(t, 3)
	const timeout = 300 * time.Millisecond
	// A hung master holds a learn for its whole write timeout.
	const writeTimeout = time.Second
	opts := classifier.RedisOptions{Addrs: cl.Addrs, Cluster: true, KeyPrefix: "failover", Timeout: timeout, WriteTimeout: writeTimeout}
	a := openRedisStore(t, opts)
	defer a.Close()
	b := openRedisStore(t, opts)
	defer b.Close()
	ctx := context.Background()

	toks := []string{"x", "y", "z", "unseen"}
	var digest byte
	learn := func(st classifier.Store, class classifier.Class, toks ...string) error {
		_, err := st.Learn(ctx, []classifier.LearnOp{newOp(&digest, class, toks...)})
		return err
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
	type snapshot struct {
		tot    classifier.Totals
		counts []uint32 // spam, ham of each token
	}
	look := func(st classifier.Store) (snapshot, error) {
		tot, c, err := st.Lookup(ctx, toks)
		if err != nil {
			return snapshot{}, err
		}
		s := snapshot{tot: tot}
		for _, c := range c {
			s.counts = append(s.counts, c.Spam, c.Ham)
		}
		return s, nil
	}
	before, err := look(a)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{3, 0, 1, 1, 1, 2, 0, 0}; before.tot != (classifier.Totals{Spam: 3, Ham: 2}) || !slices.Equal(before.counts, want) {
		t.Fatalf("before the failover: %+v, want totals 3/2 and counts %v", before, want)
	}
	// b's cache follows a's learning from here on: load it.
	if s, err := look(b); err != nil || !slices.Equal(s.counts, before.counts) {
		t.Fatalf("other store before the failover: %+v, %v", s, err)
	}

	key := "{" + opts.KeyPrefix + "}:meta"
	master, err := cl.MasterOf(t, key)
	if err != nil {
		t.Fatal(err)
	}
	cl.WaitReplicated(t, master)
	if pause {
		// Connections stay open, requests get no answer.
		master.Pause(t)
	} else {
		master.Kill(t)
	}
	killed := time.Now()

	// The outage: every operation fails, as unavailable, and returns
	// within its bound (the read timeout for a lookup, the write timeout
	// for a learn; a dead node refuses connections at once) instead of
	// hanging.
	for i := range 3 {
		start := time.Now()
		_, err := look(a)
		if i == 0 {
			t.Logf("lookup in the outage: %v", err)
		}
		if took := time.Since(start); took > timeout+200*time.Millisecond {
			t.Errorf("lookup %d in the outage took %v, timeout %v", i, took, timeout)
		}
		if err == nil {
			// The replica cannot have taken over this soon (node
			// timeout 2 s).
			if time.Since(killed) < time.Second {
				t.Errorf("lookup %d succeeded %v after the master died", i, time.Since(killed))
			}
			break
		}
		if !errors.Is(err, classifier.ErrUnavailable) {
			t.Errorf("lookup %d in the outage: %v, want ErrUnavailable", i, err)
		}
		start = time.Now()
		err = learn(b, classifier.Spam, "outage")
		if i == 0 {
			t.Logf("learn in the outage: %v", err)
		}
		if took := time.Since(start); took > writeTimeout+200*time.Millisecond {
			t.Errorf("learn %d in the outage took %v", i, took)
		}
		if err != nil && !errors.Is(err, classifier.ErrUnavailable) {
			t.Errorf("learn %d in the outage: %v, want ErrUnavailable", i, err)
		}
		if err == nil && time.Since(killed) < time.Second {
			t.Errorf("learn %d succeeded %v after the master died", i, time.Since(killed))
		}
		time.Sleep(100 * time.Millisecond)
	}

	promoted := cl.WaitFailover(t, key, master, 30*time.Second)
	promotedAt := time.Now()
	t.Logf("the cluster promoted %s %v after the kill", promoted.Addr, promotedAt.Sub(killed).Round(10*time.Millisecond))

	// The store finds the new master by itself, polling as mail would,
	// within seconds (go-redis alone would take up to a minute).
	deadline := promotedAt.Add(5 * time.Second)
	var after snapshot
	for {
		after, err = look(a)
		if err == nil {
			break
		}
		if !errors.Is(err, classifier.ErrUnavailable) {
			t.Fatalf("lookup after the failover: %v, want ErrUnavailable until it works", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lookup worked within 5 s of the promotion: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("lookups work again %v after the kill, %v after the promotion", time.Since(killed).Round(10*time.Millisecond), time.Since(promotedAt).Round(10*time.Millisecond))
	// A learn in the outage cannot have been applied on the new master
	// (refused or unanswered by the old one, refused as CLUSTERDOWN by
	// the others), but the check does not depend on it: the spam total
	// may have grown, the counts of the tokens learned before may not.
	if !slices.Equal(after.counts, before.counts) || after.tot.Ham != before.tot.Ham || after.tot.Spam < before.tot.Spam {
		t.Errorf("after the failover: %+v, before %+v", after, before)
	}
	for {
		err = learn(a, classifier.Spam, "x", "new")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no learn worked within 5 s of the promotion: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("learning works again %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	// The other host's cache sees that learn at its next lookup, from
	// the promoted replica's change log.
	var got snapshot
	for {
		got, err = look(b)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other store did not work within 5 s of the promotion: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := slices.Clone(before.counts)
	want[0]++ // x spam
	if !slices.Equal(got.counts, want) || got.tot.Spam != after.tot.Spam+1 {
		t.Errorf("other store after a learn on the new master: %+v, want counts %v and spam %d", got, want, after.tot.Spam+1)
	}
	if tot, c, err := b.Lookup(ctx, []string{"new"}); err != nil || c[0].Spam != 1 {
		t.Errorf("other store: new %+v %+v, %v", tot, c, err)
	}
}
