package milter_test

import (
	"context"
	"fmt"
	"maps"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// chainEvents is what the milters of a chain saw, in the order the MTA
// showed it to them. Postfix talks to its milters one at a time, so one
// log shared by both gives the order across them.
type chainEvents struct {
	mu  sync.Mutex
	evs []string
}

func (e *chainEvents) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, fmt.Sprintf(format, args...))
}

func (e *chainEvents) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.evs)
}

// waitFor waits, at most 10 s, until the log is want, and returns it.
func (e *chainEvents) waitFor(want []string) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.list()
		if slices.Equal(got, want) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peerMilter is another milter in the chain, written with go-milter as
// a third-party milter would be: it refuses recipients named peerdeny@;
// at end of message it rejects a message with a recipient named
// peerreject@, defers one with a peertempfail@, discards one with a
// peerdiscard@, holds one with a peerhold@ and adds "X-Peer: 1" to the
// others, and deletes the first
// X-T field of a message that has one. It logs recipients, the fields
// named X-Sluice-* and X-T it is shown, its end of message and aborts.
type peerMilter struct {
	gomilter.NoOpMilter
	ev                              *chainEvents
	reject, tempfail, discard, hold bool
	xt                              bool
}

func (p *peerMilter) MailFrom(string, *gomilter.Modifier) (gomilter.Response, error) {
	p.reject, p.tempfail, p.discard, p.hold, p.xt = false, false, false, false, false
	return gomilter.RespContinue, nil
}

func (p *peerMilter) RcptTo(rcpt string, _ *gomilter.Modifier) (gomilter.Response, error) {
	p.ev.add("peer rcpt %s", rcpt)
	switch {
	case strings.HasPrefix(rcpt, "peerdeny@"):
		return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), "550 5.7.1 Peer denies recipient"), nil
	case strings.HasPrefix(rcpt, "peerreject@"):
		p.reject = true
	case strings.HasPrefix(rcpt, "peertempfail@"):
		p.tempfail = true
	case strings.HasPrefix(rcpt, "peerdiscard@"):
		p.discard = true
	case strings.HasPrefix(rcpt, "peerhold@"):
		p.hold = true
	}
	return gomilter.RespContinue, nil
}

func (p *peerMilter) Header(name, value string, _ *gomilter.Modifier) (gomilter.Response, error) {
	if strings.HasPrefix(name, "X-Sluice-") || name == "X-T" {
		p.ev.add("peer header %s: %s", name, value)
	}
	p.xt = p.xt || name == "X-T"
	return gomilter.RespContinue, nil
}

func (p *peerMilter) Headers(textproto.MIMEHeader, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (p *peerMilter) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	p.ev.add("peer eom")
	if p.reject {
		return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), "550 5.7.1 Peer rejects message"), nil
	}
	if p.tempfail {
		return gomilter.NewResponseStr(byte(gomilter.ActReplyCode), "451 4.7.1 Peer defers message"), nil
	}
	if p.discard {
		return gomilter.RespDiscard, nil
	}
	if err := m.AddHeader("X-Peer", "1"); err != nil {
		return nil, err
	}
	if p.xt {
		if err := m.ChangeHeader(1, "X-T", ""); err != nil {
			return nil, err
		}
	}
	if p.hold {
		if err := m.Quarantine("peer holds"); err != nil {
			return nil, err
		}
	}
	return gomilter.RespAccept, nil
}

func (p *peerMilter) Abort(*gomilter.Modifier) error {
	p.ev.add("peer abort")
	return nil
}

// chainFilter is sluice's filter in the chain: it refuses recipients
// named sluicedeny@ at RCPT, rejects a message with a recipient named
// sluicereject@ at end of message and adds "X-Sluice-Chain: 1" to the
// others. It logs each recipient and, at end of message, the recipients
// and the fields named X-Peer and X-T it sees.
type chainFilter struct{ ev *chainEvents }

