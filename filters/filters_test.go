package filters_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

func fixed(name string, a filters.Action, text string) *filtertest.Fixed {
	v := filters.Verdict{Action: a, Reason: name}
	switch a {
	case filters.Reject:
		v.Reply = &filters.Reply{Code: 550, Enhanced: "5.7.1", Text: text}
	case filters.Tempfail:
		v.Reply = &filters.Reply{Code: 451, Enhanced: "4.7.1", Text: text}
	}
	v.Edits = []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-" + name, Value: "1"}}
	return &filtertest.Fixed{FilterName: name, At: filters.StagesOf(filters.StageEOM), Verdict: v}
}

func TestPrecedence(t *testing.T) {
	A := filters.Accept
	tests := []struct {
		actions []filters.Action
		want    filters.Action
		winner  string
		edits   int
	}{
		{[]filters.Action{filters.Continue, filters.Continue}, filters.Continue, "", 2},
		{[]filters.Action{A, filters.Continue}, A, "f0", 2},
		{[]filters.Action{A, filters.Discard}, filters.Discard, "f1", 0},
		{[]filters.Action{filters.Discard, filters.Quarantine}, filters.Quarantine, "f1", 2},
		{[]filters.Action{filters.Quarantine, filters.Tempfail}, filters.Tempfail, "f1", 0},
		{[]filters.Action{filters.Tempfail, filters.Reject, A}, filters.Reject, "f1", 0},
		{[]filters.Action{filters.Reject, filters.Tempfail}, filters.Reject, "f0", 0},
		// Same action: the first in order gives the reply.
		{[]filters.Action{filters.Tempfail, filters.Tempfail}, filters.Tempfail, "f0", 0},
		{[]filters.Action{filters.Quarantine, A, filters.Continue}, filters.Quarantine, "f0", 3},
	}
	for _, tc := range tests {
		var steps []filters.Step
		var fs []*filtertest.Fixed
		for i, a := range tc.actions {
			f := fixed("f"+string(rune('0'+i)), a, "from f"+string(rune('0'+i)))
			fs = append(fs, f)
			steps = append(steps, filters.Step{Filter: f})
		}
		p := filters.NewPipeline(steps, nil)
		res := p.Run(context.Background(), filters.StageEOM, &filters.Message{})
		if res.Verdict.Action != tc.want || res.Filter != tc.winner || len(res.Verdict.Edits) != tc.edits {
			t.Errorf("%v: got %s by %q with %d edits, want %s by %q with %d", tc.actions, res.Verdict.Action, res.Filter, len(res.Verdict.Edits), tc.want, tc.winner, tc.edits)
		}
		if res.Verdict.Reply != nil && res.Verdict.Reply.Text != "from "+tc.winner {
			t.Errorf("%v: reply %q from the wrong filter", tc.actions, res.Verdict.Reply.Text)
		}
		// A reject stops the stage: later filters are not asked.
		for i, a := range tc.actions {
			if a == filters.Reject {
				for _, later := range fs[i+1:] {
					if later.Calls() != 0 {
						t.Errorf("%v: %s ran after a reject", tc.actions, later.FilterName)
					}
				}
				break
			}
		}
	}
}

func TestOutcomeAcrossStages(t *testing.T) {
	var o filters.Outcome
	o.Add(filters.StageResult{Verdict: filters.Verdict{Action: filters.Quarantine, Edits: []filters.HeaderEdit{{Name: "X-A"}}}, Filter: "a"})
	if o.Final() || o.Settled() {
		t.Error("quarantine must wait for end of message")
	}
	o.Add(filters.StageResult{Verdict: filters.Verdict{Action: filters.Accept}, Filter: "b"})
	if o.Action != filters.Quarantine || o.Filter != "a" {
		t.Errorf("accept overrode quarantine: %+v", o)
	}
	var acc filters.Outcome
	acc.Add(filters.StageResult{Verdict: filters.Verdict{Action: filters.Accept, Edits: []filters.HeaderEdit{{Name: "X-A"}}}})
	if acc.Final() || !acc.Settled() {
		t.Error("accept with edits pending must wait for end of message, asking no more filters")
	}
	o.Add(filters.StageResult{Verdict: filters.Verdict{Action: filters.Reject}, Filter: "c"})
	if !o.Final() || len(o.Edits) != 0 {
		t.Errorf("reject: final %v, edits %v", o.Final(), o.Edits)
	}
}

