package milter_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// rcptGate refuses recipients by local part at RCPT TO: no* is rejected,
// later* deferred.
type rcptGate struct{}

func (rcptGate) Name() string { return "gate" }
func (rcptGate) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageRcptTo)}
}
func (rcptGate) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	r := m.Rcpts[len(m.Rcpts)-1].Addr
	switch {
	case strings.HasPrefix(r, "no"):
		return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 550, Enhanced: "5.1.1", Text: "No such user " + r}, Reason: "unknown " + r}, nil
	case strings.HasPrefix(r, "later"):
		return filters.Verdict{Action: filters.Tempfail, Reason: "greylisted " + r}, nil
	}
	return filters.Verdict{}, nil
}

// subjectTagger rewrites the Subject at end of header and, at end of
// message, adds a field that repeats the Subject it reads then (so the
// header model the filters see must hold the earlier edits) and the
// queue id and the number of fields it sees.
type subjectTagger struct{}

func (subjectTagger) Name() string { return "tagger" }
func (subjectTagger) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageHeaders, filters.StageEOM), Headers: true}
}
func (subjectTagger) Check(_ context.Context, st filters.Stage, m *filters.Message) (filters.Verdict, error) {
	subj, _ := m.Header("Subject")
	if st == filters.StageHeaders {
		return filters.Verdict{Edits: []filters.HeaderEdit{
			{Kind: filters.ChangeHeader, Name: "Subject", Index: 1, Value: "[tagged] " + subj},
			{Kind: filters.InsertHeader, Name: "X-Top", Index: 0, Value: "first"},
			{Kind: filters.DeleteHeader, Name: "X-Drop", Index: 1},
		}}, nil
	}
	return filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Seen", Value: fmt.Sprintf("%s qid=%s fields=%d", subj, m.QueueID, len(m.Headers))}}}, nil
}

// decisionLog records every decision a pipeline reports.
type decisionLog struct {
	mu   sync.Mutex
	list []string
}

func (l *decisionLog) FilterDecided(d filters.Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, fmt.Sprintf("%s@%s=%s", d.Filter, d.Stage, d.Verdict.Action))
}

// ending is how a message ended, in terms both the protocol client and
// Replay can express.
type ending struct {
	Action     string // accept, discard, reply
	Reply      string // "550 5.7.1 text" for action reply
	Edits      []string
	Quarantine string
	Refused    []string
	Decisions  []string
}

type replayCase struct {
	name  string
	steps func() []filters.Step
	rcpts []string
	hdrs  []filters.Header
	body  string
	want  string // the action Replay must report
}

