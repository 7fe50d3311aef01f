package milter_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// indexEditor edits by the message's Subject, "own NAME" or "change
// NAME", and keeps the header it was shown, per Subject. "own NAME"
// deletes every field of that name the message came with, the last
// first, and adds one of its own, as the bayes and dnsbl filters do with
// their verdict fields; "change NAME" changes the first field of the name.
type indexEditor struct {
	shown headersBySubject
}

// headersBySubject keeps the header a filter was shown, by the message's
// Subject, for tests that compare it with the delivered one.
type headersBySubject struct {
	mu   sync.Mutex
	seen map[string][]filters.Header
}

// record keeps m's header and returns its Subject.
func (h *headersBySubject) record(m *filters.Message) string {
	subject, _ := m.Header("Subject")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string][]filters.Header{}
	}
	h.seen[subject] = slices.Clone(m.Headers)
	return subject
}

// of returns the header kept for subject.
func (h *headersBySubject) of(subject string) []filters.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[subject]
}

func (*indexEditor) Name() string { return "index-editor" }
func (*indexEditor) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true}
}

func (e *indexEditor) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	subject := e.shown.record(m)
	verb, name, _ := strings.Cut(subject, " ")
	var edits []filters.HeaderEdit
	switch verb {
	case "own":
		n := 0
		for _, h := range m.Headers {
			if filters.SameName(h.Name, name) {
				n++
			}
		}
		for i := n; i >= 1; i-- {
			edits = append(edits, filters.HeaderEdit{Kind: filters.DeleteHeader, Name: name, Index: i})
		}
		edits = append(edits, filters.HeaderEdit{Kind: filters.AddHeader, Name: name, Value: "ours"})
	case "change":
		edits = []filters.HeaderEdit{{Kind: filters.ChangeHeader, Name: name, Index: 1, Value: "changed"}}
	}
	return filters.Verdict{Edits: edits}, nil
}

// A header edit names its field by name and index among the fields of
// that name the milter was shown; the MTA must edit that same field.
// Here the MTA shows, hides or respells fields on its own: a blank before
// the colon ("X-Own : v", which both MTAs hand over as "X-Own"), a name
// in another case, an empty value, a value on a continuation line only,
// an empty From, Date, Message-ID or Resent-From (Sendmail drops them and
// shows only the second field), a Received (the MTA's own is never
// shown), 1,000 fields of one name. For "own" the delivered message must
// hold the filter's field and none of the sender's; for "change" every
// field of the name must be delivered as the header the filter saw,
// with that edit made, has them.
func TestEditIndexesCountWhatTheMTAShows(t *testing.T) {
	owned := map[string]string{
		"blank before colon": "X-Own : spaced\r\nX-Own\t: tabbed\r\nX-Own: plain\r\n",
		"case variants":      "x-own: lower\r\nX-OWN: upper\r\nX-Own: plain\r\n",
		"empty and folded":   "X-Own:\r\nX-Own:\r\n\tfolded\r\nX-Own:    lead\r\n",
		"thousand fields":    strings.Repeat("X-Own: f\r\n", 1000),
	}
	// Each "change" message carries an empty field of the name first and
	// a second one with a value, "second@lab.example".
	changed := []string{"From", "To", "Cc", "Reply-To", "Sender", "Date", "Message-ID",
		"Resent-From", "In-Reply-To", "References", "Received", "Subject", "X-Own"}
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ed := &indexEditor{}
			spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: ed}}, nil))
			mta := startMTA(t, name, spec)
			send := func(raw string) {
				t.Helper()
				c := mtatest.DialSMTP(t, mta.Addr())
				defer c.Close()
				c.Cmd("EHLO client.example")
				if r := c.Send("alice@lab.example", []string{"bob@lab.example"}, []byte(raw)); r.Code != 250 {
					t.Fatalf("%q: %v", raw[:min(len(raw), 60)], r)
				}
				c.Quit()
			}
			for what, fields := range owned {
				t.Run("own "+what, func(t *testing.T) {
					send("From: alice@lab.example\r\nSubject: own X-Own\r\n" + fields +
						"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n\r\nbody\r\n")
					d := mta.WaitDelivered(t, 1, 30*time.Second)[0]
					mta.ClearDelivered(t)
					if got := d.Values("X-Own"); !slices.Equal(got, []string{"ours"}) {
						t.Errorf("X-Own fields delivered: %d, the first %q; want only the filter's", len(got), got[:min(len(got), 5)])
					}
				})
			}
			for _, field := range changed {
				t.Run("change "+field, func(t *testing.T) {
					subject := "change " + field
					raw := "Subject: " + subject + "\r\n" + field + ":\r\n" + field + ": second@lab.example\r\n"
					if field != "From" {
						raw = "From: alice@lab.example\r\n" + raw
					}
					send(raw + "\r\nbody\r\n")
					d := mta.WaitDelivered(t, 1, 30*time.Second)[0]
					mta.ClearDelivered(t)
					seen := ed.shown.of(subject)
					after := filters.ApplyEdits(slices.Clone(seen), []filters.HeaderEdit{{Kind: filters.ChangeHeader, Name: field, Index: 1, Value: "changed"}})
					var want []string
					for _, h := range after {
						if filters.SameName(h.Name, field) {
							want = append(want, h.Value)
						}
					}
					got := d.Values(field)
					if field == "Received" {
						got = got[1:] // the MTA's own, above the client's
					}
					if !slices.Equal(got, want) {
						t.Errorf("shown %s fields %q; delivered %q, want %q", field, values(seen, field), got, want)
					}
				})
			}
		})
	}
}

