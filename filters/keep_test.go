package filters_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// keeper takes a value from next at the first of its stages for a
// message, with Message.Keep, and reports at every stage the value it
// judged by in its verdict's reason.
type keeper struct {
	next func() string
}

func (*keeper) Name() string { return "keeper" }
func (*keeper) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageMailFrom, filters.StageHeaders, filters.StageEOM)}
}
func (k *keeper) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	v := m.Keep(k, func() any { return k.next() }).(string)
	return filters.Verdict{Reason: v}, nil
}

// What a filter keeps for a message at one stage is what it finds at the
// next ones, also when each call is given its own copy of the message
// (a step with a timeout), and a new message starts with nothing kept.
func TestKeepAcrossStages(t *testing.T) {
	for _, timeout := range []time.Duration{0, 5 * time.Second} {
		t.Run(timeout.String(), func(t *testing.T) {
			n := 0
			k := &keeper{next: func() string {
				n++
				return "version " + string(rune('0'+n))
			}}
			p := filters.NewPipeline([]filters.Step{{Filter: k, Timeout: timeout}}, nil)
			defer p.Close()
			reason := func(stage filters.Stage, m *filters.Message) string {
				return p.Run(context.Background(), stage, m).Decisions[0].Verdict.Reason
			}
			m := &filters.Message{}
			for _, stage := range []filters.Stage{filters.StageMailFrom, filters.StageHeaders, filters.StageEOM} {
				if got := reason(stage, m); got != "version 1" {
					t.Errorf("at %s the filter judged by %q, want the version it took at MAIL FROM", stage, got)
				}
			}
			if got := reason(filters.StageMailFrom, &filters.Message{}); got != "version 2" {
				t.Errorf("a new message judged by %q, want a version of its own", got)
			}
		})
	}
}