func replayCases() []replayCase {
	steps := func(fs ...filters.Filter) func() []filters.Step {
		return func() []filters.Step {
			out := make([]filters.Step, len(fs))
			for i, f := range fs {
				out[i] = filters.Step{Filter: f}
			}
			return out
		}
	}
	fixed := func(name string, at filters.Stage, v filters.Verdict) *filtertest.Fixed {
		return &filtertest.Fixed{FilterName: name, At: filters.StagesOf(at), Verdict: v}
	}
	hdrs := []filters.Header{
		{Name: "From", Value: "alice@example.org"},
		{Name: "Subject", Value: "Hello"},
		{Name: "X-Drop", Value: "remove me"},
		{Name: "X-Folded", Value: "one\n\ttwo"},
	}
	addEdit := []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Early", Value: "mail"}}
	// Header blocks just under and just over the bound of 1 MiB (each
	// field counts as "Name: value" and a line end).
	bigHeaders := func(n int) []filters.Header {
		hs := slices.Clone(hdrs)
		for range n {
			hs = append(hs, filters.Header{Name: "X-Pad", Value: strings.Repeat("p", 3990)})
		}
		return hs
	}
	return []replayCase{
		{name: "script accepts with a header", steps: steps(&filtertest.Script{}), rcpts: []string{"ok@lab.example"}, want: "accept"},
		{name: "script rejects", steps: steps(&filtertest.Script{}), rcpts: []string{"reject@lab.example"}, want: "reject"},
		{name: "script quarantines", steps: steps(&filtertest.Script{}), rcpts: []string{"quarantine@lab.example"}, want: "quarantine"},
		{name: "script discards", steps: steps(&filtertest.Script{}), rcpts: []string{"discard@lab.example"}, want: "discard"},
		{name: "reject at connect", steps: steps(fixed("conn", filters.StageConnect, filters.Verdict{Action: filters.Reject, Reason: "bad client"}), &filtertest.Script{}),
			rcpts: []string{"ok@lab.example"}, want: "reject"},
		{name: "discard at connect applies per message", steps: steps(fixed("conn", filters.StageConnect, filters.Verdict{Action: filters.Discard}), &filtertest.Script{}),
			rcpts: []string{"ok@lab.example"}, want: "discard"},
		{name: "tempfail at HELO", steps: steps(fixed("helo", filters.StageHelo, filters.Verdict{Action: filters.Tempfail, Reply: &filters.Reply{Code: 421, Enhanced: "4.7.0", Text: "Try later"}})),
			rcpts: []string{"ok@lab.example"}, want: "tempfail"},
		{name: "accept at MAIL without edits ends early", steps: steps(fixed("allow", filters.StageMailFrom, filters.Verdict{Action: filters.Accept, Reason: "trusted"}), &filtertest.Script{}),
			rcpts: []string{"reject@lab.example"}, want: "accept"},
		{name: "accept at MAIL with an edit waits for the end and runs final filters only",
			steps: steps(fixed("allow", filters.StageMailFrom, filters.Verdict{Action: filters.Accept, Edits: addEdit}), &filtertest.Script{},
				&finalRecorder{}), rcpts: []string{"reject@lab.example"}, hdrs: hdrs, body: "x\r\n", want: "accept"},
		{name: "one recipient refused, the other delivered", steps: steps(rcptGate{}, &filtertest.Script{}),
			rcpts: []string{"nobody@lab.example", "ok@lab.example", "later@lab.example"}, want: "accept"},
		{name: "every recipient refused", steps: steps(rcptGate{}, &filtertest.Script{}),
			rcpts: []string{"nobody@lab.example", "later@lab.example"}, want: "tempfail"},
		{name: "edits at end of header are seen at end of message", steps: steps(subjectTagger{}, &filtertest.Script{}),
			rcpts: []string{"ok@lab.example"}, hdrs: hdrs, body: "body\r\n", want: "accept"},
		{name: "edit at MAIL is applied before end of header", steps: steps(fixed("early", filters.StageMailFrom, filters.Verdict{Edits: addEdit}), subjectTagger{}),
			rcpts: []string{"ok@lab.example"}, hdrs: hdrs, want: "accept"},
		{name: "filter error with tempfail policy", steps: func() []filters.Step {
			return []filters.Step{{Filter: &filtertest.Fixed{FilterName: "broken", At: filters.StagesOf(filters.StageEOM), Err: filtertest.ErrTest}, OnFailure: filters.FailTempfail}}
		}, rcpts: []string{"ok@lab.example"}, want: "tempfail"},
		{name: "header block under the bound", steps: steps(subjectTagger{}, &filtertest.Script{}),
			rcpts: []string{"ok@lab.example"}, hdrs: bigHeaders(262), body: "b\r\n", want: "accept"},
		{name: "header block over the bound is refused", steps: steps(subjectTagger{}, &filtertest.Script{}, &finalRecorder{}),
			rcpts: []string{"ok@lab.example"}, hdrs: bigHeaders(263), body: "b\r\n", want: "reject"},
		{name: "header block over the bound is refused after an accept at MAIL",
			steps: steps(fixed("allow", filters.StageMailFrom, filters.Verdict{Action: filters.Accept, Edits: addEdit}), &finalRecorder{}),
			rcpts: []string{"ok@lab.example"}, hdrs: bigHeaders(263), body: "b\r\n", want: "reject"},
		{name: "reject at end of header skips the end", steps: steps(fixed("hdr", filters.StageHeaders, filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 554, Text: "No"}}), &finalRecorder{}),
			rcpts: []string{"ok@lab.example"}, hdrs: hdrs, body: "b\r\n", want: "reject"},
	}
}