func (chainFilter) Name() string { return "chain" }

func (chainFilter) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageRcptTo, filters.StageEOM), Headers: true}
}

func (f chainFilter) Check(_ context.Context, s filters.Stage, m *filters.Message) (filters.Verdict, error) {
	var rcpts []string
	for _, r := range m.Rcpts {
		rcpts = append(rcpts, r.Addr)
	}
	if s == filters.StageRcptTo {
		rcpt := rcpts[len(rcpts)-1]
		f.ev.add("sluice rcpt %s", rcpt)
		if strings.HasPrefix(rcpt, "sluicedeny@") {
			return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 550, Enhanced: "5.7.1", Text: "Sluice denies recipient"}}, nil
		}
		return filters.Verdict{}, nil
	}
	var peer []string
	for _, h := range m.Headers {
		if h.Name == "X-Peer" || h.Name == "X-T" {
			peer = append(peer, h.Name+": "+h.Value)
		}
	}
	f.ev.add("sluice eom %s %q", strings.Join(rcpts, ","), peer)
	for _, r := range rcpts {
		switch local, _, _ := strings.Cut(r, "@"); local {
		case "sluicereject":
			return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 550, Enhanced: "5.7.1", Text: "Sluice rejects message"}, Reason: "test"}, nil
		case "sluicediscard":
			return filters.Verdict{Action: filters.Discard, Reason: "test"}, nil
		case "sluicehold":
			return filters.Verdict{Action: filters.Quarantine, Reason: "test"}, nil
		}
	}
	edits := []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Sluice-Chain", Value: "1"}}
	if _, ok := m.Header("X-T"); ok {
		edits = append(edits,
			filters.HeaderEdit{Kind: filters.ChangeHeader, Name: "X-T", Index: 1, Value: "changed by sluice"},
			filters.HeaderEdit{Kind: filters.DeleteHeader, Name: "X-T", Index: 2})
	}
	return filters.Verdict{Edits: edits}, nil
}

// startChainSluice serves sluice's milter with chainFilter on a unix
// socket until the test ends, and returns what it records and the
// socket's smtpd_milters spec.
func startChainSluice(t *testing.T) (*chainEvents, *summaries, string) {
	t.Helper()
	ev := &chainEvents{}
	sums := &summaries{}
	p := filters.NewPipeline([]filters.Step{{Filter: chainFilter{ev}, Timeout: 5 * time.Second}}, nil)
	srv := milter.NewServer(milter.Config{Pipeline: p}, nil, sums)
	ln, spec := mtatest.MilterListener(t, "unix")
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ev, sums, spec
}

