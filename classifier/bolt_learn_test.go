package classifier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openLearnTestStore opens a new store whose lock timeout outlasts the
// writes these tests hold up.
func openLearnTestStore(t *testing.T) *BoltStore {
	t.Helper()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true, LockTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// holdStore takes the store's turnstile as another process's writer
// would, so that the store's own writes wait for it, and returns the
// function that lets go.
func holdStore(t *testing.T, s *BoltStore) func() {
	t.Helper()
	f, err := os.OpenFile(s.Path()+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release
}

// lastTxID returns the ID of the store's last committed write
// transaction: bbolt numbers them one by one, so the difference of two
// is the number of writes in between.
func lastTxID(t *testing.T, s *BoltStore) int {
	t.Helper()
	var id int
	if err := s.view(context.Background(), func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

func testOp(i int, c Class, tokens ...string) LearnOp {
	op := LearnOp{Class: c, Tokens: tokens, Date: 20240101}
	op.Digest[0], op.Digest[1] = byte(i), byte(i>>8)
	return op
}

type learnResult struct {
	out []Outcome
	err error
}

// learnConcurrently runs one Learn call per element of calls, the first
// alone while another process holds the store, the rest queued behind it
// in order, and returns their results once the store is let go.
func learnConcurrently(t *testing.T, s *BoltStore, calls [][]LearnOp) []learnResult {
	t.Helper()
	ctx := context.Background()
	release := holdStore(t, s)
	res := make([]learnResult, len(calls))
	var wg sync.WaitGroup
	learn := func(i int) {
		wg.Go(func() {
			out, err := s.Learn(ctx, calls[i])
			res[i] = learnResult{out, err}
		})
	}
	learn(0)
	waitLearnState(t, s, 0, true)
	for i := 1; i < len(calls); i++ {
		learn(i)
		waitLearnState(t, s, i, true)
	}
	release()
	wg.Wait()
	return res
}

// Concurrent calls of Learn queued behind a write are written together, in
// one transaction, and each gets its own outcomes.
func TestBoltLearnGroupCommit(t *testing.T) {
	s := openLearnTestStore(t)
	const n = 32
	calls := make([][]LearnOp, n)
	for i := range calls {
		calls[i] = []LearnOp{testOp(i, Class(1+i%2), "common", fmt.Sprintf("u%d", i))}
	}
	tx0 := lastTxID(t, s)
	res := learnConcurrently(t, s, calls)
	for i, r := range res {
		if r.err != nil || len(r.out) != 1 || r.out[0] != Learned {
			t.Errorf("call %d: %v, %v; want [learned]", i, r.out, r.err)
		}
	}
	if writes := lastTxID(t, s) - tx0; writes != 2 {
		t.Errorf("%d concurrent learns took %d write transactions, want 2 (the first, then the others together)", n, writes)
	}
	toks := []string{"common"}
	for i := range n {
		toks = append(toks, fmt.Sprintf("u%d", i))
	}
	tot, counts, err := s.Lookup(context.Background(), toks)
	if err != nil {
		t.Fatal(err)
	}
	if tot != (Totals{Spam: n / 2, Ham: n / 2}) {
		t.Errorf("totals %+v, want %d and %d", tot, n/2, n/2)
	}
	if c := counts[0]; c.Spam != n/2 || c.Ham != n/2 {
		t.Errorf("common token: %+v, want %d spam and %d ham", c, n/2, n/2)
	}
	for i, c := range counts[1:] {
		want := Counts{Spam: 1, LastSeen: 20240101}
		if Class(1+i%2) == Ham {
			want = Counts{Ham: 1, LastSeen: 20240101}
		}
		if c != want {
			t.Errorf("token u%d: %+v, want %+v", i, c, want)
		}
	}
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Digests != n {
		t.Errorf("%d digests learned, want %d", st.Digests, n)
	}
}

// Concurrent calls learning the same message end as the same calls one
// after the other in queue order would: the later ops see the digest the
// earlier ones wrote in the same transaction.
func TestBoltLearnGroupCommitSameMessage(t *testing.T) {
	const n = 16
	tokens := []string{"same1", "same2"}
	for _, tc := range []struct {
		name     string
		opposite bool // every other call learns the message as ham
		noMove   bool
	}{
		{"same class", false, false},
		{"opposite classes", true, false},
		{"opposite classes, no move", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openLearnTestStore(t)
			calls := make([][]LearnOp, n)
			for i := range calls {
				c := Spam
				if tc.opposite && i%2 == 1 {
					c = Ham
				}
				op := testOp(0, c, tokens...)
				op.NoMove = tc.noMove
				calls[i] = []LearnOp{op}
			}
			res := learnConcurrently(t, s, calls)
			// The reference: the same calls one after the other, in
			// queue order, on a store of their own.
			ref := openLearnTestStore(t)
			learned := 0
			for i, r := range res {
				want, err := ref.Learn(context.Background(), calls[i])
				if err != nil {
					t.Fatal(err)
				}
				if r.err != nil || len(r.out) != 1 || r.out[0] != want[0] {
					t.Errorf("call %d learning as %v: %v, %v; want %v", i, calls[i][0].Class, r.out, r.err, want)
				}
				if want[0] == Learned {
					learned++
				}
			}
			if learned != 1 {
				t.Errorf("%d calls learned the message, want 1", learned)
			}
			tot, counts, err := s.Lookup(context.Background(), tokens)
			if err != nil {
				t.Fatal(err)
			}
			wantTot, wantCounts, err := ref.Lookup(context.Background(), tokens)
			if err != nil {
				t.Fatal(err)
			}
			if tot != wantTot || !slices.Equal(counts, wantCounts) {
				t.Errorf("totals %+v, counts %+v; want %+v, %+v", tot, counts, wantTot, wantCounts)
			}
		})
	}
}

// A call whose context ends while it waits behind a slow write returns at
// once, and its op is not learned.
func TestBoltLearnCancelQueued(t *testing.T) {
	s := openLearnTestStore(t)
	tx0 := lastTxID(t, s)
	release := holdStore(t, s)
	first := make(chan learnResult, 1)
	go func() {
		out, err := s.Learn(context.Background(), []LearnOp{testOp(1, Spam, "a")})
		first <- learnResult{out, err}
	}()
	waitLearnState(t, s, 0, true)
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan learnResult, 1)
	go func() {
		out, err := s.Learn(ctx, []LearnOp{testOp(2, Ham, "b")})
		queued <- learnResult{out, err}
	}()
	waitLearnState(t, s, 1, true)
	cancel()
	select {
	case r := <-queued:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("cancelled queued learn: %v, %v; want context.Canceled", r.out, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled queued learn still waits for the write before it")
	}
	release()
	if r := <-first; r.err != nil || r.out[0] != Learned {
		t.Errorf("first learn: %v, %v", r.out, r.err)
	}
	tot, _, err := s.Lookup(context.Background(), []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	if tot != (Totals{Spam: 1}) {
		t.Errorf("totals %+v: the cancelled op was learned", tot)
	}
	if writes := lastTxID(t, s) - tx0; writes != 1 {
		t.Errorf("%d writes, want 1", writes)
	}
}

// A call with a bad op fails alone: the calls queued with it are written.
func TestBoltLearnGroupCommitBadOp(t *testing.T) {
	s := openLearnTestStore(t)
	calls := [][]LearnOp{
		{testOp(1, Spam, "a")},
		{testOp(2, Ham, "b")},
		{testOp(3, Spam, "c"), testOp(4, None, "d")},
		{testOp(5, Ham, "e")},
	}
	res := make([]learnResult, len(calls))
	release := holdStore(t, s)
	var wg sync.WaitGroup
	learn := func(i int) {
		wg.Go(func() {
			out, err := s.Learn(context.Background(), calls[i])
			res[i] = learnResult{out, err}
		})
	}
	learn(0)
	waitLearnState(t, s, 0, true)
	learn(1)
	learn(2)
	learn(3)
	waitLearnState(t, s, 2, true)
	release()
	wg.Wait()
	for _, i := range []int{0, 1, 3} {
		if r := res[i]; r.err != nil || len(r.out) != 1 || r.out[0] != Learned {
			t.Errorf("call %d: %v, %v; want [learned]", i, r.out, r.err)
		}
	}
	if res[2].err == nil {
		t.Errorf("call with a bad class: %v, no error", res[2].out)
	}
	tot, counts, err := s.Lookup(context.Background(), []string{"c", "d"})
	if err != nil {
		t.Fatal(err)
	}
	if tot != (Totals{Spam: 1, Ham: 2}) || counts[0] != (Counts{}) || counts[1] != (Counts{}) {
		t.Errorf("totals %+v, counts %+v: the call with a bad op was learned in part", tot, counts)
	}
}

// The transaction of several calls does not give up when the context of
// the call that writes it ends, while another call in it has time; a call
// alone fails with its own context's error.
func TestBoltLearnGroupCommitDeadlines(t *testing.T) {
	s := openLearnTestStore(t)
	release := holdStore(t, s)
	// A first call, alone in its write, which gives up while it waits
	// for the file, so that the calls queued behind it are taken into the
	// next write while the file is still held.
	ctx0, cancel0 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := s.Learn(ctx0, []LearnOp{testOp(0, Spam, "zero")})
		first <- err
	}()
	waitLearnState(t, s, 0, true)
	// Most calls have a short deadline, so that one of them most likely
	// writes for the others; one has none.
	const short = 7
	deadline := time.Now().Add(500 * time.Millisecond)
	res := make([]learnResult, short+1)
	var wg sync.WaitGroup
	for i := range res {
		wg.Go(func() {
			ctx := context.Background()
			if i < short {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, deadline)
				defer cancel()
			}
			out, err := s.Learn(ctx, []LearnOp{testOp(1+i, Ham, "t")})
			res[i] = learnResult{out, err}
		})
	}
	waitLearnState(t, s, short+1, true)
	cancel0()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first learn, cancelled waiting for the file: %v, want context.Canceled", err)
	}
	waitLearnState(t, s, 0, true)
	time.Sleep(time.Until(deadline) + 200*time.Millisecond)
	release()
	wg.Wait()
	for i, r := range res {
		if r.err != nil || len(r.out) != 1 || r.out[0] != Learned {
			t.Errorf("call %d: %v, %v; want [learned]", i, r.out, r.err)
		}
	}

	// Alone, a call gives up at its deadline, with its error.
	release = holdStore(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Learn(ctx, []LearnOp{testOp(100, Spam, "late")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lone learn past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("lone learn returned %v after its deadline", d)
	}
	release()
	tot, _, err := s.Lookup(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tot != (Totals{Ham: short + 1}) {
		t.Errorf("totals %+v, want %d ham", tot, short+1)
	}
}

// A queue longer than one transaction takes is written in several, in
// order.
func TestBoltLearnGroupCommitBound(t *testing.T) {
	s := openLearnTestStore(t)
	big := func(from int) []LearnOp {
		ops := make([]LearnOp, maxLearnBatchOps/2)
		for i := range ops {
			ops[i] = testOp(from+i, Spam, "x")
		}
		return ops
	}
	// Four calls queue behind the first; two fill one transaction, the
	// next two go in a third, and the last, the message of the first op
	// of the second big call, finds it learned in the transaction
	// before and moves it.
	calls := [][]LearnOp{
		{testOp(60000, Ham, "y")},
		big(0),
		big(maxLearnBatchOps / 2),
		big(maxLearnBatchOps),
		{testOp(maxLearnBatchOps/2, Ham, "x")},
	}
	tx0 := lastTxID(t, s)
	res := learnConcurrently(t, s, calls)
	for i, r := range res {
		if r.err != nil || len(r.out) != len(calls[i]) {
			t.Fatalf("call %d: %d outcomes, %v", i, len(r.out), r.err)
		}
	}
	if writes := lastTxID(t, s) - tx0; writes != 3 {
		t.Errorf("%d writes, want 3", writes)
	}
	if o := res[4].out[0]; o != Moved {
		t.Errorf("last call: %v, want moved", o)
	}
}