func TestFailurePolicies(t *testing.T) {
	tests := []struct {
		name    string
		f       *filtertest.Fixed
		policy  filters.FailurePolicy
		want    filters.Action
		failure string
	}{
		{"error", &filtertest.Fixed{Err: filtertest.ErrTest}, filters.FailAccept, filters.Continue, filters.FailureError},
		{"error-tempfail", &filtertest.Fixed{Err: filtertest.ErrTest}, filters.FailTempfail, filters.Tempfail, filters.FailureError},
		{"panic", &filtertest.Fixed{Panic: errors.New("boom")}, filters.FailTempfail, filters.Tempfail, filters.FailurePanic},
		{"timeout", &filtertest.Fixed{Delay: time.Second}, filters.FailAccept, filters.Continue, filters.FailureTimeout},
		{"deaf-timeout", &filtertest.Fixed{Delay: time.Second, IgnoreContext: true}, filters.FailAccept, filters.Continue, filters.FailureTimeout},
		{"invalid-reply", &filtertest.Fixed{Verdict: filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 451, Text: "x"}}}, filters.FailAccept, filters.Continue, filters.FailureError},
		{"invalid-edit", &filtertest.Fixed{Verdict: filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "Bad Name"}}}}, filters.FailAccept, filters.Continue, filters.FailureError},
		{"ok", &filtertest.Fixed{Verdict: filters.Verdict{Action: filters.Discard}}, filters.FailTempfail, filters.Discard, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.FilterName = tc.name
			tc.f.At = filters.StagesOf(filters.StageMailFrom)
			var seen []filters.Decision
			obs := observerFunc(func(d filters.Decision) { seen = append(seen, d) })
			p := filters.NewPipeline([]filters.Step{{Filter: tc.f, Timeout: 50 * time.Millisecond, OnFailure: tc.policy}}, obs)
			start := time.Now()
			res := p.Run(context.Background(), filters.StageMailFrom, &filters.Message{})
			if time.Since(start) > 500*time.Millisecond {
				t.Errorf("a hung filter held the stage for %s", time.Since(start))
			}
			if res.Verdict.Action != tc.want {
				t.Errorf("action %s, want %s", res.Verdict.Action, tc.want)
			}
			if len(seen) != 1 || seen[0].Failure != tc.failure {
				t.Errorf("observed %+v, want failure %q", seen, tc.failure)
			}
			if tc.want == filters.Tempfail && (res.Verdict.Reply == nil || res.Verdict.Reply.Code != 451) {
				t.Errorf("tempfail reply %+v", res.Verdict.Reply)
			}
		})
	}
}

type observerFunc func(filters.Decision)

func (f observerFunc) FilterDecided(d filters.Decision) { f(d) }

func TestStagesSkipFiltersThatDoNotAsk(t *testing.T) {
	f := fixed("late", filters.Reject, "no")
	p := filters.NewPipeline([]filters.Step{{Filter: f}}, nil)
	res := p.Run(context.Background(), filters.StageMailFrom, &filters.Message{})
	if res.Verdict.Action != filters.Continue || f.Calls() != 0 || len(res.Decisions) != 0 {
		t.Errorf("a filter ran at a stage it did not ask for: %+v", res)
	}
	if got := p.Needs().Stages.String(); got != "eom" {
		t.Errorf("needs %q", got)
	}
}

