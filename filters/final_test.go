package filters_test

import (
	"context"
	"slices"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

// recorder is a Final filter that remembers what Message.Decided said
// when it ran and which filters had run before it.
type recorder struct {
	order *[]string
	seen  []filters.Decided
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Final: true}
}
func (r *recorder) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	r.seen = append(r.seen, m.Decided)
	*r.order = append(*r.order, "recorder")
	return filters.Verdict{}, nil
}

// ordered wraps a filter to log when it runs.
type ordered struct {
	filters.Filter
	order *[]string
}

func (o ordered) Check(ctx context.Context, st filters.Stage, m *filters.Message) (filters.Verdict, error) {
	*o.order = append(*o.order, o.Name())
	return o.Filter.Check(ctx, st, m)
}

func TestFinalFilterRunsLastAndSeesTheOutcome(t *testing.T) {
	tests := []struct {
		name    string
		actions []filters.Action
		// want: filters that ran, in order
		want        []string
		wantDecided filters.Decided
	}{
		{"all continue", []filters.Action{filters.Continue, filters.Continue},
			[]string{"f0", "f1", "recorder"}, filters.Decided{}},
		{"quarantine then continue", []filters.Action{filters.Quarantine, filters.Continue},
			[]string{"f0", "f1", "recorder"}, filters.Decided{Action: filters.Quarantine, Filter: "f0", Reason: "f0"}},
		// A reject ends the stage for deciding filters, not for the
		// recorder, which sees who rejected.
		{"reject first", []filters.Action{filters.Reject, filters.Continue},
			[]string{"f0", "recorder"}, filters.Decided{Action: filters.Reject, Filter: "f0", Reason: "f0"}},
		{"discard then reject", []filters.Action{filters.Discard, filters.Reject, filters.Accept},
			[]string{"f0", "f1", "recorder"}, filters.Decided{Action: filters.Reject, Filter: "f1", Reason: "f1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var order []string
			rec := &recorder{order: &order}
			// The recorder is configured first; it still runs last.
			steps := []filters.Step{{Filter: rec}}
			for i, a := range tc.actions {
				steps = append(steps, filters.Step{Filter: ordered{fixed("f"+string(rune('0'+i)), a, "x"), &order}})
			}
			m := &filters.Message{}
			res := filters.NewPipeline(steps, nil).Run(context.Background(), filters.StageEOM, m)
			if len(order) != len(tc.want) {
				t.Fatalf("ran %v, want %v", order, tc.want)
			}
			for i := range order {
				if order[i] != tc.want[i] {
					t.Fatalf("ran %v, want %v", order, tc.want)
				}
			}
			if len(rec.seen) != 1 || rec.seen[0] != tc.wantDecided {
				t.Errorf("recorder saw %+v, want %+v", rec.seen, tc.wantDecided)
			}
			if m.Decided != tc.wantDecided {
				t.Errorf("Message.Decided after the stage: %+v, want %+v", m.Decided, tc.wantDecided)
			}
			if res.Verdict.Action != tc.wantDecided.Action {
				t.Errorf("stage verdict %s, want %s", res.Verdict.Action, tc.wantDecided.Action)
			}
		})
	}
}

// When the edge runs end of message for a message an earlier stage
// settled, only Final filters are asked.
func TestSettledMessageRunsOnlyFinalFilters(t *testing.T) {
	var order []string
	rec := &recorder{order: &order}
	other := &filtertest.Fixed{FilterName: "other", At: filters.StagesOf(filters.StageEOM)}
	p := filters.NewPipeline([]filters.Step{{Filter: other}, {Filter: rec}}, nil)
	sofar := filters.Decided{Action: filters.Accept, Filter: "allow", Reason: "trusted sender"}
	m := &filters.Message{Decided: sofar}
	res := p.Run(context.Background(), filters.StageEOM, m)
	if other.Calls() != 0 {
		t.Errorf("a deciding filter ran on a settled message")
	}
	if len(rec.seen) != 1 || rec.seen[0] != sofar {
		t.Errorf("recorder saw %+v, want %+v", rec.seen, sofar)
	}
	if len(res.Decisions) != 1 || res.Decisions[0].Filter != "recorder" {
		t.Errorf("decisions %+v", res.Decisions)
	}
	if !p.Needs().Final {
		t.Error("Needs of a pipeline with a Final filter do not say Final")
	}

	// Quarantine is not settled: everything runs.
	other2 := &filtertest.Fixed{FilterName: "other", At: filters.StagesOf(filters.StageEOM)}
	p = filters.NewPipeline([]filters.Step{{Filter: other2}, {Filter: rec}}, nil)
	p.Run(context.Background(), filters.StageEOM, &filters.Message{Decided: filters.Decided{Action: filters.Quarantine}})
	if other2.Calls() != 1 {
		t.Errorf("after quarantine the deciding filter ran %d times, want 1", other2.Calls())
	}
}

func TestOutcomeDecided(t *testing.T) {
	var o filters.Outcome
	o.Add(filters.StageResult{Verdict: filters.Verdict{Action: filters.Quarantine, Reason: "held"}, Filter: "q"})
	if got, want := o.Decided(), (filters.Decided{Action: filters.Quarantine, Filter: "q", Reason: "held"}); got != want {
		t.Errorf("Decided() = %+v, want %+v", got, want)
	}
	if o.Decided().Settled() {
		t.Error("quarantine counts as settled")
	}
	o.Add(filters.StageResult{Verdict: filters.Verdict{Action: filters.Accept}, Filter: "a"})
	if o.Decided().Action != filters.Quarantine {
		t.Error("a weaker action replaced a stronger one")
	}
}

// repairer is a filter that repairs the message for the others
// (Needs.First), as headerfix does.
type repairer struct {
	order *[]string
}

func (*repairer) Name() string { return "repairer" }
func (*repairer) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), First: true}
}
func (r *repairer) Check(context.Context, filters.Stage, *filters.Message) (filters.Verdict, error) {
	*r.order = append(*r.order, "repairer")
	return filters.Verdict{}, nil
}

// A filter that repairs the message runs before every other filter of
// its stage, wherever it is listed, also before one that rejects; the
// final filters still run last.
func TestFirstFilterRunsBeforeTheOthers(t *testing.T) {
	var order []string
	steps := []filters.Step{
		{Filter: &recorder{order: &order}},
		{Filter: ordered{fixed("f0", filters.Continue, "x"), &order}},
		{Filter: ordered{fixed("f1", filters.Reject, "x"), &order}},
		{Filter: &repairer{order: &order}},
	}
	filters.NewPipeline(steps, nil).Run(context.Background(), filters.StageEOM, &filters.Message{})
	if want := []string{"repairer", "f0", "f1", "recorder"}; !slices.Equal(order, want) {
		t.Errorf("ran %v, want %v", order, want)
	}
}
