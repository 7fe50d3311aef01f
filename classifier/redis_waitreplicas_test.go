package classifier_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// wait_replicas (RedisOptions.WaitReplicas): with a real Sentinel pair, a
// learn succeeds while the replica follows; with the replica hung, the
// learn is reported as failed (ErrUnavailable) within the write timeout,
// as is an import batch; once the replica answers again, learning the
// same message again works and counts it once.
func TestRedisWaitReplicas(t *testing.T) {
	sn := redistest.StartSentinel(t)
	// The replica is in sync (its first full sync is done).
	sn.WaitReplicated(t)
	const writeTimeout = time.Second // WAIT waits half of it
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{sn.Addr}, MasterName: sn.MasterName,
		Timeout: 300 * time.Millisecond, WriteTimeout: writeTimeout, WaitReplicas: 1, CacheTokens: -1})
	defer st.Close()
	ctx := context.Background()
	op := func(d byte, toks ...string) classifier.LearnOp {
		o := classifier.LearnOp{Class: classifier.Spam, Tokens: toks, Date: 20240101}
		o.Digest[0] = d
		return o
	}
	check := func(what string, spam uint32, tok string, want uint32) {
		t.Helper()
		tot, c, err := st.Lookup(ctx, []string{tok})
		if err != nil {
			t.Fatalf("%s: lookup: %v", what, err)
		}
		if tot.Spam != spam || c[0].Spam != want {
			t.Fatalf("%s: %d spam, %s counted %d; want %d and %d", what, tot.Spam, tok, c[0].Spam, spam, want)
		}
	}

	out, err := st.Learn(ctx, []classifier.LearnOp{op(1, "a", "b")})
	if err != nil || out[0] != classifier.Learned {
		t.Fatalf("learn with the replica up: %v %v", out, err)
	}
	check("replica up", 1, "a", 1)

	sn.Replica.Pause(t)
	paused := true
	defer func() {
		if paused {
			sn.Replica.Resume(t)
		}
	}()
	start := time.Now()
	out, err = st.Learn(ctx, []classifier.LearnOp{op(2, "a", "c")})
	took := time.Since(start)
	if !errors.Is(err, classifier.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("learn with the replica hung: %v %v, want ErrUnavailable (0 of 1 replicas)", out, err)
	}
	if took > writeTimeout {
		t.Errorf("the failed learn took %v, more than the write timeout %v", took, writeTimeout)
	}
	// The import path (Add) waits as well.
	err = st.Add(ctx, classifier.Batch{Records: []classifier.Record{{Token: "imported", Counts: classifier.Counts{Spam: 1}}}})
	if !errors.Is(err, classifier.ErrUnavailable) {
		t.Fatalf("add with the replica hung: %v, want ErrUnavailable", err)
	}
	// The master did apply the learn: that is what makes learning it
	// again safe.
	check("replica hung", 2, "a", 2)

	sn.Replica.Resume(t)
	paused = false
	sn.WaitReplicated(t)
	out, err = st.Learn(ctx, []classifier.LearnOp{op(2, "a", "c")})
	if err != nil || out[0] != classifier.AlreadyLearned {
		t.Fatalf("learning the failed message again: %v %v, want AlreadyLearned", out, err)
	}
	out, err = st.Learn(ctx, []classifier.LearnOp{op(3, "c")})
	if err != nil || out[0] != classifier.Learned {
		t.Fatalf("learn after the replica is back: %v %v", out, err)
	}
	check("replica back", 3, "c", 2) // message 2 counted once
	check("replica back", 3, "a", 2)
}

// A master made a replica (as a Sentinel does to the old master) while a
// learn waits for its replicas: Redis answers the WAIT with UNBLOCKED,
// and the learn fails as unavailable, not as a broken store.
func TestRedisWaitReplicasDemoted(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	ctx := context.Background()
	if n, err := master.Client(t).Wait(ctx, 1, 10*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("replica not in sync: %d %v", n, err)
	}
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{master.Addr},
		WriteTimeout: 10 * time.Second, WaitReplicas: 1, CacheTokens: -1})
	defer st.Close()
	replica.Pause(t)
	defer replica.Resume(t)
	done := make(chan error, 1)
	go func() {
		o := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"a"}, Date: 20240101}
		_, err := st.Learn(ctx, []classifier.LearnOp{o})
		done <- err
	}()
	// The learn must be in its WAIT before the master is demoted: demoted
	// earlier, the master refuses the learn's script (READONLY) or the
	// WAIT itself, which is not what this test is about.
	mc := master.Client(t)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		list, err := mc.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if waitBlocked(list) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no client blocked in WAIT after 60 s; clients:\n%s", list)
		}
	}
	if err := master.Client(t).ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(replica.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, classifier.ErrUnavailable) || !strings.Contains(err.Error(), "UNBLOCKED") {
			t.Fatalf("learn on a master made a replica: %v, want ErrUnavailable (UNBLOCKED)", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("the learn still waits after its master was made a replica")
	}
}