func TestReplyValidation(t *testing.T) {
	good := []filters.Reply{
		{Code: 550, Enhanced: "5.7.1", Text: "Sender banned. Please use legitimate domain to send email."},
		{Code: 451, Enhanced: "4.3.0", Text: "Try later"},
		{Code: 554, Text: "No enhanced code"},
		{Code: 550, Enhanced: "5.100.999", Text: "100% spam"},
	}
	for _, r := range good {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []filters.Reply{
		{Code: 250, Text: "ok"},
		{Code: 600, Text: "x"},
		{Code: 550, Enhanced: "4.7.1", Text: "class mismatch"},
		{Code: 451, Enhanced: "5.7.1", Text: "class mismatch"},
		{Code: 550, Enhanced: "5.7", Text: "short"},
		{Code: 550, Enhanced: "5.7.1234", Text: "long detail"},
		{Code: 550, Enhanced: "5.x.1", Text: "letters"},
		{Code: 550, Text: ""},
		{Code: 550, Text: "two\r\nlines"},
		{Code: 550, Text: "nul\x00byte"},
		{Code: 550, Text: "tab\there"},
		{Code: 550, Text: "non-ASCII é"},
		{Code: 550, Text: strings.Repeat("x", 401)},
	}
	for _, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}

func TestParseReply(t *testing.T) {
	r, err := filters.ParseReply("550 5.7.1 Sender banned")
	if err != nil || r.Code != 550 || r.Enhanced != "5.7.1" || r.Text != "Sender banned" {
		t.Errorf("%+v %v", r, err)
	}
	r, err = filters.ParseReply("451 Try 4.5 later")
	if err != nil || r.Enhanced != "" || r.Text != "Try 4.5 later" {
		t.Errorf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "abc text", "55 5.7.1 x", "550 4.7.1 mismatch", "550 5.7.1", "250 ok"} {
		if _, err := filters.ParseReply(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A reply template's text is checked as ParseReply checks a reply's,
// but for its length, which the filter checks on what it renders.
func TestParseReplyTemplate(t *testing.T) {
	long := strings.Repeat("x", 400) + " {queue_id}"
	r, err := filters.ParseReplyTemplate("550 5.7.1 " + long)
	if err != nil || r.Code != 550 || r.Enhanced != "5.7.1" || r.Text != long {
		t.Errorf("%+v %v", r, err)
	}
	if _, err := filters.ParseReply("550 5.7.1 " + long); err == nil {
		t.Errorf("ParseReply accepted a text of %d bytes", len(long))
	}
	for _, bad := range []string{"", "abc text", "550 4.7.1 mismatch", "550 5.7.1", "250 ok", "550 5.7 text", "550 5.7.1 line\r\nbreak"} {
		if _, err := filters.ParseReplyTemplate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A first word of digits and dots that starts like an enhanced status
// code but is not a whole one is a mistyped code: taken as text, it went
// out as "550 5.0.0 5.7 text". It is refused, naming the code; a first
// word that is an ordinary number, an address or a word stays text.
func TestParseReplyMistypedEnhanced(t *testing.T) {
	for _, bad := range []string{"550 5.7 text", "550 5. text", "451 4.7.1. text", "550 5.7.1.2 text", "550 5..1 text", "550 5.7.1000 text", "550 4.7 text", "550 5.7"} {
		_, err := filters.ParseReply(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		code := strings.Fields(bad)[1]
		if !strings.Contains(err.Error(), "enhanced status \""+code+"\"") {
			t.Errorf("%q: error %q does not name %q", bad, err, code)
		}
	}
	for in, text := range map[string]string{
		"550 3 strikes":                   "3 strikes",
		"554 192.0.2.1 is blocked":        "192.0.2.1 is blocked",
		"451 Try 4.5 later":               "Try 4.5 later",
		"550 5.7.1 5.7 is not a code":     "5.7 is not a code",
		"550 10.5 percent over the limit": "10.5 percent over the limit",
	} {
		r, err := filters.ParseReply(in)
		if err != nil || r.Text != text {
			t.Errorf("%q: %+v %v, want text %q", in, r, err, text)
		}
	}
}

// FromFields gives every From field up to the bound, whatever the case
// of its name, and no other field.
func TestFromFields(t *testing.T) {
	m := &filters.Message{Headers: []filters.Header{
		{Name: "Subject", Value: "s"},
		{Name: "From", Value: "a@one.example"},
		{Name: "Reply-To", Value: "r@x.example"},
		{Name: "FROM", Value: "b@two.example"},
	}}
	if got := strings.Join(m.FromFields(), " "); got != "a@one.example b@two.example" {
		t.Errorf("FromFields: %q", got)
	}
	for i := range filters.MaxFromFields + 5 {
		m.Headers = append(m.Headers, filters.Header{Name: "from", Value: strconv.Itoa(i)})
	}
	if got := m.FromFields(); len(got) != filters.MaxFromFields || got[0] != "a@one.example" {
		t.Errorf("%d From fields read of %d, want the first %d: %q", len(got), filters.MaxFromFields+7, filters.MaxFromFields, got)
	}
	if got := (&filters.Message{}).FromFields(); got != nil {
		t.Errorf("no From field: %q", got)
	}
}

func TestMessageModel(t *testing.T) {
	m := &filters.Message{
		Conn: &filters.Conn{Macros: map[string]string{"{client_addr}": "192.0.2.1", "j": "mx"}},
		Headers: []filters.Header{
			{Name: "Received", Value: "one"},
			{Name: "Subject", Value: "Grüße, 世界"},
			{Name: "X-Empty", Value: ""},
			{Name: "received", Value: "two"},
			{Name: "X-Folded", Value: "a\r\n\tb"},
			// As the MTAs hand folded values to a milter.
			{Name: "X-Milter-Folded", Value: "c\n\td\n e"},
		},
		Macros: map[string]string{"i": "ABC123", "j": "override"},
	}
	if v, _ := m.Header("RECEIVED"); v != "one" {
		t.Errorf("first Received: %q", v)
	}
	if v, ok := m.Header("x-empty"); !ok || v != "" {
		t.Errorf("empty header: %q %v", v, ok)
	}
	if _, ok := m.Header("Missing"); ok {
		t.Error("missing header found")
	}
	for _, name := range []string{"client_addr", "{client_addr}"} {
		if v, ok := m.Macro(name); !ok || v != "192.0.2.1" {
			t.Errorf("macro %s: %q", name, v)
		}
	}
	if v, _ := m.Macro("j"); v != "override" {
		t.Errorf("message macros must win over connection macros: %q", v)
	}
	m.Body = filters.NewBody(4, "")
	m.Body.Write([]byte("body\r\n"))
	defer m.Body.Close()
	raw, _ := io.ReadAll(m.Raw())
	want := "Received: one\r\nSubject: Grüße, 世界\r\nX-Empty: \r\nreceived: two\r\nX-Folded: a\r\n\tb\r\n" +
		"X-Milter-Folded: c\r\n\td\r\n e\r\n\r\nbody\r\n"
	if string(raw) != want {
		t.Errorf("raw:\n%q\nwant\n%q", raw, want)
	}
	// Raw can be read again.
	raw2, _ := io.ReadAll(m.Raw())
	if string(raw2) != want {
		t.Error("second Raw differs")
	}

	// A line end in a value that is not folding (Sendmail hands such
	// values over) stays inside its field, as in the mailbox: it must
	// neither end the header block nor start a field of its own.
	m = &filters.Message{Headers: []filters.Header{
		{Name: "X-Lf", Value: "x\nX-Sluice-Bayes: Ham"},
		{Name: "X-End", Value: "y\r\n"},
		{Name: "Subject", Value: "z"},
	}}
	raw, _ = io.ReadAll(m.Raw())
	want = "X-Lf: x\r\n X-Sluice-Bayes: Ham\r\nX-End: y\r\n \r\nSubject: z\r\n\r\n"
	if string(raw) != want {
		t.Errorf("raw with stray line ends:\n%q\nwant\n%q", raw, want)
	}
}

func TestBodySpill(t *testing.T) {
	dir := t.TempDir()
	b := filters.NewBody(10, dir)
	b.Write([]byte("12345"))
	if b.Spilled() {
		t.Fatal("spilled too early")
	}
	b.Write([]byte("67890"))
	if b.Spilled() {
		t.Fatal("spilled at exactly the limit")
	}
	b.Write([]byte("X"))
	if !b.Spilled() || b.Size() != 11 {
		t.Fatalf("spilled %v size %d", b.Spilled(), b.Size())
	}
	big := strings.Repeat("y", 1<<20)
	b.Write([]byte(big))
	got, _ := io.ReadAll(b.Reader())
	if string(got) != "1234567890X"+big {
		t.Fatalf("content differs after spill (%d bytes)", len(got))
	}
	// The spill file is unlinked at once: nothing shows in the directory
	// even while the body is open.
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("spill file visible: %v", entries)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestBodySpillFailure(t *testing.T) {
	b := filters.NewBody(4, "/nonexistent/dir/for/sluice")
	b.Write([]byte("1234"))
	if _, err := b.Write([]byte("5")); err == nil || b.Err() == nil {
		t.Fatal("spill into a missing directory did not fail")
	}
	if _, err := b.Write([]byte("6")); err == nil {
		t.Fatal("a broken body accepted more data")
	}
	got, _ := io.ReadAll(b.Reader())
	if string(got) != "1234" {
		t.Errorf("what was stored before the failure: %q", got)
	}
	b.Close()
}

func TestParseAction(t *testing.T) {
	for _, a := range filters.Actions() {
		got, err := filters.ParseAction(a.String())
		if err != nil || got != a {
			t.Errorf("%s: %v %v", a, got, err)
		}
	}
	if _, err := filters.ParseAction("maybe"); err == nil {
		t.Error("unknown action accepted")
	}
}

func TestApplyEdits(t *testing.T) {
	base := func() []filters.Header {
		return []filters.Header{{Name: "Received", Value: "r1"}, {Name: "From", Value: "a"}, {Name: "received", Value: "r2"}, {Name: "Subject", Value: "s"}}
	}
	tests := []struct {
		name  string
		edits []filters.HeaderEdit
		want  string
	}{
		{"add", []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-A", Value: "1"}}, "Received=r1 From=a received=r2 Subject=s X-A=1"},
		{"insert top", []filters.HeaderEdit{{Kind: filters.InsertHeader, Name: "X-A", Value: "1", Index: 0}}, "X-A=1 Received=r1 From=a received=r2 Subject=s"},
		{"insert middle", []filters.HeaderEdit{{Kind: filters.InsertHeader, Name: "X-A", Value: "1", Index: 2}}, "Received=r1 From=a X-A=1 received=r2 Subject=s"},
		{"insert past end", []filters.HeaderEdit{{Kind: filters.InsertHeader, Name: "X-A", Value: "1", Index: 99}}, "Received=r1 From=a received=r2 Subject=s X-A=1"},
		{"change second of name", []filters.HeaderEdit{{Kind: filters.ChangeHeader, Name: "RECEIVED", Value: "new", Index: 2}}, "Received=r1 From=a received=new Subject=s"},
		{"change missing adds", []filters.HeaderEdit{{Kind: filters.ChangeHeader, Name: "Date", Value: "d", Index: 1}}, "Received=r1 From=a received=r2 Subject=s Date=d"},
		{"delete first", []filters.HeaderEdit{{Kind: filters.DeleteHeader, Name: "received", Index: 1}}, "From=a received=r2 Subject=s"},
		{"change to empty deletes", []filters.HeaderEdit{{Kind: filters.ChangeHeader, Name: "Subject", Index: 1}}, "Received=r1 From=a received=r2"},
		{"delete missing", []filters.HeaderEdit{{Kind: filters.DeleteHeader, Name: "X-None", Index: 1}}, "Received=r1 From=a received=r2 Subject=s"},
		{"delete all of a name, last first", []filters.HeaderEdit{
			{Kind: filters.DeleteHeader, Name: "received", Index: 2},
			{Kind: filters.DeleteHeader, Name: "RECEIVED", Index: 1},
		}, "From=a Subject=s"},
		{"delete past the end, then last first", []filters.HeaderEdit{
			{Kind: filters.DeleteHeader, Name: "Received", Index: 5},
			{Kind: filters.DeleteHeader, Name: "Received", Index: 2},
		}, "Received=r1 From=a Subject=s"},
		{"delete the first twice", []filters.HeaderEdit{
			{Kind: filters.DeleteHeader, Name: "Received", Index: 1},
			{Kind: filters.DeleteHeader, Name: "Received", Index: 1},
		}, "From=a Subject=s"},
		{"delete last first, then another name", []filters.HeaderEdit{
			{Kind: filters.DeleteHeader, Name: "Received", Index: 2},
			{Kind: filters.DeleteHeader, Name: "Subject", Index: 1},
			{Kind: filters.DeleteHeader, Name: "Received", Index: 1},
		}, "From=a"},
		{"sequence", []filters.HeaderEdit{
			{Kind: filters.DeleteHeader, Name: "Received", Index: 1},
			{Kind: filters.ChangeHeader, Name: "Received", Value: "only", Index: 1},
			{Kind: filters.InsertHeader, Name: "X-Top", Value: "t", Index: 0},
		}, "X-Top=t From=a received=only Subject=s"},
	}
	for _, tc := range tests {
		got := filters.ApplyEdits(base(), tc.edits)
		var parts []string
		for _, h := range got {
			parts = append(parts, h.Name+"="+h.Value)
		}
		if s := strings.Join(parts, " "); s != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, s, tc.want)
		}
	}
}

// A later filter sees the header edits of an earlier one.
func TestLaterFiltersSeeEdits(t *testing.T) {
	first := &filtertest.Fixed{FilterName: "first", At: filters.StagesOf(filters.StageEOM),
		Verdict: filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-First", Value: "yes"}}}}
	var seen string
	second := checkFunc(func(m *filters.Message) { seen, _ = m.Header("X-First") })
	p := filters.NewPipeline([]filters.Step{{Filter: first}, {Filter: second}}, nil)
	m := &filters.Message{}
	p.Run(context.Background(), filters.StageEOM, m)
	if seen != "yes" {
		t.Errorf("second filter saw X-First=%q", seen)
	}
}

type checkFunc func(*filters.Message)

func (f checkFunc) Name() string { return "check" }
func (f checkFunc) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true}
}
func (f checkFunc) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	f(m)
	return filters.Verdict{}, nil
}

// headerSeer records the header names it sees and answers with action.
type headerSeer struct {
	action filters.Action
	seen   []string
}

func (*headerSeer) Name() string { return "seer" }
func (*headerSeer) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true}
}
func (s *headerSeer) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	s.seen = nil
	for _, h := range m.Headers {
		s.seen = append(s.seen, h.Name)
	}
	return filters.Verdict{Action: s.action}, nil
}

// A Discard's edits reach the MTA when a later filter quarantines the
// message instead; the later filters, and the message afterwards, see
// them too, so that what they read is what is held.
func TestDiscardEditsSeenLater(t *testing.T) {
	disc := &filtertest.Fixed{FilterName: "disc", At: filters.StagesOf(filters.StageEOM),
		Verdict: filters.Verdict{Action: filters.Discard,
			Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Disc", Value: "1"}}}}
	seer := &headerSeer{action: filters.Quarantine}
	p := filters.NewPipeline([]filters.Step{{Filter: disc}, {Filter: seer}}, nil)
	m := &filters.Message{Headers: []filters.Header{{Name: "Subject", Value: "s"}}}
	res := p.Run(context.Background(), filters.StageEOM, m)
	if res.Verdict.Action != filters.Quarantine {
		t.Fatalf("action %s", res.Verdict.Action)
	}
	var want, after []string
	for _, h := range filters.ApplyEdits([]filters.Header{{Name: "Subject", Value: "s"}}, res.Verdict.Edits) {
		want = append(want, h.Name)
	}
	for _, h := range m.Headers {
		after = append(after, h.Name)
	}
	if strings.Join(want, ",") != "Subject,X-Disc" {
		t.Fatalf("the MTA gets %v", want)
	}
	if strings.Join(seer.seen, ",") != strings.Join(want, ",") {
		t.Errorf("later filter saw %v, the MTA holds %v", seer.seen, want)
	}
	if strings.Join(after, ",") != strings.Join(want, ",") {
		t.Errorf("message headers after the stage %v, the MTA holds %v", after, want)
	}
}

// A sender may put as many fields in a header as the MTA takes: Postfix
// limits each field (header_size_limit), not their number, and the 1 MiB
// header block the milter edge takes holds over 100000 short ones. The
// Bayes and DNSBL filters
// delete every field of their name a message came with, the last first;
// carrying out those deletions must not take time quadratic in their
// number (it runs outside any filter's timeout), and must leave the same
// header as deleting one at a time.
func TestApplyEditsManyDeletions(t *testing.T) {
	const n = 100000
	var headers []filters.Header
	var edits []filters.HeaderEdit
	for i := range n {
		headers = append(headers, filters.Header{Name: "X-Sluice-Bayes", Value: "Ham"}, filters.Header{Name: "Received", Value: strconv.Itoa(i)})
	}
	headers = append(headers, filters.Header{Name: "x-sluice-bayes", Value: "last"})
	for i := n + 1; i >= 1; i-- {
		if i == n/2 {
			continue // one stays
		}
		edits = append(edits, filters.HeaderEdit{Kind: filters.DeleteHeader, Name: "X-Sluice-Bayes", Index: i})
	}
	edits = append(edits, filters.HeaderEdit{Kind: filters.AddHeader, Name: "X-Sluice-Bayes", Value: "Spam"})

	done := make(chan []filters.Header, 1)
	start := time.Now()
	go func() { done <- filters.ApplyEdits(headers, edits) }()
	var got []filters.Header
	select {
	case got = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d deletions still not done after 20s", len(edits)-1)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("%d deletions took %v", len(edits)-1, took)
	}
	if len(got) != n+2 {
		t.Fatalf("%d fields left, want %d", len(got), n+2)
	}
	for i := range n {
		if h := got[i]; h.Name == "X-Sluice-Bayes" {
			if i != n/2-1 || h.Value != "Ham" {
				t.Fatalf("field %d is %s: %s", i, h.Name, h.Value)
			}
			got = append(got[:i], got[i+1:]...)
			break
		}
	}
	for i := range n {
		if h := got[i]; h.Name != "Received" || h.Value != strconv.Itoa(i) {
			t.Fatalf("field %d is %s: %s, want Received: %d", i, h.Name, h.Value, i)
		}
	}
	if h := got[n]; h.Name != "X-Sluice-Bayes" || h.Value != "Spam" {
		t.Errorf("last field %s: %s, want the added one", h.Name, h.Value)
	}
}

// Size counts every byte written, also those a broken body could not
// keep; the reader gives only what was kept.
func TestBodySpillFailureSize(t *testing.T) {
	b := filters.NewBody(4, "/nonexistent/dir/for/sluice")
	defer b.Close()
	b.Write([]byte("1234"))
	b.Write([]byte("56"))
	b.Write([]byte("789"))
	if b.Err() == nil {
		t.Fatal("spill into a missing directory did not fail")
	}
	if got := b.Size(); got != 9 {
		t.Errorf("Size() = %d, want 9, the bytes written", got)
	}
	got, _ := io.ReadAll(b.Reader())
	if string(got) != "1234" {
		t.Errorf("what was stored before the failure: %q", got)
	}
}

// Both MTAs send a macro under the name the administrator wrote in their
// macro lists, and take "{i}" for "i" there (observed with Postfix 3.7 and
// Sendmail 8.17: milter_rcpt_macros = {i} sends "{i}"). A filter asking
// for a one-letter macro finds it in either spelling, as it does a longer
// one.
func TestMacroOneLetterNameInBraces(t *testing.T) {
	m := &filters.Message{
		Conn:   &filters.Conn{Macros: map[string]string{"{v}": "Postfix 3.7.11"}},
		Macros: map[string]string{"i": "ABC123"},
	}
	for _, c := range []struct{ name, want string }{
		{"v", "Postfix 3.7.11"}, {"{v}", "Postfix 3.7.11"},
		{"i", "ABC123"}, {"{i}", "ABC123"},
	} {
		if v, ok := m.Macro(c.name); !ok || v != c.want {
			t.Errorf("macro %s: %q %v, want %q", c.name, v, ok, c.want)
		}
	}
	if v, ok := m.Macro(""); ok {
		t.Errorf("macro with an empty name found: %q", v)
	}
}