// Replay ends every message exactly as a session does for an MTA: the
// same action, reply, edits, quarantine reason, refused recipients and
// the same filter calls in the same order.
func TestReplayMatchesSession(t *testing.T) {
	for _, tc := range replayCases() {
		t.Run(tc.name, func(t *testing.T) {
			tx := milter.Transaction{
				Conn:    filters.Conn{Hostname: "client.example", Family: "tcp4", Port: 4321, Helo: "helo.example"},
				From:    filters.Address{Addr: "alice@example.org"},
				QueueID: "4ABC123",
				Headers: tc.hdrs,
			}
			tx.Conn.Addr = netip.MustParseAddr("192.0.2.7")
			for _, r := range tc.rcpts {
				tx.Rcpts = append(tx.Rcpts, filters.Address{Addr: r})
			}

			var viaSession, viaReplay decisionLog
			got := sessionEnding(t, filters.NewPipeline(tc.steps(), &viaSession), tx, tc.body)
			got.Decisions = viaSession.list

			tx.Body = strings.NewReader(tc.body)
			res, err := milter.Replay(context.Background(), milter.Config{Pipeline: filters.NewPipeline(tc.steps(), &viaReplay)}, tx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Action.String() != tc.want {
				t.Errorf("Replay: action %s, want %s", res.Action, tc.want)
			}
			rep := replayEnding(res)
			rep.Decisions = viaReplay.list
			if !reflect.DeepEqual(rep, got) {
				t.Errorf("Replay and session differ\n replay:  %+v\n session: %+v", rep, got)
			}
		})
	}
}

// sessionEnding runs tx through a sluice server with a go-milter client
// that behaves as an MTA: it stops at the first final reply and skips
// DATA when every recipient was refused.
func sessionEnding(t *testing.T, p *filters.Pipeline, tx milter.Transaction, body string) ending {
	t.Helper()
	_, addr := startServer(t, milter.Config{Pipeline: p})
	s := dial(t, addr)
	var e ending
	final := func(act *gomilter.Action) bool {
		switch act.Code {
		case gomilter.ActContinue:
			return false
		case gomilter.ActAccept:
			e.Action = "accept"
		case gomilter.ActDiscard:
			e.Action = "discard"
		case gomilter.ActReplyCode:
			e.Action = "reply"
			e.Reply = fmt.Sprintf("%d %s", act.SMTPCode, act.SMTPText)
		default:
			t.Fatalf("unexpected action %c", act.Code)
		}
		return true
	}
	if final(must(t)(s.Conn(tx.Conn.Hostname, gomilter.FamilyInet, tx.Conn.Port, tx.Conn.Addr.String()))) {
		return e
	}
	if final(must(t)(s.Helo(tx.Conn.Helo))) {
		return e
	}
	if final(must(t)(s.Mail(tx.From.Addr, nil))) {
		return e
	}
	left := 0
	for _, r := range tx.Rcpts {
		s.Macros(gomilter.CodeRcpt, "i", tx.QueueID)
		act := must(t)(s.Rcpt(r.Addr, nil))
		if act.Code == gomilter.ActReplyCode {
			e.Refused = append(e.Refused, fmt.Sprintf("%s: %d %s", r.Addr, act.SMTPCode, act.SMTPText))
			continue
		}
		left++
		if final(act) {
			return e
		}
	}
	if left == 0 {
		e.Action = "none left"
		return e
	}
	for _, h := range tx.Headers {
		if final(must(t)(s.HeaderField(h.Name, h.Value))) {
			return e
		}
	}
	if final(must(t)(s.HeaderEnd())) {
		return e
	}
	mods, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		switch m.Code {
		case gomilter.ActQuarantine:
			e.Quarantine = m.Reason
		case gomilter.ActAddHeader:
			e.Edits = append(e.Edits, fmt.Sprintf("add %s: %q", m.HeaderName, m.HeaderValue))
		case gomilter.ActInsertHeader:
			// On the wire the MTA's hidden Received: field is index 0.
			e.Edits = append(e.Edits, fmt.Sprintf("insert %d %s: %q", m.HeaderIndex-1, m.HeaderName, m.HeaderValue))
		case gomilter.ActChangeHeader:
			e.Edits = append(e.Edits, fmt.Sprintf("change %d %s: %q", m.HeaderIndex, m.HeaderName, m.HeaderValue))
		default:
			t.Fatalf("unexpected modification %c", m.Code)
		}
	}
	if !final(act) {
		t.Fatalf("no final action at end of message")
	}
	return e
}

