package milter_test

import (
	"context"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// heloTagger tags mail with the HELO name it was given, and holds mail
// whose HELO name starts with "bad".
type heloTagger struct{}

func (heloTagger) Name() string { return "helotag" }
func (heloTagger) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageHelo)}
}
func (heloTagger) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	v := filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Helo", Value: m.Conn.Helo}}}
	if strings.HasPrefix(m.Conn.Helo, "bad") {
		v.Action = filters.Quarantine
		v.Reason = "bad helo"
	}
	return v, nil
}

// A client says EHLO again after STARTTLS (or after RSET), and the MTA
// reports each one. The latest HELO is the one the connection's messages
// carry: what filters decided about an earlier one must not pile up with
// it (one header per HELO, a hold decided on a name the client no longer
// uses).
func TestRepeatedHeloReplacesEarlierVerdicts(t *testing.T) {
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(heloTagger{})})
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("bad.example"))
	must(t)(s.Helo("good.example"))

	for i := range 2 {
		mods, act := sendMessage(t, s, "a@example.org", "b@example.org", [][2]string{{"Subject", "hi"}}, "body\r\n")
		if act.Code != gomilter.ActAccept {
			t.Fatalf("message %d: action %c, want accept", i, act.Code)
		}
		var got []string
		for _, m := range mods {
			switch m.Code {
			case gomilter.ActAddHeader:
				got = append(got, m.HeaderName+"="+m.HeaderValue)
			case gomilter.ActQuarantine:
				got = append(got, "quarantine="+m.Reason)
			}
		}
		if s := strings.Join(got, " "); s != "X-Helo=good.example" {
			t.Errorf("message %d: modifications %q, want only X-Helo=good.example", i, s)
		}
	}
}

// A client says EHLO in the middle of a transaction, which ends it (RFC
// 5321 4.1.4). Postfix reports the new HELO to the milter first and
// aborts the message after it (observed with Postfix 3.7; Sendmail aborts
// first). The message's line is about the message as it was: its HELO and
// its filters' decisions, not those of the HELO that ended it, which
// belong to the connection's next message.
func TestHeloInMessageLeavesTheMessageItsOwnHelo(t *testing.T) {
	sums := &summaries{}
	_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline(heloTagger{})}, sums)
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("bad.example"))
	must(t)(s.Mail("a@example.org", nil))
	must(t)(s.Rcpt("b@example.org", nil))
	must(t)(s.Helo("good.example"))
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	mods, act := sendMessage(t, s, "c@example.org", "d@example.org", [][2]string{{"Subject", "hi"}}, "body\r\n")
	if act.Code != gomilter.ActAccept || len(mods) != 1 || mods[0].HeaderValue != "good.example" {
		t.Fatalf("next message: action %c, modifications %+v, want accept with X-Helo good.example only", act.Code, mods)
	}

	sums.mu.Lock()
	defer sums.mu.Unlock()
	if len(sums.sums) != 2 {
		t.Fatalf("%d message summaries, want 2", len(sums.sums))
	}
	first, second := sums.sums[0], sums.sums[1]
	helo := func(sum milter.Summary) []string {
		var got []string
		for _, d := range sum.Decisions {
			if d.Stage == filters.StageHelo {
				got = append(got, d.Verdict.Action.String())
			}
		}
		return got
	}
	if !first.Aborted || first.From != "a@example.org" || first.Helo != "bad.example" || strings.Join(helo(first), ",") != "quarantine" {
		t.Errorf("interrupted message: aborted=%v from %q helo %q helo decisions %v, want aborted, a@example.org, bad.example, [quarantine]",
			first.Aborted, first.From, first.Helo, helo(first))
	}
	if second.Aborted || second.Helo != "good.example" || strings.Join(helo(second), ",") != "continue" {
		t.Errorf("next message: aborted=%v helo %q helo decisions %v, want delivered, good.example, [continue]", second.Aborted, second.Helo, helo(second))
	}
}
