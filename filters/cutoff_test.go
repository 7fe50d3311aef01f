package filters_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

// The daemon cuts the sessions still in flight off when it stops, and
// ends the context of their filter calls then. A call so ended did not
// run out of its filter's time: it used to be reported as a timeout
// ("no answer within 1m0s", counted with kind timeout) a moment after it
// began, and the filters after it were still called, on a message that
// gets no verdict. The call fails as cut off, with the context's cause,
// and no later filter is called.
func TestRunCutOffIsNoTimeout(t *testing.T) {
	stopping := errors.New("daemon stopping")
	for _, tc := range []struct {
		name   string
		ignore bool // the filter ignores its context
	}{
		{"filter ignores its context", true},
		{"filter stops with its context", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(filters.StageEOM), Delay: 2 * time.Second, IgnoreContext: tc.ignore}
			after := &filtertest.Fixed{FilterName: "after", At: filters.StagesOf(filters.StageEOM)}
			p := filters.NewPipeline([]filters.Step{
				{Filter: slow, Timeout: time.Minute, OnFailure: filters.FailAccept},
				{Filter: after, Timeout: time.Minute, OnFailure: filters.FailAccept},
			}, nil)
			defer p.Close()
			ctx, cancel := context.WithCancelCause(context.Background())
			time.AfterFunc(50*time.Millisecond, func() { cancel(stopping) })
			res := p.Run(ctx, filters.StageEOM, &filters.Message{})
			if len(res.Decisions) != 2 {
				t.Fatalf("%d decisions, want 2: %+v", len(res.Decisions), res.Decisions)
			}
			for _, d := range res.Decisions {
				if d.Failure != filters.FailureError {
					t.Errorf("filter %s: failure %q (%v), want %q", d.Filter, d.Failure, d.Err, filters.FailureError)
				}
				if d.Err == nil || !errors.Is(d.Err, stopping) || strings.Contains(d.Err.Error(), "no answer within") {
					t.Errorf("filter %s: error %v, want one with the context's cause, not a timeout", d.Filter, d.Err)
				}
			}
			if n := after.Calls(); n != 0 {
				t.Errorf("the filter after the cut was called %d times", n)
			}
		})
	}
}