func values(hs []filters.Header, name string) string {
	var vs []string
	for _, h := range hs {
		if filters.SameName(h.Name, name) {
			vs = append(vs, fmt.Sprintf("%q", h.Value))
		}
	}
	return strings.Join(vs, ", ")
}

// bodyKeeper keeps the header fields and the body of each message, by
// queue id.
type bodyKeeper struct {
	mu   sync.Mutex
	hdrs map[string][]filters.Header
	body map[string][]byte
}

func (*bodyKeeper) Name() string { return "body-keeper" }
func (*bodyKeeper) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true, Body: true}
}

func (k *bodyKeeper) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	var body []byte
	if m.Body != nil {
		var err error
		if body, err = io.ReadAll(m.Body.Reader()); err != nil {
			return filters.Verdict{}, err
		}
	}
	k.mu.Lock()
	k.hdrs[m.QueueID] = slices.Clone(m.Headers)
	k.body[m.QueueID] = body
	k.mu.Unlock()
	return filters.Verdict{}, nil
}

// The dry run (sluice test) reads a message file with ParseMessage, and
// must give the filters the header and body the MTA gives them (see
// Replay). Odd shapes, through both MTAs: a first line that starts with a
// blank (both MTAs take the whole message for body), a line with no
// colon, a name with a space in it, an empty name, blanks before the
// colon, empty values, no blank after the colon, two blanks after it,
// trailing blanks, a continuation line of blanks only, an empty body, a
// body of one empty line, a body not ending in a line end, body lines
// that start with "." or "From ", a message with no empty line after the
// header. Postfix adds Message-Id, Date and From at the end of a header
// that lacks them, which no file shows; they are left out.
func TestParseMessageSplitsOddMessagesAsTheMTAs(t *testing.T) {
	raws := []string{
		" Subject: first-folded\r\nFrom: a@lab.example\r\nTo: b@lab.example\r\n\r\nbody\r\n",
		"\tSubject: first-folded-tab\r\nFrom: a@lab.example\r\n\r\nbody\r\n",
		"From: a@lab.example\r\nSubject: no colon\r\nNoColonLine\r\nTo: b@lab.example\r\n\r\nbody\r\n",
		"From: a@lab.example\r\nSubject: space in name\r\nX-Sp ace: v\r\nTo: b@lab.example\r\n\r\nbody\r\n",
		"From: a@lab.example\r\nSubject: empty name\r\n:value\r\nTo: b@lab.example\r\n\r\nbody\r\n",
		"From: a@lab.example\r\nSubject : blank before colon\r\nTo\t: b@lab.example\r\n\r\nbody\r\n",
		"From: a@lab.example\r\nSubject: values\r\nX-E:\r\nX-N:x\r\nX-T:  two\r\nX-W: t  \r\nX-C: c\r\n \r\n\r\nbody\r\n",
		"From: a@lab.example\r\nSubject: no body\r\n\r\n",
		"From: a@lab.example\r\nSubject: empty line body\r\n\r\n\r\n",
		"From: a@lab.example\r\nSubject: no line end\r\n\r\nlast line",
		"From: a@lab.example\r\nSubject: dots\r\n\r\n.\r\n..x\r\n.dot\r\nFrom me\r\n>From x\r\n",
		"From: a@lab.example\r\nSubject: no blank line\r\n",
	}
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k := &bodyKeeper{hdrs: map[string][]filters.Header{}, body: map[string][]byte{}}
			spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: k}}, nil))
			mta := startMTA(t, name, spec)
			as := milter.Postfix
			if name == "sendmail" {
				as = milter.Sendmail
			}
			ids := make([]string, len(raws))
			for i, raw := range raws {
				c := mtatest.DialSMTP(t, mta.Addr())
				c.Cmd("EHLO client.example")
				r := c.Send("alice@lab.example", []string{"bob@lab.example"}, []byte(raw))
				if ids[i] = r.QueueID(); ids[i] == "" {
					t.Fatalf("%q: %v", raw, r)
				}
				c.Quit()
			}
			mta.WaitDelivered(t, len(raws), 30*time.Second)
			for i, raw := range raws {
				want, wantBody := milter.ParseMessage([]byte(raw), as)
				k.mu.Lock()
				got, ok := k.hdrs[ids[i]]
				gotBody := k.body[ids[i]]
				k.mu.Unlock()
				if !ok {
					t.Errorf("%q: the filter saw no message with queue id %s", raw, ids[i])
					continue
				}
				if name == "postfix" {
					got = withoutPostfixMadeUp(got, want)
				}
				if !slices.Equal(got, want) || string(gotBody) != string(wantBody) {
					t.Errorf("%q:\n %s showed %+q, body %+q\n ParseMessage %+q, body %+q", raw, name, got, gotBody, want, wantBody)
				}
			}
		})
	}
}

// withoutPostfixMadeUp returns got without the Message-Id, Date and From
// fields Postfix added at its end for the names parsed lacks.
func withoutPostfixMadeUp(got, parsed []filters.Header) []filters.Header {
	out := slices.Clone(got)
	for len(out) > len(parsed) {
		last := out[len(out)-1]
		switch filters.NameKey(last.Name) {
		case "message-id", "date", "from":
		default:
			return out
		}
		if slices.ContainsFunc(parsed, func(h filters.Header) bool { return filters.SameName(h.Name, last.Name) }) {
			return out
		}
		out = out[:len(out)-1]
	}
	return out
}