// replayEnding expresses a Replay result as the client sees it.
func replayEnding(r milter.Result) ending {
	var e ending
	switch r.Action {
	case filters.Accept, filters.Quarantine:
		e.Action = "accept"
	case filters.Discard:
		e.Action = "discard"
	case filters.Reject, filters.Tempfail:
		e.Action = "reply"
		e.Reply = r.Reply.String()
	}
	for _, rf := range r.Refused {
		e.Refused = append(e.Refused, rf.Rcpt+": "+rf.Reply.String())
	}
	if len(r.Refused) > 0 && r.Stage == filters.StageRcptTo && r.Action != filters.Accept {
		e.Action, e.Reply = "none left", ""
	}
	for _, ed := range r.Edits {
		switch ed.Kind {
		case filters.AddHeader:
			e.Edits = append(e.Edits, fmt.Sprintf("add %s: %q", ed.Name, ed.Value))
		case filters.InsertHeader:
			e.Edits = append(e.Edits, fmt.Sprintf("insert %d %s: %q", ed.Index, ed.Name, ed.Value))
		case filters.ChangeHeader:
			e.Edits = append(e.Edits, fmt.Sprintf("change %d %s: %q", ed.Index, ed.Name, ed.Value))
		case filters.DeleteHeader:
			e.Edits = append(e.Edits, fmt.Sprintf("change %d %s: %q", ed.Index, ed.Name, ""))
		}
	}
	e.Quarantine = r.Quarantine
	return e
}