// sluice in a chain with another milter, in both orders (smtpd_milters =
// sluice, peer and peer, sluice). Observed with Postfix 3.7:
//
//   - Postfix asks the milters in turn at each stage, and at end of
//     message each milter gets the whole message (header, body, end) in
//     turn, with the header edits of the milters before it applied: the
//     second one sees the first one's added, changed and deleted fields,
//     its own edits by index count the fields as it saw them, and the
//     added fields land in milter order.
//   - A refusal by one milter (of a recipient, of the message) is final:
//     the milters after it are not asked. They get an abort if they were
//     inside the message, the milters before it get nothing more.
//   - So the milter that comes first cannot know what a later one
//     refuses: for sluice in front, a recipient the peer denied is still
//     one of the message's recipients, and a message the peer rejected
//     at end of message ended for sluice as delivered (logged, counted
//     and archived as accepted). With sluice last, sluice sees only the
//     recipients and the messages the peer let through.
func TestPostfixMilterChain(t *testing.T) {
	ev, sums, sluiceSpec := startChainSluice(t)
	peerLn, peerSpec := mtatest.MilterListener(t, "unix")
	peer := &gomilter.Server{NewMilter: func() gomilter.Milter { return &peerMilter{ev: ev} }, Actions: gomilter.OptAddHeader}
	// Serve returns when MilterListener's cleanup closes the listener.
	go peer.Serve(peerLn)

	type message struct {
		rcpts []string
		// replies to each RCPT TO, then to the end of DATA
		replies []string
	}
	messages := []message{
		{[]string{"ok@lab.example", "peerdeny@lab.example", "sluicedeny@lab.example", "peerreject@lab.example"}, []string{
			"250 2.1.5 Ok", "550 5.7.1 Peer denies recipient", "550 5.7.1 Sluice denies recipient", "250 2.1.5 Ok",
			"550 5.7.1 Peer rejects message"}},
		{[]string{"ok2@lab.example"}, []string{"250 2.1.5 Ok", ""}},
		{[]string{"sluicereject@lab.example"}, []string{"250 2.1.5 Ok", "550 5.7.1 Sluice rejects message"}},
	}
	for _, c := range []struct {
		order   string
		milters string
		// events is what the milters see of the three messages;
		// header the fields the delivered message ends with.
		events []string
		header []string
		// sums is the summary line sluice gives each message it saw.
		sums []string
	}{
		{"sluice,peer", sluiceSpec + ", " + peerSpec,
			[]string{
				"sluice rcpt ok@lab.example", "peer rcpt ok@lab.example",
				"sluice rcpt peerdeny@lab.example", "peer rcpt peerdeny@lab.example",
				"sluice rcpt sluicedeny@lab.example",
				"sluice rcpt peerreject@lab.example", "peer rcpt peerreject@lab.example",
				`sluice eom ok@lab.example,peerdeny@lab.example,peerreject@lab.example ["X-T: a" "X-T: b" "X-T: c"]`,
				"peer header X-T: changed by sluice", "peer header X-T: c", "peer header X-Sluice-Chain: 1",
				"peer eom",
				"peer abort",
				"sluice rcpt ok2@lab.example", "peer rcpt ok2@lab.example",
				`sluice eom ok2@lab.example ["X-T: a" "X-T: b" "X-T: c"]`,
				"peer header X-T: changed by sluice", "peer header X-T: c", "peer header X-Sluice-Chain: 1",
				"peer eom",
				"peer abort",
				"sluice rcpt sluicereject@lab.example", "peer rcpt sluicereject@lab.example",
				`sluice eom sluicereject@lab.example ["X-T: a" "X-T: b" "X-T: c"]`,
				"peer abort",
				"peer abort",
			},
			// The peer deletes the field sluice changed.
			[]string{"X-T: c", "X-Sluice-Chain: 1", "X-Peer: 1"},
			[]string{
				// The peer's rejection is lost on sluice: accepted,
				// with the recipient the peer denied.
				"accept ok@lab.example,peerdeny@lab.example,peerreject@lab.example",
				"accept ok2@lab.example",
				"reject sluicereject@lab.example",
			}},
		{"peer,sluice", peerSpec + ", " + sluiceSpec,
			[]string{
				"peer rcpt ok@lab.example", "sluice rcpt ok@lab.example",
				"peer rcpt peerdeny@lab.example",
				"peer rcpt sluicedeny@lab.example", "sluice rcpt sluicedeny@lab.example",
				"peer rcpt peerreject@lab.example", "sluice rcpt peerreject@lab.example",
				"peer header X-T: a", "peer header X-T: b", "peer header X-T: c",
				"peer eom",
				"peer abort",
				"peer rcpt ok2@lab.example", "sluice rcpt ok2@lab.example",
				"peer header X-T: a", "peer header X-T: b", "peer header X-T: c",
				"peer eom",
				// sluice is shown the header as the peer left it.
				`sluice eom ok2@lab.example ["X-T: b" "X-T: c" "X-Peer: 1"]`,
				"peer abort",
				"peer rcpt sluicereject@lab.example", "sluice rcpt sluicereject@lab.example",
				"peer header X-T: a", "peer header X-T: b", "peer header X-T: c",
				"peer eom",
				`sluice eom sluicereject@lab.example ["X-T: b" "X-T: c" "X-Peer: 1"]`,
				"peer abort",
				"peer abort",
			},
			// sluice's change and delete hit the fields it saw.
			[]string{"X-T: changed by sluice", "X-Peer: 1", "X-Sluice-Chain: 1"},
			[]string{
				"aborted ok@lab.example,peerreject@lab.example",
				"accept ok2@lab.example",
				"reject sluicereject@lab.example",
			}},
	} {
		t.Run(c.order, func(t *testing.T) {
			ev.mu.Lock()
			ev.evs = nil
			ev.mu.Unlock()
			sums.mu.Lock()
			sums.sums = nil
			sums.mu.Unlock()
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{ExtraConfig: []string{"smtpd_milters = " + c.milters}})

			cl := mtatest.DialSMTP(t, mta.Addr())
			cl.Cmd("EHLO client.example")
			for i, m := range messages {
				if r := cl.Cmd("MAIL FROM:<alice@lab.example>"); r.Code != 250 {
					t.Fatalf("message %d: MAIL FROM: %v", i, r)
				}
				var got []string
				for _, rcpt := range m.rcpts {
					got = append(got, cl.Cmd("RCPT TO:<"+rcpt+">").String())
				}
				r := cl.Data([]byte(fmt.Sprintf("X-T: a\r\nSubject: chain %d\r\nX-T: b\r\nX-T: c\r\n\r\nbody\r\n", i)))
				if r.QueueID() != "" {
					got = append(got, "")
				} else {
					got = append(got, r.String())
				}
				if !slices.Equal(got, m.replies) {
					t.Errorf("message %d: replies %q, want %q", i, got, m.replies)
				}
				cl.Cmd("RSET")
			}
			cl.Quit()

			ds := mta.WaitDelivered(t, 1, 20*time.Second)
			mta.WaitIdle(t, 20*time.Second)
			if ds = mta.Delivered(t); len(ds) != 1 || ds[0].Recipient() != "ok2@lab.example" {
				t.Fatalf("delivered %d messages, want the one to ok2@lab.example", len(ds))
			}
			var tail []string
			for _, f := range ds[0].Header {
				if f.Name == "X-Peer" || f.Name == "X-Sluice-Chain" || f.Name == "X-T" {
					tail = append(tail, f.Raw)
				}
			}
			if !slices.Equal(tail, c.header) {
				t.Errorf("milters' fields in the delivered message: %q, want %q", tail, c.header)
			}
			if got := ev.waitFor(c.events); !slices.Equal(got, c.events) {
				t.Errorf("milters saw\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(c.events, "\n\t"))
			}
			sums.mu.Lock()
			var got []string
			for _, s := range sums.sums {
				verdict := s.Action.String()
				if s.Aborted {
					verdict = "aborted"
				}
				got = append(got, verdict+" "+strings.Join(s.Rcpts, ","))
			}
			sums.mu.Unlock()
			if !slices.Equal(got, c.sums) {
				t.Errorf("sluice's summaries\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(c.sums, "\n\t"))
			}
		})
	}
}

// Recipients and messages Postfix refuses itself, with sluice the only
// milter. Observed with Postfix 3.7: Postfix runs its own recipient
// checks (smtpd_recipient_restrictions, smtpd_relay_restrictions, the
// unknown-user check of smtpd_reject_unlisted_recipient) before it asks
// the milters, so sluice never sees a recipient Postfix refused, and the
// message goes on with the others; a sender refused by
// smtpd_sender_restrictions is refused at RCPT TO (smtpd_delay_reject),
// after sluice saw the MAIL FROM, and the message ends aborted without
// recipients. A message refused after sluice saw
// its envelope, by smtpd_data_restrictions, smtpd_end_of_data_restrictions,
// header_checks, body_checks or message_size_limit, never reaches
// sluice's end of message: sluice gets an abort, and the message ends as
// aborted.
func TestPostfixOwnRefusalsAbortTheMessage(t *testing.T) {
	ev, sums, spec := startChainSluice(t)
	// cleanup(8) reads header_checks as user postfix.
	dir, err := os.MkdirTemp("/tmp", "sl-hc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	checks, bodyChecks := filepath.Join(dir, "header_checks"), filepath.Join(dir, "body_checks")
	if err := os.WriteFile(checks, []byte("/^Subject: refuse me/ REJECT Header check refuses\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bodyChecks, []byte("/^refuse this body/ REJECT Body check refuses\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, ExtraConfig: []string{
		// Only these two users exist: smtpd_reject_unlisted_recipient
		// (on by default) refuses others at RCPT.
		"virtual_mailbox_maps = inline:{bob@lab.example=inbox/, carol@lab.example=inbox/}",
		"smtpd_recipient_restrictions = check_recipient_access inline:{carol@lab.example=REJECT}",
		"smtpd_sender_restrictions = check_sender_access inline:{sender@example.org=REJECT}",
		"smtpd_data_restrictions = check_sender_access inline:{data@example.org=REJECT}",
		"smtpd_end_of_data_restrictions = check_sender_access inline:{eod@example.org=REJECT}",
		"header_checks = regexp:" + checks,
		"body_checks = regexp:" + bodyChecks,
		"message_size_limit = 4000",
	}})

	cl := mtatest.DialSMTP(t, mta.Addr())
	cl.Cmd("EHLO client.example")
	cl.Cmd("MAIL FROM:<alice@example.org>")
	for _, rc := range []struct{ rcpt, reply string }{
		{"bob@lab.example", "250 2.1.5 Ok"},
		{"nobody@lab.example", "550 5.1.1 <nobody@lab.example>: Recipient address rejected: User unknown in virtual mailbox table"},
		{"carol@lab.example", "554 5.7.1 <carol@lab.example>: Recipient address rejected: Access denied"},
		{"bob@foreign.example", "554 5.7.1 <bob@foreign.example>: Relay access denied"},
		{"dave@discard.example", "250 2.1.5 Ok"},
	} {
		if r := cl.Cmd("RCPT TO:<" + rc.rcpt + ">"); r.String() != rc.reply {
			t.Errorf("RCPT TO:<%s>: %q, want %q", rc.rcpt, r.String(), rc.reply)
		}
	}
	if r := cl.Data([]byte("Subject: several\r\n\r\nbody\r\n")); r.Code != 250 {
		t.Fatalf("message to several: %v", r)
	}
	refused := []struct{ from, subject, body, reply string }{
		{"data@example.org", "data", "body\r\n", "554 5.7.1 <data@example.org>: Sender address rejected: Access denied"},
		{"eod@example.org", "eod", "body\r\n", "554 5.7.1 <eod@example.org>: Sender address rejected: Access denied"},
		{"alice@example.org", "refuse me", "body\r\n", "550 5.7.1 Header check refuses"},
		{"alice@example.org", "body", "refuse this body\r\n", "550 5.7.1 Body check refuses"},
		{"alice@example.org", "large", strings.Repeat("0123456789abcdef\r\n", 300), "552 5.3.4 Error: message file too big"},
		// smtpd_delay_reject (on by default) refuses the sender at RCPT
		// TO: the message had its MAIL FROM and no recipient.
		{"sender@example.org", "sender", "body\r\n", "554 5.7.1 <sender@example.org>: Sender address rejected: Access denied"},
	}
	for _, m := range refused {
		r := cl.Send(m.from, []string{"bob@lab.example"}, []byte("Subject: "+m.subject+"\r\n\r\n"+m.body))
		if r.String() != m.reply {
			t.Errorf("%s: %q, want %q", m.subject, r.String(), m.reply)
		}
		cl.Cmd("RSET")
	}
	cl.Quit()
	mta.WaitDelivered(t, 1, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	if ds := mta.Delivered(t); len(ds) != 1 || ds[0].Recipient() != "bob@lab.example" || ds[0].Get("X-Sluice-Chain") != "1" {
		t.Errorf("delivered %d messages, want one to bob@lab.example with sluice's field", len(ds))
	}

	want := []string{
		"sluice rcpt bob@lab.example", "sluice rcpt dave@discard.example",
		"sluice eom bob@lab.example,dave@discard.example []",
		// data, eod, refuse me, body, large: no end of message.
		"sluice rcpt bob@lab.example", "sluice rcpt bob@lab.example",
		"sluice rcpt bob@lab.example", "sluice rcpt bob@lab.example",
		"sluice rcpt bob@lab.example",
	}
	if got := ev.waitFor(want); !slices.Equal(got, want) {
		t.Errorf("sluice saw\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	wantSums := []string{
		"accept alice@example.org bob@lab.example,dave@discard.example",
		"aborted data@example.org bob@lab.example",
		"aborted eod@example.org bob@lab.example",
		"aborted alice@example.org bob@lab.example",
		"aborted alice@example.org bob@lab.example",
		"aborted alice@example.org bob@lab.example",
		"aborted sender@example.org ",
	}
	var gotSums []string
	for range 500 {
		sums.mu.Lock()
		gotSums = nil
		for _, s := range sums.sums {
			verdict := s.Action.String()
			if s.Aborted {
				verdict = "aborted"
			}
			gotSums = append(gotSums, verdict+" "+s.From+" "+strings.Join(s.Rcpts, ","))
		}
		sums.mu.Unlock()
		if len(gotSums) >= len(wantSums) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !slices.Equal(gotSums, wantSums) {
		t.Errorf("sluice's summaries\n\t%s\nwant\n\t%s", strings.Join(gotSums, "\n\t"), strings.Join(wantSums, "\n\t"))
	}
}

// A hold (quarantine), a discard or a tempfail at end of message in a
// chain of sluice and another milter, in both orders. Observed with
// Postfix 3.7: a reject, a tempfail, a discard and a hold all end the
// milters' turn at the end of the message, so the milters after the one
// that decided are not asked (they get an abort). For a hold this means that a milter after the
// one that held the message never sees it: not when it is held, and not
// when an administrator releases it (postsuper -H), as the message is
// then delivered as it is. Held by a milter before sluice, a message
// sluice would have rejected waits in the hold queue, unfiltered; held
// by sluice, a message a later milter would have rejected, signed or
// tagged waits without that milter's say.
func TestPostfixMilterChainHoldAndDiscard(t *testing.T) {
	ev, sums, sluiceSpec := startChainSluice(t)
	peerLn, peerSpec := mtatest.MilterListener(t, "unix")
	peer := &gomilter.Server{NewMilter: func() gomilter.Milter { return &peerMilter{ev: ev} }, Actions: gomilter.OptAddHeader | gomilter.OptQuarantine}
	go peer.Serve(peerLn)

	type outcome struct {
		// reply is the client's reply to the end of DATA, less the
		// queue id; fate is "held", "discarded", "delivered" or
		// "rejected"; sluice is sluice's verdict in its summary.
		reply, fate, sluice string
	}
	for _, c := range []struct {
		order   string
		milters string
		want    map[string]outcome // by the message's recipients
	}{
		{"sluice,peer", sluiceSpec + ", " + peerSpec, map[string]outcome{
			"sluicehold peerreject":    {"250", "held", "quarantine"},
			"sluicediscard peerreject": {"250", "discarded", "discard"},
			"sluicehold peerdiscard":   {"250", "held", "quarantine"},
			"sluicereject peerhold":    {"550 5.7.1 Sluice rejects message", "rejected", "reject"},
			"ok peerhold":              {"250", "held", "accept"},
			"sluicediscard peerhold":   {"250", "discarded", "discard"},
			"ok peertempfail":          {"451 4.7.1 Peer defers message", "rejected", "accept"},
		}},
		{"peer,sluice", peerSpec + ", " + sluiceSpec, map[string]outcome{
			"sluicehold peerreject":    {"550 5.7.1 Peer rejects message", "rejected", "aborted"},
			"sluicediscard peerreject": {"550 5.7.1 Peer rejects message", "rejected", "aborted"},
			"sluicehold peerdiscard":   {"250", "discarded", "aborted"},
			"sluicereject peerhold":    {"250", "held", "aborted"},
			"ok peerhold":              {"250", "held", "aborted"},
			"sluicediscard peerhold":   {"250", "held", "aborted"},
			"ok peertempfail":          {"451 4.7.1 Peer defers message", "rejected", "aborted"},
		}},
	} {
		t.Run(c.order, func(t *testing.T) {
			sums.mu.Lock()
			sums.sums = nil
			sums.mu.Unlock()
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{ExtraConfig: []string{"smtpd_milters = " + c.milters}})
			cl := mtatest.DialSMTP(t, mta.Addr())
			cl.Cmd("EHLO client.example")
			names := slices.Sorted(maps.Keys(c.want))
			got := map[string]outcome{}
			queueIDs := map[string]string{}
			for _, name := range names {
				var rcpts []string
				for _, local := range strings.Fields(name) {
					rcpts = append(rcpts, local+"@lab.example")
				}
				r := cl.Send("alice@lab.example", rcpts, []byte("Subject: "+name+"\r\n\r\nbody\r\n"))
				o := outcome{reply: r.String(), fate: "rejected"}
				if id := r.QueueID(); id != "" {
					o.reply = "250"
					queueIDs[name] = id
				}
				got[name] = o
				cl.Cmd("RSET")
			}
			cl.Quit()
			mta.WaitIdle(t, 20*time.Second)
			held := mta.Held(t)
			delivered := map[string]bool{}
			for _, d := range mta.Delivered(t) {
				delivered[d.Get("Subject")] = true
			}
			log := mta.Log()
			for name, id := range queueIDs {
				o := got[name]
				switch {
				case slices.Contains(held, id):
					o.fate = "held"
				case strings.Contains(log, id+": milter-discard: END-OF-MESSAGE"):
					o.fate = "discarded"
				case delivered[name]:
					o.fate = "delivered"
				default:
					o.fate = "lost"
				}
				got[name] = o
			}
			// One summary per message, in the order sent; the last one's
			// may come with the QUIT.
			for range 500 {
				sums.mu.Lock()
				n := len(sums.sums)
				sums.mu.Unlock()
				if n >= len(names) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			sums.mu.Lock()
			for i, s := range sums.sums {
				if i >= len(names) {
					break
				}
				o := got[names[i]]
				o.sluice = s.Action.String()
				if s.Aborted {
					o.sluice = "aborted"
				}
				got[names[i]] = o
			}
			sums.mu.Unlock()
			for _, name := range names {
				if got[name] != c.want[name] {
					t.Errorf("message to %s: %+v, want %+v", name, got[name], c.want[name])
				}
			}

			// Released, the held message goes out as it was held: the
			// milters are not asked again.
			const release = "sluicereject peerhold"
			id, ok := queueIDs[release]
			if !ok || got[release].fate != "held" {
				return
			}
			// postsuper -H moves it to the deferred queue; postqueue -i
			// has it delivered now rather than at the next queue run.
			for _, argv := range [][]string{{"postsuper", "-H", id}, {"postqueue", "-i", id}} {
				cmd := exec.Command(argv[0], append([]string{"-c", filepath.Join(mta.Dir(), "etc")}, argv[1:]...)...)
				cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
				}
			}
			mta.WaitIdle(t, 20*time.Second)
			var released []mtatest.Delivered
			deadline := time.Now().Add(20 * time.Second)
			for len(released) == 0 && time.Now().Before(deadline) {
				for _, d := range mta.Delivered(t) {
					if d.Get("Subject") == release {
						released = append(released, d)
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(released) == 0 {
				t.Fatalf("released message %s not delivered", id)
			}
			for _, d := range released {
				if d.Get("X-Peer") != "1" || d.Get("X-Sluice-Chain") != "" {
					t.Errorf("released message to %s: X-Peer %q, X-Sluice-Chain %q; want the peer's field only", d.Recipient(), d.Get("X-Peer"), d.Get("X-Sluice-Chain"))
				}
			}
		})
	}
}

// rcptEditor is a milter that, at end of message, adds the recipient
// added@lab.example and removes removed@lab.example, as an alias
// expander or a quarantine milter might.
type rcptEditor struct{ gomilter.NoOpMilter }

func (rcptEditor) Headers(textproto.MIMEHeader, *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (rcptEditor) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	if err := m.AddRecipient("added@lab.example"); err != nil {
		return nil, err
	}
	if err := m.DeleteRecipient("removed@lab.example"); err != nil {
		return nil, err
	}
	return gomilter.RespAccept, nil
}

// Recipients another milter adds or removes at end of message, in both
// orders. Observed with Postfix 3.7: the milter protocol shows a milter
// no recipient edits of the others, so sluice's filters, log line and
// archive keep the recipients of the SMTP envelope, whichever side of
// sluice the editing milter is on; the MTA delivers to the edited list.
func TestPostfixMilterChainRecipientEdits(t *testing.T) {
	ev, sums, sluiceSpec := startChainSluice(t)
	edLn, edSpec := mtatest.MilterListener(t, "unix")
	ed := &gomilter.Server{NewMilter: func() gomilter.Milter { return rcptEditor{} }, Actions: gomilter.OptAddRcpt | gomilter.OptRemoveRcpt}
	go ed.Serve(edLn)

	for _, c := range []struct{ order, milters string }{
		{"sluice,editor", sluiceSpec + ", " + edSpec},
		{"editor,sluice", edSpec + ", " + sluiceSpec},
	} {
		t.Run(c.order, func(t *testing.T) {
			ev.mu.Lock()
			ev.evs = nil
			ev.mu.Unlock()
			sums.mu.Lock()
			sums.sums = nil
			sums.mu.Unlock()
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{ExtraConfig: []string{"smtpd_milters = " + c.milters}})
			cl := mtatest.DialSMTP(t, mta.Addr())
			cl.Cmd("EHLO client.example")
			if r := cl.Send("alice@lab.example", []string{"kept@lab.example", "removed@lab.example"}, []byte("Subject: edits\r\n\r\nbody\r\n")); r.Code != 250 {
				t.Fatalf("message: %v", r)
			}
			cl.Quit()
			mta.WaitDelivered(t, 2, 20*time.Second)
			mta.WaitIdle(t, 20*time.Second)
			var got []string
			for _, d := range mta.Delivered(t) {
				got = append(got, d.Recipient())
			}
			slices.Sort(got)
			if want := []string{"added@lab.example", "kept@lab.example"}; !slices.Equal(got, want) {
				t.Errorf("delivered to %q, want %q", got, want)
			}
			want := []string{
				"sluice rcpt kept@lab.example", "sluice rcpt removed@lab.example",
				"sluice eom kept@lab.example,removed@lab.example []",
			}
			if got := ev.waitFor(want); !slices.Equal(got, want) {
				t.Errorf("sluice saw\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
			sums.wait()
			sums.mu.Lock()
			defer sums.mu.Unlock()
			if len(sums.sums) != 1 || !slices.Equal(sums.sums[0].Rcpts, []string{"kept@lab.example", "removed@lab.example"}) {
				t.Errorf("summaries %+v, want one with the envelope's recipients", sums.sums)
			}
		})
	}
}
