package bayes_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
)

// lateLookupStore answers lookups only after delay, whatever their
// context: as a bbolt store does for a lookup that waits for the store's
// lock behind a write, a wait that does not heed the context.
type lateLookupStore struct {
	classifier.Store
	delay time.Duration
}

func (s lateLookupStore) Lookup(ctx context.Context, tokens []string) (classifier.Totals, []classifier.Counts, error) {
	time.Sleep(s.delay)
	return s.Store.Lookup(ctx, tokens)
}

// returned tells when its filter's Check has returned, also after the
// pipeline stopped waiting for it.
type returned struct {
	filters.Filter
	done chan struct{}
}

func (r returned) Check(ctx context.Context, st filters.Stage, m *filters.Message) (filters.Verdict, error) {
	defer func() { r.done <- struct{}{} }()
	return r.Filter.Check(ctx, st, m)
}

// A message whose classification outlasts the filter's timeout gets the
// filter's on_failure from the pipeline, which stops waiting for the
// call: here tempfail, so the message is not taken and its sender tries
// again. The filter's own verdict no longer counts, and the message must
// not be learned, as one the filter tempfails is not (see
// TestAutolearnNotOnTempfail). The call went on past its deadline and
// auto-learned it all the same (the store writes a learn that need not
// wait whatever its context): once per attempt where the attempts
// differ, as Postfix's Message-Id and Date for local clients make them.
func TestNoAutolearnAfterTimeout(t *testing.T) {
	st := trainedStore(t)
	t.Cleanup(func() { st.Close() })
	f := newFilter(t, lateLookupStore{nopCloser{st}, 300 * time.Millisecond}, "spam: {action: tag}\nautolearn: {spam: 0.9}", nil)
	r := returned{f, make(chan struct{}, 1)}
	p := filters.NewPipeline([]filters.Step{{Filter: r, Timeout: 100 * time.Millisecond, OnFailure: filters.FailTempfail}}, nil)
	before, _ := st.Stats(context.Background())
	for i, qid := range []string{"4Q1AAAA", "4Q1BBBB"} {
		res := p.Run(context.Background(), filters.StageEOM, retriedSpam(i, qid))
		if res.Verdict.Action != filters.Tempfail || len(res.Decisions) != 1 || res.Decisions[0].Failure != filters.FailureTimeout {
			t.Fatalf("attempt %d: result %+v, want a tempfail for the timeout", i+1, res)
		}
		// The call the pipeline gave up on ends.
		<-r.done
	}
	after, _ := st.Stats(context.Background())
	if after.Spam != before.Spam {
		t.Errorf("spam learned %d times over two attempts of one message tempfailed for the filter's timeout", after.Spam-before.Spam)
	}
}