func TestReplayDeliveredHeaders(t *testing.T) {
	p := filters.NewPipeline([]filters.Step{{Filter: subjectTagger{}}}, nil)
	hdrs, body := milter.ParseMessage([]byte("From: a@example.org\nSubject: Hi\nX-Drop: x\n\nbody\n"), milter.Postfix)
	res, err := milter.Replay(context.Background(), milter.Config{Pipeline: p},
		milter.Transaction{From: filters.Address{Addr: "a@example.org"}, Rcpts: []filters.Address{{Addr: "b@lab.example"}}, QueueID: "Q1",
			Headers: hdrs, Body: bytes.NewReader(body)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []filters.Header{{Name: "X-Top", Value: "first"}, {Name: "From", Value: "a@example.org"},
		{Name: "Subject", Value: "[tagged] Hi"}, {Name: "X-Seen", Value: "[tagged] Hi qid=Q1 fields=3"}}
	if !reflect.DeepEqual(res.Headers, want) {
		t.Errorf("delivered headers %q, want %q", res.Headers, want)
	}
	if !res.HeadersSent || res.BodySent {
		t.Errorf("HeadersSent %v BodySent %v, want true false", res.HeadersSent, res.BodySent)
	}
}

func TestParseMessage(t *testing.T) {
	h := func(kv ...string) []filters.Header {
		var out []filters.Header
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, filters.Header{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	// noSpace marks the fields of hs named that had no space after
	// their colon.
	noSpace := func(hs []filters.Header, names ...string) []filters.Header {
		for i := range hs {
			if slices.Contains(names, hs[i].Name) {
				hs[i].NoSpace = true
			}
		}
		return hs
	}
	tests := []struct {
		raw  string
		mta  milter.MTA
		hdrs []filters.Header
		body string
	}{
		// Both MTAs take off the one space after the colon, nothing more,
		// and tell a field that had none.
		{"Subject: a\r\nX-F:  one\r\n\ttwo\r\n  three\r\n\r\nline1\r\nline2", milter.Postfix, h("Subject", "a", "X-F", " one\n\ttwo\n  three"), "line1\r\nline2\r\n"},
		{"X-T:\tz\r\nX-N:x\r\nX-S :  v\r\nX-E:\r\nX-W: t  \r\n\r\n", milter.Postfix, noSpace(h("X-T", "\tz", "X-N", "x", "X-S", " v", "X-E", "", "X-W", "t  "), "X-T", "X-N", "X-E"), ""},
		{"X-T:\tz\r\nX-M:    y\r\n\r\n", milter.Sendmail, noSpace(h("X-T", "\tz", "X-M", "   y"), "X-T"), ""},
		{"From someone@example.org Mon Jan  1 00:00:00 2024\nSubject: b\n\nx\n\ny\n", milter.Postfix, h("Subject", "b"), "x\r\n\r\ny\r\n"},
		{"Subject: c\nnot a field\nmore\n", milter.Postfix, h("Subject", "c"), "not a field\r\nmore\r\n"},
		{"Subject : spaced\nEmpty:\n", milter.Postfix, noSpace(h("Subject", "spaced", "Empty", ""), "Empty"), ""},
		{"From : alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n", milter.Postfix, h("From", "alice@example.org", "Subject", "hi"), "body\r\n"},
		{"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\r\nFrom: a@example.org\r\n\r\n", milter.Postfix, h("From", "a@example.org"), ""},
		{"", milter.Postfix, nil, ""},
		// The observations of docs/headerfix.md.
		{"X-B: p\r q\r\nX-C: p\rX-D: q\r\nX-F: end\r\r\nSubject: x\x00y\r\n\r\nb\rc\r\n", milter.Postfix,
			h("X-B", "p  q", "X-C", "p X-D: q", "X-F", "end", "Subject", "x"), "b c\r\n"},
		// Postfix treats a CR in a body line as in a header line, and
		// keeps a NUL there.
		{"S: x\r\n\r\na\r\r\nb\rc\x00d\r\n\r\r\n", milter.Postfix, h("S", "x"), "a\r\nb c\x00d\r\n\r\n"},
		{"X-B: p\r q\r\nX-F: end\r\r\nSubject: x\x00y\r\n\r\n", milter.Sendmail,
			h("X-B", "p\r q", "X-F", "end", "Subject", "xy"), ""},
		// Sendmail keeps a bare LF in a line that ends in CRLF (observed,
		// see docs/headerfix.md); Postfix ends the line there.
		{"X-A: a\nX-B: b\r\nX-C: y\nX-D: z\r\nX-E: p\n q\r\nS: x\n\r\n\r\nb\r\n", milter.Sendmail,
			h("X-A", "a\nX-B: b", "X-C", "y\nX-D: z", "X-E", "p\n q", "S", "x\n"), "b\r\n"},
		{"Subject: a\nb c\r\nX-Z: z\r\n\r\n", milter.Sendmail, h("Subject", "a\nb c", "X-Z", "z"), ""},
		{"Subject: a\nb c\r\nX-Z: z\r\n\r\n", milter.Postfix, h("Subject", "a"), "b c\r\nX-Z: z\r\n\r\n"},
		// A file with LF line ends is as a client sends it, with CRLF.
		{"Date: d\nFrom: f\n\nb\n", milter.Sendmail, h("Date", "d", "From", "f"), "b\r\n"},
		// The blank line that ends the header counts: a CRLF there makes
		// it a message as it went over SMTP, a bare LF there (before any
		// CRLF) one stored on disk, whatever the body's line ends.
		{"Subject: a\nX-B: b\n\r\nx\r\n", milter.Sendmail, h("Subject", "a\nX-B: b\n"), "x\r\n"},
		{"Subject: a\nX-B: b\n\nx\r\n", milter.Sendmail, h("Subject", "a", "X-B", "b"), "x\r\n"},
	}
	for _, tc := range tests {
		hdrs, body := milter.ParseMessage([]byte(tc.raw), tc.mta)
		if !reflect.DeepEqual(hdrs, tc.hdrs) || string(body) != tc.body {
			t.Errorf("ParseMessage(%q) = %q, %q; want %q, %q", tc.raw, hdrs, body, tc.hdrs, tc.body)
		}
	}
}
