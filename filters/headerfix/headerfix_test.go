package headerfix_test

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/headerfix"
)

const (
	exDate = "Fri, 8 Sep 2017 13:44:33 -0400 (EDT)"
	exFrom = `"Example Name" <example@example.com>`
	// smSubmitReceived and smMsgID are what Sendmail's submission
	// program writes (observed with 8.17).
	smSubmitReceived = "(from root@localhost)\n\tby sm.lab.example (8.17.1.9/8.17.1.9/Submit) id 6B6ALdud016065\n\tfor bob@lab.example; Sun, 6 Dec 2026 10:21:39 GMT"
	smMsgID          = "<202612061021.6B6ALdud016065@sm.lab.example>"
)

func hs(kv ...string) []filters.Header {
	var out []filters.Header
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, filters.Header{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func newFilter(t testing.TB, cfg headerfix.Config, obs any) *headerfix.Filter {
	t.Helper()
	f, err := headerfix.New(filters.Env{Name: "hf", Observer: obs}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// msg returns a message as Sendmail reports it: its connect macros do
// not include v.
func msg(headers []filters.Header) *filters.Message {
	return &filters.Message{
		Conn:    &filters.Conn{Macros: map[string]string{"j": "mx.lab.example", "{daemon_name}": "MTA"}},
		QueueID: "343D9988691",
		From:    filters.Address{Addr: "alice@example.org"},
		Rcpts:   []filters.Address{{Addr: "bob@lab.example"}},
		Headers: headers,
	}
}

// postfixMsg returns a message as Postfix reports it, with its name and
// version in macro v.
func postfixMsg(headers []filters.Header) *filters.Message {
	m := msg(headers)
	m.Conn.Macros = map[string]string{"j": "mx.lab.example", "v": "Postfix 3.7.11"}
	return m
}

// check runs the filter at the end of the header block and returns its
// verdict and the header as the MTA delivers it after the edits.
func check(t *testing.T, f *headerfix.Filter, m *filters.Message) (filters.Verdict, []filters.Header) {
	t.Helper()
	v, err := f.Check(context.Background(), filters.StageHeaders, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range v.Edits {
		if err := e.Validate(); err != nil {
			t.Errorf("invalid edit %+v: %v", e, err)
		}
	}
	after := filters.ApplyEdits(append([]filters.Header(nil), m.Headers...), v.Edits)
	return v, after
}

func TestFilterEdits(t *testing.T) {
	pfMsgID := "<20261123142326.343D9988691@postfix.test>"
	tests := []struct {
		name    string
		postfix bool
		in      []filters.Header
		edits   []filters.HeaderEdit
		after   []filters.Header
	}{
		{
			// Postfix turned the CR into a space and, seeing no From,
			// added one (and a Message-Id) at the end, visible to the
			// milter. The made-up From gets the real value.
			name:    "Postfix, bare CR",
			postfix: true,
			in:      hs("Date", exDate+" From: "+exFrom, "Subject", "x", "Message-Id", pfMsgID, "From", "alice@example.org"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.ChangeHeader, Name: "From", Index: 1, Value: exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From, dropped From added by MTA"},
			},
			after: hs("Date", exDate, "Subject", "x", "Message-Id", pfMsgID, "From", exFrom,
				"X-Sluice-Repaired", "split Date/From, dropped From added by MTA"),
		},
		{
			// The same behind another milter in smtpd_milters that added
			// a field at the end of the header, after Postfix's own: the
			// Message-Id with the queue id marks Postfix's block.
			name:    "Postfix, bare CR, a field of another milter after Postfix's",
			postfix: true,
			in: hs("Date", exDate+" From: "+exFrom, "Subject", "x", "Message-Id", pfMsgID, "From", "alice@example.org",
				"X-Spam-Status", "No"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.ChangeHeader, Name: "From", Index: 1, Value: exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From, dropped From added by MTA"},
			},
			after: hs("Date", exDate, "Subject", "x", "Message-Id", pfMsgID, "From", exFrom, "X-Spam-Status", "No",
				"X-Sluice-Repaired", "split Date/From, dropped From added by MTA"),
		},
		{
			// Postfix removes Return-Path:, Content-Length:, Bcc: and
			// Resent-Bcc: from a message as it comes in
			// (message_drop_headers), but not from a line a bare CR
			// joined to the one before: such a field is cut out and not
			// added, as Postfix would have removed it on a line of its own.
			name:    "Postfix, fields Postfix drops on arrival are not added",
			postfix: true,
			in: hs("Date", exDate+" Return-Path: <evil@example.net>", "From", exFrom,
				"Message-ID", "<a@b> Content-Length: 5", "References", "<c@d> Bcc: secret@example.net",
				"In-Reply-To", "<c@d> RESENT-BCC: other@example.net"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.ChangeHeader, Name: "Message-ID", Index: 1, Value: "<a@b>"},
				{Kind: filters.ChangeHeader, Name: "References", Index: 1, Value: "<c@d>"},
				{Kind: filters.ChangeHeader, Name: "In-Reply-To", Index: 1, Value: "<c@d>"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/Return-Path, split Message-ID/Content-Length,\n\tsplit References/Bcc, split In-Reply-To/RESENT-BCC"},
			},
			after: hs("Date", exDate, "From", exFrom, "Message-ID", "<a@b>", "References", "<c@d>", "In-Reply-To", "<c@d>",
				"X-Sluice-Repaired", "split Date/Return-Path, split Message-ID/Content-Length,\n\tsplit References/Bcc, split In-Reply-To/RESENT-BCC"),
		},
		{
			// With Sendmail the milter sees such fields on a line of their
			// own, and Sendmail decides at delivery: a split-off one is
			// added as any other.
			name: "Sendmail, a field Postfix drops on arrival is added",
			in:   hs("Date", exDate+"\rContent-Length: 5", "From", exFrom),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.AddHeader, Name: "Content-Length", Value: "5"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/Content-Length"},
			},
			after: hs("Date", exDate, "From", exFrom, "Content-Length", "5", "X-Sluice-Repaired", "split Date/Content-Length"),
		},
		{
			// A From of the client's before Postfix's block (Postfix made
			// up only the Message-Id) is the client's own, though it is
			// the envelope sender: the split-off one is kept beside it.
			name:    "Postfix, a From of the client's before Postfix's block is kept",
			postfix: true,
			in: hs("Date", exDate+" From: "+exFrom, "From", "alice@example.org", "X-Last", "1", "Message-Id", pfMsgID,
				"X-Spam-Status", "No"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.ChangeHeader, Name: "From", Index: 1, Value: exFrom},
				{Kind: filters.AddHeader, Name: "From", Value: "alice@example.org"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From"},
			},
			after: hs("Date", exDate, "From", exFrom, "X-Last", "1", "Message-Id", pfMsgID, "X-Spam-Status", "No",
				"From", "alice@example.org", "X-Sluice-Repaired", "split Date/From"),
		},
		{
			// Mail submitted with Postfix's sendmail(1) (non_smtpd_milters):
			// the CR is kept, and the From Postfix made up carries the
			// submitting user's full name (header_from_format = standard,
			// observed in cmd/sluice/nonsmtpd_e2e_test.go). It is the
			// MTA's all the same and gets the real value: left alone,
			// the message would have two From fields.
			name:    "Postfix sendmail(1), bare CR, From with full name",
			postfix: true,
			in:      hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x", "Message-Id", pfMsgID, "From", "Alice Example <alice@example.org>"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.ChangeHeader, Name: "From", Index: 1, Value: exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From, dropped From added by MTA"},
			},
			after: hs("Date", exDate, "Subject", "x", "Message-Id", pfMsgID, "From", exFrom,
				"X-Sluice-Repaired", "split Date/From, dropped From added by MTA"),
		},
		{
			// The same with header_from_format = obsolete and a quoted name.
			name:    "Postfix sendmail(1), bare CR, From with full name, obsolete form",
			postfix: true,
			in:      hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x", "Message-Id", pfMsgID, "From", `alice@example.org ("Example, Alice")`),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.ChangeHeader, Name: "From", Index: 1, Value: exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From, dropped From added by MTA"},
			},
			after: hs("Date", exDate, "Subject", "x", "Message-Id", pfMsgID, "From", exFrom,
				"X-Sluice-Repaired", "split Date/From, dropped From added by MTA"),
		},
		{
			// A From of the sender's own at the end, naming another
			// address, is not taken for the MTA's.
			name:    "Postfix, bare CR, the sender's own From at the end",
			postfix: true,
			in:      hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x", "Message-Id", pfMsgID, "From", "Alice Example <other@example.org>"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.ChangeHeader, Name: "From", Index: 1, Value: exFrom},
				{Kind: filters.AddHeader, Name: "From", Value: "Alice Example <other@example.org>"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From"},
			},
			after: hs("Date", exDate, "Subject", "x", "Message-Id", pfMsgID, "From", exFrom, "From", "Alice Example <other@example.org>",
				"X-Sluice-Repaired", "split Date/From"),
		},
		{
			// Sendmail keeps the CR and hides the From it made up; an
			// added From replaces that one (see plan.go).
			name: "Sendmail, bare CR",
			in:   hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.AddHeader, Name: "From", Value: exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From"},
			},
			after: hs("Date", exDate, "Subject", "x", "From", exFrom, "X-Sluice-Repaired", "split Date/From"),
		},
		{
			// Mail submitted with Sendmail's sendmail(1): its submission
			// program, seeing no From, made one up (and a Message-Id)
			// below its Received:, before relaying the message to the
			// daemon, which shows them to the milter (observed with
			// 8.17, cmd/sluice/sendmail_local_e2e_test.go). An added
			// From would go before that one: the made-up From gets the
			// real value instead.
			name: "Sendmail sendmail(1), bare CR",
			in: hs("Received", smSubmitReceived, "From", "alice@example.org", "Message-Id", smMsgID,
				"Date", exDate+"\rFrom: "+exFrom, "Subject", "x"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "From", Index: 1, Value: exFrom},
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From, dropped From added by MTA"},
			},
			after: hs("Received", smSubmitReceived, "From", exFrom, "Message-Id", smMsgID, "Date", exDate, "Subject", "x",
				"X-Sluice-Repaired", "split Date/From, dropped From added by MTA"),
		},
		{
			// The same From at the top, but not below a submission
			// program's Received: the sender's own; the CR becomes a
			// space rather than a second From.
			name: "Sendmail, bare CR, the sender's own From on top",
			in:   hs("Received", "from x by y; "+exDate, "From", "alice@example.org", "Date", exDate+"\rFrom: "+exFrom, "Subject", "x"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate + " From: " + exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "CR to space in Date"},
			},
			after: hs("Received", "from x by y; "+exDate, "From", "alice@example.org", "Date", exDate+" From: "+exFrom, "Subject", "x",
				"X-Sluice-Repaired", "CR to space in Date"),
		},
		{
			// A Message-Id hidden behind a CR replaces the program's,
			// which carries the program's queue id.
			name: "Sendmail sendmail(1), bare CR before Message-ID",
			in: hs("Received", smSubmitReceived, "From", "alice@example.org", "Message-Id", smMsgID,
				"Subject", "x\rMessage-ID: <m1@example.com>"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Subject", Index: 1, Value: "x"},
				{Kind: filters.DeleteHeader, Name: "Message-Id", Index: 1},
				{Kind: filters.AddHeader, Name: "Message-ID", Value: "<m1@example.com>"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Subject/Message-ID, dropped Message-Id added by MTA"},
			},
			after: hs("Received", smSubmitReceived, "From", "alice@example.org", "Subject", "x", "Message-ID", "<m1@example.com>",
				"X-Sluice-Repaired", "split Subject/Message-ID, dropped Message-Id added by MTA"),
		},
		{
			// A Date below the program's From and Message-Id is out of
			// the order the program writes them in: the sender's own,
			// not replaced by a second one hidden behind a CR.
			name: "Sendmail sendmail(1), bare CR, the sender's own Date below the made-up fields",
			in: hs("Received", smSubmitReceived, "From", "alice@example.org", "Message-Id", smMsgID, "Date", exDate,
				"Subject", "x\rDate: Sat, 9 Sep 2017 10:00:00 +0000"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Subject", Index: 1, Value: "x Date: Sat, 9 Sep 2017 10:00:00 +0000"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "CR to space in Subject"},
			},
			after: hs("Received", smSubmitReceived, "From", "alice@example.org", "Message-Id", smMsgID, "Date", exDate,
				"Subject", "x Date: Sat, 9 Sep 2017 10:00:00 +0000", "X-Sluice-Repaired", "CR to space in Subject"),
		},
		{
			// A From hidden behind a CR in a field above the made-up
			// From (a sender can write the program's Received: itself)
			// does not replace it: only a From split off below it does
			// (see replaced). Split off all the same, it was added, and
			// Sendmail puts an added From before the one there: the CR
			// becomes a space, as for any name the header has.
			name: "Sendmail sendmail(1), bare CR above the made-up From",
			in: hs("Received", smSubmitReceived, "Date", exDate+"\rFrom: "+exFrom, "From", "alice@example.org",
				"Message-Id", smMsgID, "Subject", "x"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate + " From: " + exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "CR to space in Date"},
			},
			after: hs("Received", smSubmitReceived, "Date", exDate+" From: "+exFrom, "From", "alice@example.org",
				"Message-Id", smMsgID, "Subject", "x", "X-Sluice-Repaired", "CR to space in Date"),
		},
		{
			// Below a submission program's Received:, a From that is not
			// the envelope sender's is the sender's own.
			name: "Sendmail sendmail(1), bare CR, another address on top",
			in:   hs("Received", smSubmitReceived, "From", "bob@example.org", "Date", exDate+"\rFrom: "+exFrom, "Subject", "x"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate + " From: " + exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "CR to space in Date"},
			},
			after: hs("Received", smSubmitReceived, "From", "bob@example.org", "Date", exDate+" From: "+exFrom, "Subject", "x",
				"X-Sluice-Repaired", "CR to space in Date"),
		},
		{
			name: "Sendmail, bare LF",
			in:   hs("Date", exDate+"\nFrom: "+exFrom, "Subject", "x"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.AddHeader, Name: "From", Value: exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From"},
			},
			after: hs("Date", exDate, "Subject", "x", "From", exFrom, "X-Sluice-Repaired", "split Date/From"),
		},
		{
			name:  "CRLF: nothing to do",
			in:    hs("Date", exDate, "From", exFrom, "Subject", "x"),
			after: hs("Date", exDate, "From", exFrom, "Subject", "x"),
		},
		{
			// Each Received field keeps its place among the Received
			// fields: the chain stays in order.
			name:    "Received chain, Postfix",
			postfix: true,
			in:      hs("Received", "from a by b\rReceived: from c by a", "Received", "from d by c", "Subject", "x"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Received", Index: 1, Value: "from a by b"},
				{Kind: filters.ChangeHeader, Name: "Received", Index: 2, Value: "from c by a"},
				{Kind: filters.AddHeader, Name: "Received", Value: "from d by c"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Received/Received"},
			},
			after: hs("Received", "from a by b", "Received", "from c by a", "Subject", "x", "Received", "from d by c",
				"X-Sluice-Repaired", "split Received/Received"),
		},
		{
			// Sendmail would put an added Received above its own: the CR
			// becomes a space.
			name: "Received chain, Sendmail",
			in:   hs("Received", "from a by b\rReceived: from c by a", "Received", "from d by c", "Subject", "x"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Received", Index: 1, Value: "from a by b Received: from c by a"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "CR to space in Received"},
			},
			after: hs("Received", "from a by b Received: from c by a", "Received", "from d by c", "Subject", "x",
				"X-Sluice-Repaired", "CR to space in Received"),
		},
		{
			// A From before the broken field is the client's own: the
			// split-off one is kept beside it.
			name:    "a second From of the client's is kept",
			postfix: true,
			in:      hs("From", "a@example.org", "Date", exDate+"\rFrom: "+exFrom),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.AddHeader, Name: "From", Value: exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From"},
			},
			after: hs("From", "a@example.org", "Date", exDate, "From", exFrom, "X-Sluice-Repaired", "split Date/From"),
		},
		{
			name:    "a later From that is not the envelope sender is kept",
			postfix: true,
			in:      hs("Date", exDate+" From: "+exFrom, "From", "carol@example.org"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.ChangeHeader, Name: "From", Index: 1, Value: exFrom},
				{Kind: filters.AddHeader, Name: "From", Value: "carol@example.org"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From"},
			},
			after: hs("Date", exDate, "From", exFrom, "From", "carol@example.org", "X-Sluice-Repaired", "split Date/From"),
		},
		{
			name:    "a made-up Message-Id carries the queue id",
			postfix: true,
			in:      hs("Subject", "x\rMessage-ID: <abc@example.org>", "X-Other", "1", "Message-Id", pfMsgID),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Subject", Index: 1, Value: "x"},
				// Spelt differently, the made-up field is replaced rather
				// than changed: a change cannot respell it in both MTAs.
				{Kind: filters.DeleteHeader, Name: "Message-Id", Index: 1},
				{Kind: filters.AddHeader, Name: "Message-ID", Value: "<abc@example.org>"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Subject/Message-ID, dropped Message-Id added by MTA"},
			},
			after: hs("Subject", "x", "X-Other", "1", "Message-ID", "<abc@example.org>",
				"X-Sluice-Repaired", "split Subject/Message-ID, dropped Message-Id added by MTA"),
		},
		{
			name: "spaces, and an empty value that must not become a delete",
			in:   hs("Subject", "a\rb", "X-A", "\rX-B: b", "X-N", "n\x00"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Subject", Index: 1, Value: "a b"},
				{Kind: filters.ChangeHeader, Name: "X-A", Index: 1, Value: " "},
				{Kind: filters.ChangeHeader, Name: "X-N", Index: 1, Value: "n "},
				{Kind: filters.AddHeader, Name: "X-B", Value: "b"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "CR to space in Subject, split X-A/X-B, NUL to space in X-N"},
			},
			after: hs("Subject", "a b", "X-A", " ", "X-N", "n ", "X-B", "b",
				"X-Sluice-Repaired", "CR to space in Subject, split X-A/X-B, NUL to space in X-N"),
		},
		{
			// Two forged trace fields behind bare CRs, the second in a
			// strict field. A split-off trace field is never added, so
			// with Sendmail the first does not keep the second from
			// being cut off too: a space there would leave a Date that
			// is valid up to " X-Sluice-Repaired: ", which the next
			// pass would split.
			name: "Sendmail, two trace fields split off",
			in:   hs("Subject", "a\rX-Sluice-Repaired: x", "Date", exDate+"\rX-Sluice-Repaired: y"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Subject", Index: 1, Value: "a"},
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Subject/X-Sluice-Repaired,\n\tsplit Date/X-Sluice-Repaired"},
			},
			after: hs("Subject", "a", "Date", exDate,
				"X-Sluice-Repaired", "split Subject/X-Sluice-Repaired,\n\tsplit Date/X-Sluice-Repaired"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, headerfix.Config{}, nil)
			mk := msg
			if tc.postfix {
				mk = postfixMsg
			}
			v, after := check(t, f, mk(tc.in))
			if v.Action != filters.Continue {
				t.Errorf("action %v, want continue", v.Action)
			}
			if !reflect.DeepEqual(v.Edits, tc.edits) {
				t.Errorf("edits:\n got %+v\nwant %+v", v.Edits, tc.edits)
			}
			if !reflect.DeepEqual(after, tc.after) {
				t.Errorf("after the edits:\n got %q\nwant %q", after, tc.after)
			}
			// The repaired header needs nothing more. The trace field of
			// the first pass cannot be told from a forged one: a second
			// pass deletes it and adds none.
			v2, after2 := check(t, f, mk(after))
			var untraced []filters.Header
			for _, h := range after {
				if h.Name != "X-Sluice-Repaired" {
					untraced = append(untraced, h)
				}
			}
			if v2.Action != filters.Continue || v2.Reason != "" || !reflect.DeepEqual(after2, untraced) {
				t.Errorf("second pass: %+v, after %q", v2, after2)
			}
		})
	}
}

