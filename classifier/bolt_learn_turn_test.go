package classifier

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A panic while a batch is written goes on up to the caller that wrote
// it (a daemon recovers it at the session's edge), but must not keep the
// write turn: every later Learn of the process would wait for it, an
// auto-learn until its deadline, a training run for ever.
func TestBoltLearnPanicReleasesTurn(t *testing.T) {
	s := openLearnTestStore(t)
	s.learnTxHook = func(context.Context, []LearnOp) ([]Outcome, error) { panic("broken write") }
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		s.Learn(context.Background(), []LearnOp{testOp(1, Spam, "a")})
	}()
	select {
	case p := <-panicked:
		if p == nil || !strings.Contains(p.(string), "broken write") {
			t.Fatalf("Learn's panic = %v, want the write's", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Learn with a panicking write neither returned nor panicked in 10 s")
	}

	s.learnTxHook = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.Learn(ctx, []LearnOp{testOp(2, Ham, "b")})
	if err != nil || len(out) != 1 || out[0] != Learned {
		t.Fatalf("Learn after a panicked write = %v, %v; want [learned] (the write turn was kept)", out, err)
	}
}

// A call that need not wait writes even with its context ended, as writes
// did before group commit: a training run stopped by Ctrl-C learns the
// batch it had read (cmd/sluice's TestTrainInterruptedPrintsSummary).
// Only waiting behind another write is bounded by the context.
func TestBoltLearnEndedContextNoWait(t *testing.T) {
	s := openLearnTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 20 {
		out, err := s.Learn(ctx, []LearnOp{testOp(i, Spam, "a")})
		if err != nil || len(out) != 1 || out[0] != Learned {
			t.Fatalf("learn %d with an ended context on an idle store = %v, %v; want [learned]", i, out, err)
		}
	}
}