// waitBlocked tells whether a CLIENT LIST reply shows a client blocked in
// a WAIT command.
func waitBlocked(clientList string) bool {
	for _, line := range strings.Split(clientList, "\n") {
		fields := strings.Fields(line)
		if slices.Contains(fields, "cmd=wait") && slices.ContainsFunc(fields, func(f string) bool {
			flags, ok := strings.CutPrefix(f, "flags=")
			return ok && strings.Contains(flags, "b")
		}) {
			return true
		}
	}
	return false
}

// wait_replicas is a number of replicas, and not for Cluster.
func TestRedisWaitReplicasOptions(t *testing.T) {
	for _, o := range []classifier.RedisOptions{
		{Addrs: []string{"127.0.0.1:1"}, WaitReplicas: -1},
		{Addrs: []string{"127.0.0.1:1"}, Cluster: true, WaitReplicas: 1},
	} {
		if st, err := classifier.OpenRedis(o); err == nil || !strings.Contains(err.Error(), "wait_replicas") {
			if st != nil {
				st.Close()
			}
			t.Errorf("%+v: %v, want a wait_replicas error", o, err)
		}
	}
	st, err := classifier.OpenRedis(classifier.RedisOptions{Addrs: []string{"127.0.0.1:1"}, MasterName: "m", WaitReplicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// waitHolder is a TCP proxy that, once armed, passes on a pipeline up to
// its WAIT, holds the WAIT until released, and then passes on the rest:
// the moment between a learn's script and its WAIT, where a failover can
// demote the master.
type waitHolder struct {
	ln      net.Listener
	target  string
	armed   atomic.Bool
	held    atomic.Bool
	replied chan struct{} // closed once the scripts before a held WAIT answered
	release chan struct{}
}

func (p *waitHolder) serve() {
	wait := []byte("*3\r\n$4\r\nwait\r\n")
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		var holding atomic.Bool
		go func() {
			defer s.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					b := buf[:n]
					if i := bytes.Index(b, wait); i >= 0 && p.armed.CompareAndSwap(true, false) {
						holding.Store(true)
						p.held.Store(true)
						if _, err := s.Write(b[:i]); err != nil {
							return
						}
						<-p.release
						b = b[i:]
					}
					if _, err := s.Write(b); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
					if holding.Swap(false) {
						close(p.replied)
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// A master made a replica after a learn's script ran and before its WAIT
// (a failover between the two): Redis refuses the WAIT, and the learn
// fails as unavailable, not confirmed, as when the WAIT was already
// waiting (UNBLOCKED) or the script itself was refused (READONLY).
func TestRedisWaitReplicasDemotedBeforeWait(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	ctx := context.Background()
	if n, err := master.Client(t).Wait(ctx, 1, 10*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("replica not in sync: %d %v", n, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := &waitHolder{ln: ln, target: master.Addr, replied: make(chan struct{}), release: make(chan struct{})}
	go p.serve()
	released := false
	defer func() {
		if !released {
			close(p.release)
		}
	}()
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{ln.Addr().String()},
		WriteTimeout: 10 * time.Second, WaitReplicas: 1, CacheTokens: -1})
	defer st.Close()
	op := func(d byte) classifier.LearnOp {
		o := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"a"}, Date: 20240101}
		o.Digest[0] = d
		return o
	}
	// Loads the script: the held pipeline is then the learn's only one.
	if out, err := st.Learn(ctx, []classifier.LearnOp{op(1)}); err != nil || out[0] != classifier.Learned {
		t.Fatalf("first learn: %v %v", out, err)
	}
	p.armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := st.Learn(ctx, []classifier.LearnOp{op(2)})
		done <- err
	}()
	select {
	case <-p.replied:
	case err := <-done:
		t.Fatalf("the learn ended before its WAIT was held (held %v): %v", p.held.Load(), err)
	case <-time.After(10 * time.Second):
		t.Fatal("the learn's script did not answer within 10 s")
	}
	if err := master.Client(t).ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(replica.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	close(p.release)
	released = true
	select {
	case err := <-done:
		if !errors.Is(err, classifier.ErrUnavailable) || !strings.Contains(err.Error(), "WAIT cannot be used with replica") {
			t.Fatalf("learn whose master was made a replica before its WAIT: %v, want ErrUnavailable (WAIT refused)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the learn still runs 10 s after its WAIT was passed on")
	}
}