func TestFilterPolicies(t *testing.T) {
	broken := hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x")
	empty := ""
	other := "X-Fixed"

	t.Run("reject with the default reply", func(t *testing.T) {
		f := newFilter(t, headerfix.Config{Policy: "reject"}, nil)
		v, _ := check(t, f, msg(broken))
		if v.Action != filters.Reject || v.Reply == nil || v.Reply.String() != headerfix.DefaultReply || len(v.Edits) > 0 {
			t.Errorf("verdict %+v (reply %v)", v, v.Reply)
		}
		if !strings.Contains(v.Reason, "split Date/From") {
			t.Errorf("reason %q", v.Reason)
		}
	})
	t.Run("reject with a 4xx reply is a tempfail", func(t *testing.T) {
		f := newFilter(t, headerfix.Config{Policy: "reject", Reply: "451 4.6.0 Fix your line ends"}, nil)
		v, _ := check(t, f, msg(broken))
		if v.Action != filters.Tempfail || v.Reply.String() != "451 4.6.0 Fix your line ends" {
			t.Errorf("verdict %+v (reply %v)", v, v.Reply)
		}
	})
	t.Run("tag adds the trace field only", func(t *testing.T) {
		f := newFilter(t, headerfix.Config{Policy: "tag"}, nil)
		v, after := check(t, f, msg(broken))
		want := append(append([]filters.Header(nil), broken...), filters.Header{Name: "X-Sluice-Repaired", Value: "not repaired: split Date/From"})
		if v.Action != filters.Continue || !reflect.DeepEqual(after, want) {
			t.Errorf("verdict %+v, after %q", v, after)
		}
	})
	t.Run("off", func(t *testing.T) {
		f := newFilter(t, headerfix.Config{Policy: "off"}, nil)
		if n := f.Needs(); n != (filters.Needs{}) {
			t.Errorf("needs %+v, want nothing", n)
		}
		v, _ := check(t, f, msg(broken))
		if !reflect.DeepEqual(v, filters.Verdict{}) {
			t.Errorf("verdict %+v", v)
		}
	})
	t.Run("fix without trace field", func(t *testing.T) {
		f := newFilter(t, headerfix.Config{TraceHeader: &empty}, nil)
		_, after := check(t, f, msg(broken))
		if want := hs("Date", exDate, "Subject", "x", "From", exFrom); !reflect.DeepEqual(after, want) {
			t.Errorf("after %q, want %q", after, want)
		}
	})
	t.Run("trace field of another name", func(t *testing.T) {
		f := newFilter(t, headerfix.Config{TraceHeader: &other}, nil)
		_, after := check(t, f, msg(broken))
		if last := after[len(after)-1]; last.Name != "X-Fixed" || last.Value != "split Date/From" {
			t.Errorf("last field %+v", last)
		}
	})
	t.Run("needs and other stages", func(t *testing.T) {
		f := newFilter(t, headerfix.Config{}, nil)
		n := f.Needs()
		if !n.Headers || n.Body || n.Stages != filters.StagesOf(filters.StageHeaders) {
			t.Errorf("needs %+v", n)
		}
		v, err := f.Check(context.Background(), filters.StageEOM, msg(broken))
		if err != nil || !reflect.DeepEqual(v, filters.Verdict{}) {
			t.Errorf("at eom: %+v, %v", v, err)
		}
		if f.Name() != "hf" {
			t.Errorf("name %q", f.Name())
		}
	})
}

