package milter_test

import (
	"context"
	"sync"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// finalRecorder is a Final filter at end of message: it keeps the outcome
// each message had when it ran.
type finalRecorder struct {
	mu      sync.Mutex
	decided []filters.Decided
	bodies  []int64
}

func (f *finalRecorder) Name() string { return "final" }
func (f *finalRecorder) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true, Body: true, Final: true}
}
func (f *finalRecorder) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decided = append(f.decided, m.Decided)
	f.bodies = append(f.bodies, m.Body.Size())
	return filters.Verdict{}, nil
}

// The edge hands a Final filter the outcome of earlier stages: a message
// accepted at MAIL FROM with an edit pending still reaches it at end of
// message (the deciding filter is not asked again), and a message rejected
// at end of message by a filter configured after it too.
func TestFinalFilterSeesEveryMessageThatEnds(t *testing.T) {
	rec := &finalRecorder{}
	allow := &filtertest.Fixed{FilterName: "allow", At: filters.StagesOf(filters.StageMailFrom),
		Verdict: filters.Verdict{Action: filters.Accept, Reason: "trusted", Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Allowed", Value: "1"}}}}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(rec, allow)})
	s := dial(t, addr)
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	_, act := sendMessage(t, s, "a@b", "c@d", [][2]string{{"Subject", "s"}}, "body\r\n")
	if act.Code != gomilter.ActAccept {
		t.Fatalf("action %c, want accept", act.Code)
	}
	if allow.Calls() != 1 {
		t.Errorf("the accepting filter ran %d times, want once (at MAIL)", allow.Calls())
	}

	rec2 := &finalRecorder{}
	rej := &filtertest.Fixed{FilterName: "rej", At: filters.StagesOf(filters.StageEOM),
		Verdict: filters.Verdict{Action: filters.Reject, Reason: "spam"}}
	_, addr = startServer(t, milter.Config{Pipeline: pipeline(rec2, rej)})
	s = dial(t, addr)
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	_, act = sendMessage(t, s, "a@b", "c@d", [][2]string{{"Subject", "s"}}, "body\r\n")
	if act.Code != gomilter.ActReplyCode {
		t.Fatalf("action %c, want a reject reply", act.Code)
	}

	for _, tc := range []struct {
		rec  *finalRecorder
		want filters.Decided
	}{
		{rec, filters.Decided{Action: filters.Accept, Filter: "allow", Reason: "trusted"}},
		{rec2, filters.Decided{Action: filters.Reject, Filter: "rej", Reason: "spam"}},
	} {
		tc.rec.mu.Lock()
		if len(tc.rec.decided) != 1 || tc.rec.decided[0] != tc.want || tc.rec.bodies[0] != 6 {
			t.Errorf("final filter saw %+v with bodies %v, want %+v with a 6-byte body", tc.rec.decided, tc.rec.bodies, tc.want)
		}
		tc.rec.mu.Unlock()
	}
}
