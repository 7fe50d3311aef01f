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