func TestConfigErrors(t *testing.T) {
	empty := ""
	bad := "X Bad"
	// The trace value's first part ("not repaired: split A/B (x2),")
	// cannot be folded away from the name, and a line may have at most
	// 998 characters (RFC 5322 2.1.1).
	long := "X-" + strings.Repeat("n", 868)
	for _, tc := range []struct {
		cfg  headerfix.Config
		want string
	}{
		{headerfix.Config{Policy: "repair"}, `policy "repair"`},
		{headerfix.Config{Policy: "reject", Reply: "250 ok"}, "reply"},
		{headerfix.Config{Policy: "reject", Reply: "550 5.6.0 caf\u00e9"}, "reply"},
		{headerfix.Config{Reply: "550 5.6.0 No"}, "only used with policy reject"},
		{headerfix.Config{TraceHeader: &bad}, "trace_header"},
		{headerfix.Config{TraceHeader: &long}, "trace_header: 870 characters leave no room on a line of 998"},
		{headerfix.Config{Policy: "tag", TraceHeader: &empty}, "policy tag needs a trace_header"},
	} {
		_, err := headerfix.New(filters.Env{}, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}

type countingObserver struct {
	mu       sync.Mutex
	found    map[string]int
	messages map[string]int
}

func (o *countingObserver) HeaderfixFound(filter, kind string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.found[filter+"/"+kind] += n
}

func (o *countingObserver) HeaderfixMessage(filter, action string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.messages[filter+"/"+action]++
}

func TestObserver(t *testing.T) {
	obs := &countingObserver{found: map[string]int{}, messages: map[string]int{}}
	f := newFilter(t, headerfix.Config{}, obs)
	check(t, f, msg(hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "a\nb\x00")))
	check(t, f, postfixMsg(hs("Date", exDate+" From: "+exFrom)))
	check(t, f, msg(hs("Subject", "fine")))
	wantFound := map[string]int{"hf/split_cr": 1, "hf/space_lf": 1, "hf/space_nul": 1, "hf/split_merged": 1}
	wantMessages := map[string]int{"hf/fix": 2}
	if !reflect.DeepEqual(obs.found, wantFound) || !reflect.DeepEqual(obs.messages, wantMessages) {
		t.Errorf("found %v, messages %v; want %v, %v", obs.found, obs.messages, wantFound, wantMessages)
	}

	// A header that would need more splits than MaxSplits is marked, not
	// repaired.
	var b strings.Builder
	b.WriteString("start")
	for i := 0; i <= headerfix.MaxSplits; i++ {
		fmt.Fprintf(&b, "\rX-%d: v", i)
	}
	v, after := check(t, f, msg(hs("X-Many", b.String())))
	want := fmt.Sprintf("not repaired: %d fields to split off, more than %d", headerfix.MaxSplits+1, headerfix.MaxSplits)
	if len(after) != 2 || after[0].Value != b.String() || !strings.HasPrefix(after[1].Value, "not repaired:") ||
		strings.ReplaceAll(after[1].Value, "\n\t", " ") != want {
		t.Errorf("too many splits: verdict %+v, after %q", v, after)
	}
	if obs.messages["hf/too_many"] != 1 {
		t.Errorf("messages %v", obs.messages)
	}

	// Nor is one that would need more edits than MaxEdits: a stray CR in
	// each of many fields is one change each.
	var many []filters.Header
	for i := 0; i <= headerfix.MaxEdits; i++ {
		many = append(many, filters.Header{Name: fmt.Sprintf("X-%d", i), Value: "a\rb"})
	}
	v, after = check(t, f, msg(many))
	want = fmt.Sprintf("not repaired: %d header edits, more than %d", headerfix.MaxEdits+1, headerfix.MaxEdits)
	if len(after) != len(many)+1 || after[0].Value != "a\rb" || strings.ReplaceAll(after[len(after)-1].Value, "\n\t", " ") != want {
		t.Errorf("too many edits: verdict %+v, last field %q", v, after[len(after)-1])
	}
	if obs.messages["hf/too_many"] != 2 {
		t.Errorf("messages %v", obs.messages)
	}
}

// recorder is a later filter of the pipeline: it keeps the header it is
// shown at each stage.
type recorder struct {
	mu   sync.Mutex
	seen map[filters.Stage][]filters.Header
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageHeaders, filters.StageEOM), Headers: true}
}
func (r *recorder) Check(_ context.Context, st filters.Stage, m *filters.Message) (filters.Verdict, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[st] = append([]filters.Header(nil), m.Headers...)
	return filters.Verdict{}, nil
}

// A filter after headerfix, at the end of the header block and at end of
// message (the Bayes filter, an archive), reads the repaired header.
func TestPipelineLaterFilterSeesRepair(t *testing.T) {
	hf, err := headerfix.Factory(filters.Env{Name: "headerfix"}, func(v any) error {
		*(v.(*headerfix.Config)) = headerfix.Config{Policy: "fix"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{seen: map[filters.Stage][]filters.Header{}}
	p := filters.NewPipeline([]filters.Step{{Filter: hf}, {Filter: rec}}, nil)
	m := msg(hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x"))
	var out filters.Outcome
	out.Add(p.Run(context.Background(), filters.StageHeaders, m))
	out.Add(p.Run(context.Background(), filters.StageEOM, m))
	want := hs("Date", exDate, "Subject", "x", "From", exFrom, "X-Sluice-Repaired", "split Date/From")
	for _, st := range []filters.Stage{filters.StageHeaders, filters.StageEOM} {
		if got := rec.seen[st]; !reflect.DeepEqual(got, want) {
			t.Errorf("recorder at %v saw %q, want %q", st, got, want)
		}
	}
	for _, d := range out.Decisions {
		if d.Failure != "" {
			t.Errorf("%s failed: %v", d.Filter, d.Err)
		}
	}
	// The edits the edge sends the MTA at end of message are the same.
	if got := filters.ApplyEdits(hs("Date", exDate+"\rFrom: "+exFrom, "Subject", "x"), out.Edits); !reflect.DeepEqual(got, want) {
		t.Errorf("edits for the MTA give %q", got)
	}
}

// hugeHeader is as large a header as the milter edge accepts (1 MiB):
// five Date fields with thousands of merged dates each, Postfix style, and
// tens of thousands of other fields.
func hugeHeader() []filters.Header {
	merged := strings.Repeat("8 Sep 2017 13:44 +0000 Date: ", 3400) + "8 Sep 2017 13:44 +0000"
	var in []filters.Header
	size := 0
	for range 5 {
		in = append(in, filters.Header{Name: "Date", Value: merged})
		size += len("Date: \r\n") + len(merged)
	}
	for size+len("X: a\r\n") <= 1<<20 {
		in = append(in, filters.Header{Name: "X", Value: "a"})
		size += len("X: a\r\n")
	}
	return in
}

// A header that needs more splits than MaxSplits is only marked.
func TestCheckHugeHeader(t *testing.T) {
	f := newFilter(t, headerfix.Config{}, nil)
	v, err := f.Check(context.Background(), filters.StageHeaders, postfixMsg(hugeHeader()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(v.Reason, "not repaired") {
		t.Errorf("reason %q, want not repaired", v.Reason)
	}
}

// BenchmarkCheckHugeHeader checks that the work of one message stays
// linear in the size of its header, including a message that is only
// marked: matching every split-off Date of hugeHeader against every field
// took 7 s a message; Repair alone takes about 0.05 s.
func BenchmarkCheckHugeHeader(b *testing.B) {
	in := hugeHeader()
	f := newFilter(b, headerfix.Config{}, nil)
	for b.Loop() {
		if _, err := f.Check(context.Background(), filters.StageHeaders, postfixMsg(in)); err != nil {
			b.Fatal(err)
		}
	}
}

// Trace fields a message arrives with are the sender's: they are deleted,
// all of them and the last first, whether or not the header needs repair,
// so that a reader (a Sieve rule, a later filter) can trust the field to
// be sluice's. A trace field hidden behind a stray line end is not let
// out by the repair either, and a stray character inside a forged field
// is no repair of a field the message keeps.
func TestForgedTraceFieldDeleted(t *testing.T) {
	other := "X-Fixed"
	empty := ""
	del := func(name string, i int) filters.HeaderEdit {
		return filters.HeaderEdit{Kind: filters.DeleteHeader, Name: name, Index: i}
	}
	tests := []struct {
		name  string
		cfg   headerfix.Config
		in    []filters.Header
		edits []filters.HeaderEdit
		after []filters.Header
	}{
		{
			name:  "clean header",
			in:    hs("x-sluice-repaired", "split Date/From", "Subject", "x", "X-Sluice-Repaired", "nothing"),
			edits: []filters.HeaderEdit{del("X-Sluice-Repaired", 2), del("X-Sluice-Repaired", 1)},
			after: hs("Subject", "x"),
		},
		{
			name: "repaired header",
			in:   hs("X-Sluice-Repaired", "nothing", "Date", exDate+"\rFrom: "+exFrom, "Subject", "x"),
			edits: []filters.HeaderEdit{
				del("X-Sluice-Repaired", 1),
				{Kind: filters.ChangeHeader, Name: "Date", Index: 1, Value: exDate},
				{Kind: filters.AddHeader, Name: "From", Value: exFrom},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Date/From"},
			},
			after: hs("Date", exDate, "Subject", "x", "From", exFrom, "X-Sluice-Repaired", "split Date/From"),
		},
		{
			name: "forged field split off by the repair",
			in:   hs("Subject", "x\rX-Sluice-Repaired: nothing"),
			edits: []filters.HeaderEdit{
				{Kind: filters.ChangeHeader, Name: "Subject", Index: 1, Value: "x"},
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "split Subject/X-Sluice-Repaired"},
			},
			after: hs("Subject", "x", "X-Sluice-Repaired", "split Subject/X-Sluice-Repaired"),
		},
		{
			name:  "stray line end in a forged field",
			in:    hs("Subject", "x", "X-Sluice-Repaired", "a\rFrom: b"),
			edits: []filters.HeaderEdit{del("X-Sluice-Repaired", 1)},
			after: hs("Subject", "x"),
		},
		{
			name:  "trace field of another name",
			cfg:   headerfix.Config{TraceHeader: &other},
			in:    hs("X-Fixed", "nothing", "X-Sluice-Repaired", "kept", "Subject", "x"),
			edits: []filters.HeaderEdit{del("X-Fixed", 1)},
			after: hs("X-Sluice-Repaired", "kept", "Subject", "x"),
		},
		{
			name:  "no trace field",
			cfg:   headerfix.Config{TraceHeader: &empty},
			in:    hs("X-Sluice-Repaired", "kept", "Subject", "x"),
			after: hs("X-Sluice-Repaired", "kept", "Subject", "x"),
		},
		{
			name: "policy tag",
			cfg:  headerfix.Config{Policy: "tag"},
			in:   hs("X-Sluice-Repaired", "nothing", "Subject", "a\rb"),
			edits: []filters.HeaderEdit{
				del("X-Sluice-Repaired", 1),
				{Kind: filters.AddHeader, Name: "X-Sluice-Repaired", Value: "not repaired: CR to space in Subject"},
			},
			after: hs("Subject", "a\rb", "X-Sluice-Repaired", "not repaired: CR to space in Subject"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, tc.cfg, nil)
			in := append([]filters.Header(nil), tc.in...)
			v, after := check(t, f, msg(in))
			if v.Action != filters.Continue {
				t.Errorf("action %v, want continue", v.Action)
			}
			if !reflect.DeepEqual(v.Edits, tc.edits) {
				t.Errorf("edits:\n got %+v\nwant %+v", v.Edits, tc.edits)
			}
			if !reflect.DeepEqual(after, tc.after) {
				t.Errorf("after the edits:\n got %q\nwant %q", after, tc.after)
			}
			if !reflect.DeepEqual(in, tc.in) {
				t.Errorf("Check changed the message's header to %q", in)
			}
		})
	}

	// A message that is only marked loses its forged fields too.
	var b strings.Builder
	b.WriteString("start")
	for i := 0; i <= headerfix.MaxSplits; i++ {
		fmt.Fprintf(&b, "\rX-%d: v", i)
	}
	f := newFilter(t, headerfix.Config{}, nil)
	_, after := check(t, f, msg(hs("X-Sluice-Repaired", "nothing", "X-Many", b.String())))
	if len(after) != 2 || after[0].Name != "X-Many" || !strings.HasPrefix(after[1].Value, "not repaired:") {
		t.Errorf("too many splits: after %q", after)
	}
}

// A sender may send as many forged trace fields as the milter edge takes
// (over 100000 in a 1 MiB header). Their deletions form one run that the
// pipeline and the milter edge carry out in one pass (filters.DeletionRun),
// and they do not push a repair over MaxEdits.
func TestManyForgedTraceFields(t *testing.T) {
	const n = 100000
	in := hs("Subject", "a\rb")
	for i := range n {
		in = append(in, filters.Header{Name: "X-Sluice-Repaired", Value: strconv.Itoa(i)}, filters.Header{Name: "Received", Value: "r"})
	}
	f := newFilter(t, headerfix.Config{}, nil)
	v, after := check(t, f, msg(in))
	if got := filters.DeletionRun(v.Edits); got != n {
		t.Errorf("the edits start with a run of %d deletions, want %d", got, n)
	}
	if len(after) != n+2 || after[0] != (filters.Header{Name: "Subject", Value: "a b"}) ||
		after[n+1] != (filters.Header{Name: "X-Sluice-Repaired", Value: "CR to space in Subject"}) {
		t.Errorf("%d fields after the edits, first %q, last %q", len(after), after[0], after[len(after)-1])
	}
}

func TestOwnedFields(t *testing.T) {
	empty := ""
	other := "X-Fixed"
	for _, tc := range []struct {
		cfg  headerfix.Config
		want []string
	}{
		{headerfix.Config{}, []string{"X-Sluice-Repaired"}},
		{headerfix.Config{Policy: "reject", TraceHeader: &other}, []string{"X-Fixed"}},
		{headerfix.Config{TraceHeader: &empty}, nil},
		{headerfix.Config{Policy: "off"}, nil},
	} {
		var fo filters.FieldOwner = newFilter(t, tc.cfg, nil)
		if got := fo.OwnedFields(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: owns %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

// Fields whose names differ only in case are counted together by both
// MTAs, but each keeps the name it was written with. A split in the
// middle of such fields must not hand a value to a field of another
// spelling: with Postfix a change writes the edit's name, with Sendmail
// it keeps the field's, so a change may only ever go to a field of the
// same spelling.
func TestCaseVariantNamesKeepTheirValues(t *testing.T) {
	two, three := exDate+" (two)", exDate+" (three)"
	tests := []struct {
		name    string
		postfix bool
		in      []filters.Header
		after   []filters.Header
	}{
		{
			name:    "Postfix, split off in the middle",
			postfix: true,
			in:      hs("Date", exDate+" DATE: "+two, "date", three),
			after:   hs("Date", exDate, "DATE", two, "date", three),
		},
		{
			name:    "Postfix, same value under another spelling",
			postfix: true,
			in:      hs("Date", exDate+" DATE: "+two, "date", two),
			after:   hs("Date", exDate, "DATE", two, "date", two),
		},
		{
			name:  "Sendmail, a spelling of a name the header has is not split off",
			in:    hs("Subject", "x\rSUBJECT: y", "subject", "z"),
			after: hs("Subject", "x SUBJECT: y", "subject", "z"),
		},
	}
	f := newFilter(t, headerfix.Config{TraceHeader: new(string)}, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := msg(tc.in)
			if tc.postfix {
				m = postfixMsg(tc.in)
			}
			v, after := check(t, f, m)
			// Only the fields of each spelling, in order, matter: where
			// an added field lands among other names is the MTA's.
			bySpelling := func(hs []filters.Header) map[string][]string {
				out := map[string][]string{}
				for _, h := range hs {
					out[h.Name] = append(out[h.Name], h.Value)
				}
				return out
			}
			if got, want := bySpelling(after), bySpelling(tc.after); !reflect.DeepEqual(got, want) {
				t.Errorf("after %q\nwant %q\nedits %+v", after, tc.after, v.Edits)
			}
			for _, e := range v.Edits {
				if e.Kind != filters.ChangeHeader {
					continue
				}
				// The field the change hits must be spelt as the edit.
				n := 0
				for _, h := range tc.in {
					if filters.SameName(h.Name, e.Name) {
						n++
						if n == e.Index && h.Name != e.Name {
							t.Errorf("edit %+v changes the field spelt %q", e, h.Name)
						}
					}
				}
			}
		})
	}
}

// A From:, Date: or Message-ID: field that a stray line end hid and that
// has nothing in it is not added: Sendmail would fill the field it made up
// with the empty value, and with Postfix it would take the place of the
// one Postfix made up. Either way the message would lose the sender's
// address (or its date or id) for nothing.
func TestEmptyFieldDoesNotReplaceMadeUpOne(t *testing.T) {
	pfMsgID := "<20261123142326.343D9988691@postfix.test>"
	tests := []struct {
		name    string
		postfix bool
		in      []filters.Header
		after   []filters.Header
	}{
		{
			name:  "Sendmail, empty From",
			in:    hs("Subject", "x\rFrom:  "),
			after: hs("Subject", "x"),
		},
		{
			name:  "Sendmail, From folded with nothing in it",
			in:    hs("Subject", "x\rFrom:\n ", "To", "bob@lab.example"),
			after: hs("Subject", "x", "To", "bob@lab.example"),
		},
		{
			name:  "Sendmail, empty Date",
			in:    hs("Subject", "x\rDate:", "From", exFrom),
			after: hs("Subject", "x", "From", exFrom),
		},
		{
			name:    "Postfix, empty From merged into Date",
			postfix: true,
			in:      hs("Date", exDate+" From:", "Subject", "x", "Message-Id", pfMsgID, "From", "alice@example.org"),
			after:   hs("Date", exDate, "Subject", "x", "Message-Id", pfMsgID, "From", "alice@example.org"),
		},
		{
			// The empty From is not added, so it does not keep the real
			// one, later, from being split off.
			name:  "Sendmail, empty From before the real one",
			in:    hs("Subject", "x\rFrom:", "X-A", "y\rFrom: "+exFrom),
			after: hs("Subject", "x", "X-A", "y", "From", exFrom),
		},
		{
			name:  "Sendmail, empty From with a From in the header",
			in:    hs("From", exFrom, "Subject", "x\rFrom:\n "),
			after: hs("From", exFrom, "Subject", "x"),
		},
		{
			// Text after a later stray line end that is no field ends
			// up in the From: it is not empty, and is added once.
			name:  "Sendmail, From with text after a stray CR",
			in:    hs("Subject", "x\rFrom:\rbob@example.net", "X-A", "y\rFrom: "+exFrom),
			after: hs("Subject", "x", "X-A", "y From: "+exFrom, "From", " bob@example.net"),
		},
		{
			// Any other field split off empty is added as it was sent.
			name:  "Sendmail, another empty field",
			in:    hs("Subject", "x\rX-Empty:"),
			after: hs("Subject", "x", "X-Empty", ""),
		},
	}
	f := newFilter(t, headerfix.Config{TraceHeader: new(string)}, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := msg(tc.in)
			if tc.postfix {
				m = postfixMsg(tc.in)
			}
			v, after := check(t, f, m)
			if !reflect.DeepEqual(after, tc.after) {
				t.Errorf("after %q\nwant %q\nedits %+v", after, tc.after, v.Edits)
			}
		})
	}
}

// With Sendmail, a field named like one Sendmail can make up, other than
// From, Date and Message-Id, is not split off: the add would fill a slot
// Sendmail does not write, and the field would be lost.
func TestSendmailSlotNamesNotSplitOff(t *testing.T) {
	f := newFilter(t, headerfix.Config{TraceHeader: new(string)}, nil)
	for _, name := range []string{"Resent-From", "resent-date", "Resent-Message-Id", "Full-Name", "Return-Path", "Received"} {
		in := hs("Subject", "x\r"+name+": v")
		_, after := check(t, f, msg(in))
		if want := hs("Subject", "x "+name+": v"); !reflect.DeepEqual(after, want) {
			t.Errorf("%s: after %q, want %q", name, after, want)
		}
		// Postfix adds at the end, where the field is written; but a
		// Return-Path: it removes from a message as it comes in, so
		// that one is cut out and not added.
		_, after = check(t, f, postfixMsg(hs("Date", exDate+" "+name+": v")))
		want := hs("Date", exDate, name, "v")
		if name == "Return-Path" {
			want = hs("Date", exDate)
		}
		if !reflect.DeepEqual(after, want) {
			t.Errorf("%s, Postfix: after %q, want %q", name, after, want)
		}
	}
}

// A field Postfix made up stands at the end of the header, after every
// field the client sent. A client's own field of that name, with fields
// of the client's after it, is not taken for Postfix's and dropped.
func TestClientFieldNotTakenForMadeUp(t *testing.T) {
	d2 := "Sat, 9 Sep 2017 10:00:00 -0400"
	f := newFilter(t, headerfix.Config{TraceHeader: new(string)}, nil)
	in := hs("Message-ID", "<a@example.org> Date: "+exDate, "Subject", "s", "Date", d2, "X-Last", "1")
	v, after := check(t, f, postfixMsg(in))
	var dates []string
	for _, h := range after {
		if filters.SameName(h.Name, "Date") {
			dates = append(dates, h.Value)
		}
	}
	if want := []string{exDate, d2}; !reflect.DeepEqual(dates, want) {
		t.Errorf("Date fields %q, want %q; edits %+v", dates, want, v.Edits)
	}
}

// A repair leaves no continuation line of nothing but blanks: RFC 5322
// allows one only in its obsolete syntax, which must not be generated,
// and a reader may take it for the empty line that ends the header.
// Sendmail (srv_features U) hands these values over with bare CRs, and
// writes the repaired value line by line as given. The blanks go; the
// text stays.
func TestRepairMakesNoBlankContinuationLine(t *testing.T) {
	long := strings.Repeat("y", 989) // "Subject: " and this: 998 bytes, the limit
	for _, tc := range []struct{ name, subject, want string }{
		// A fold whose line holds only a blank before the split.
		{"split after a folding blank", "Hello\n \rX-Mailer: foo", "Hello"},
		{"split after a folding blank, CRLF", "Hello\r\n \rX-Mailer: foo", "Hello"},
		// A line at the limit, then two bare CRs: the first is folded
		// (joined, the line would pass the limit), the second splits.
		{"fold right before a split", long + "\r\rX-Mailer: foo", long},
		{"fold, blank, split", long + "\r \rX-Mailer: foo", long},
		// A blank line between two folds keeps the text on both sides.
		{"blank fold between text", "Hello\n \n world\rX-Mailer: foo", "Hello\n world"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, headerfix.Config{}, nil)
			v, after := check(t, f, msg(hs("Subject", tc.subject, "From", exFrom)))
			for _, e := range v.Edits {
				if e.Kind == filters.DeleteHeader {
					continue
				}
				lines := strings.Split(strings.ReplaceAll(e.Value, "\r\n", "\n"), "\n")
				for i, l := range lines[1:] {
					if strings.Trim(l, " \t") == "" {
						t.Errorf("%s %s: line %d of the value holds only blanks: %q", e.Kind, e.Name, i+2, e.Value)
					}
				}
			}
			var subject, mailer string
			for _, h := range after {
				switch h.Name {
				case "Subject":
					subject = h.Value
				case "X-Mailer":
					mailer = h.Value
				}
			}
			if subject != tc.want || mailer != "foo" {
				t.Errorf("delivered Subject %q, X-Mailer %q; want %q, foo", subject, mailer, tc.want)
			}
		})
	}
}

// A field with nothing to repair stays byte for byte as it is when another
// field of the message is repaired (docs/headerfix.md, "What is never
// touched"): a validly folded field with a continuation line of blanks
// alone (RFC 5322's obsolete folding, which both MTAs pass on) was
// changed with the repair of a bare CR elsewhere, breaking a DKIM
// signature with simple header canonicalization over it.
func TestUnrepairedFieldKeptWhenAnotherIsRepaired(t *testing.T) {
	folded := "first part\n \n second part"
	for _, postfix := range []bool{false, true} {
		in := hs("Subject", "hi\rthere", "X-Folded", folded, "From", exFrom)
		m := msg(in)
		if postfix {
			m = postfixMsg(in)
		}
		f := newFilter(t, headerfix.Config{}, nil)
		v, after := check(t, f, m)
		repaired := false
		for _, e := range v.Edits {
			if filters.SameName(e.Name, "X-Folded") {
				t.Errorf("postfix=%v: edit %+v of X-Folded, a field without a stray character", postfix, e)
			}
			repaired = repaired || filters.SameName(e.Name, "Subject")
		}
		if !repaired {
			t.Errorf("postfix=%v: the Subject was not repaired: %+v", postfix, v.Edits)
		}
		for _, h := range after {
			if h.Name == "X-Folded" && h.Value != folded {
				t.Errorf("postfix=%v: X-Folded delivered as %q, want %q", postfix, h.Value, folded)
			}
		}
	}
}

// The same holds for a field split off where Postfix had turned a bare CR
// into a space: a continuation line of blanks alone, which the client
// sent inside the broken line, does not go into the field the repair
// adds. Sent with the CR kept (Sendmail, srv_features U), the same bytes
// lose that line; through Postfix they kept it, and the added field ended
// the header for a reader that takes such a line for the empty one, the
// trace field added after it with it.
func TestMergedSplitMakesNoBlankContinuationLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		postfix bool
		date    string
	}{
		{"Sendmail, bare CR", false, exDate + "\rX-Mailer: foo\n \n bar"},
		{"Postfix, CR made a space", true, exDate + " X-Mailer: foo\n \n bar"},
		{"Postfix, CR made a space, blank line at the end", true, exDate + " X-Mailer: foo\n bar\n \t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := hs("Date", tc.date, "From", exFrom, "Subject", "x")
			m := msg(in)
			if tc.postfix {
				m = postfixMsg(in)
			}
			v, after := check(t, newFilter(t, headerfix.Config{}, nil), m)
			for _, e := range v.Edits {
				lines := strings.Split(strings.ReplaceAll(e.Value, "\r\n", "\n"), "\n")
				for i, l := range lines[1:] {
					if strings.Trim(l, " \t") == "" {
						t.Errorf("%s %s: line %d of the value holds only blanks: %q", e.Kind, e.Name, i+2, e.Value)
					}
				}
			}
			var date, mailer string
			for _, h := range after {
				switch h.Name {
				case "Date":
					date = h.Value
				case "X-Mailer":
					mailer = h.Value
				}
			}
			if date != exDate || mailer != "foo\n bar" {
				t.Errorf("delivered Date %q, X-Mailer %q; want %q, %q", date, mailer, exDate, "foo\n bar")
			}
		})
	}
}
