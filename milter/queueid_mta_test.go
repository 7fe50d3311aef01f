package milter_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The queue id in sluice's line for a message Postfix abandons, which an
// administrator matches with Postfix's log. Observed with Postfix 3.7:
// with smtpd_delay_open_until_valid_rcpt = yes (the default) Postfix
// opens the queue file, and so has a queue id, only once its milters
// have accepted the first RCPT TO, so the macro i comes with the second
// RCPT TO and at end of headers and end of message, never with the first
// RCPT TO. The protocol version sluice speaks (2) has no DATA event. A
// message with one recipient that ends before its header reaches the
// milters (cut off in the body, refused by Postfix at end of data, or
// abandoned with RSET) is logged with an empty queue id. With
// smtpd_delay_open_until_valid_rcpt = no, i comes with MAIL FROM.
func TestPostfixAbortedMessageQueueID(t *testing.T) {
	sums, spec := serveChainObserved(t)
	clientLine := regexp.MustCompile(`: ([0-9A-F]+): client=unknown\[127\.0\.0\.1\]`)

	type abandon struct {
		name  string
		from  string
		rcpts int
		run   func(t *testing.T, cl *mtatest.Client)
	}
	abandons := []abandon{
		{"cut off in the body", "alice@example.org", 1, func(t *testing.T, cl *mtatest.Client) {
			cl.Cmd("DATA")
			if err := cl.WriteRaw([]byte("Subject: cut\r\n\r\nthe start of a body\r\n")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			cl.Close()
		}},
		{"refused at end of data", "eod@example.org", 1, func(t *testing.T, cl *mtatest.Client) {
			if r := cl.Data([]byte("Subject: eod\r\n\r\nbody\r\n")); r.Code != 554 {
				t.Errorf("end of data: %v, want 554", r)
			}
			cl.Quit()
		}},
		{"RSET after one recipient", "alice@example.org", 1, func(_ *testing.T, cl *mtatest.Client) { cl.Cmd("RSET"); cl.Quit() }},
		{"RSET after two recipients", "alice@example.org", 2, func(_ *testing.T, cl *mtatest.Client) { cl.Cmd("RSET"); cl.Quit() }},
	}
	for _, c := range []struct {
		delayOpen string
		withID    map[string]bool // by abandon name
	}{
		{"yes", map[string]bool{"RSET after two recipients": true}},
		{"no", map[string]bool{"cut off in the body": true, "refused at end of data": true, "RSET after one recipient": true, "RSET after two recipients": true}},
	} {
		t.Run("smtpd_delay_open_until_valid_rcpt="+c.delayOpen, func(t *testing.T) {
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, ExtraConfig: []string{
				"smtpd_delay_open_until_valid_rcpt = " + c.delayOpen,
				"smtpd_end_of_data_restrictions = check_sender_access inline:{eod@example.org=REJECT}",
			}})
			for _, a := range abandons {
				sums.mu.Lock()
				sums.sums = nil
				sums.mu.Unlock()
				before := len(clientLine.FindAllString(mta.Log(), -1))
				cl := mtatest.DialSMTP(t, mta.Addr())
				cl.Cmd("EHLO client.example")
				cl.Cmd("MAIL FROM:<" + a.from + ">")
				for i := range a.rcpts {
					if r := cl.Cmd("RCPT TO:<bob" + strings.Repeat("b", i) + "@lab.example>"); r.Code != 250 {
						t.Fatalf("%s: RCPT TO: %v", a.name, r)
					}
				}
				a.run(t, cl)
				sums.wait()
				var postfixID string
				deadline := time.Now().Add(10 * time.Second)
				for postfixID == "" && time.Now().Before(deadline) {
					if ms := clientLine.FindAllStringSubmatch(mta.Log(), -1); len(ms) > before {
						postfixID = ms[before][1]
					}
					time.Sleep(20 * time.Millisecond)
				}
				if postfixID == "" {
					t.Fatalf("%s: Postfix logged no queue id for the message", a.name)
				}
				sums.mu.Lock()
				got := slices.Clone(sums.sums)
				sums.mu.Unlock()
				if len(got) != 1 || !got[0].Aborted {
					t.Fatalf("%s: summaries %+v, want one, aborted", a.name, got)
				}
				want := ""
				if c.withID[a.name] {
					want = postfixID
				}
				if got[0].QueueID != want {
					t.Errorf("%s: queue id %q, want %q (Postfix logged %s)", a.name, got[0].QueueID, want, postfixID)
				}
			}
		})
	}
}

// Both MTAs send a macro under the name written in their macro lists and
// take "{i}" there for "i": with the queue id listed as "{i}", it comes
// as "{i}" (observed with Postfix 3.7 and Sendmail 8.17), and sluice's
// line for the message has it all the same.
func TestQueueIDMacroInBracesFromMTAs(t *testing.T) {
	queuedAs := regexp.MustCompile(`^250 (?:2\.0\.0 Ok: queued as ([0-9A-F]+)|2\.0\.0 ([0-9A-Za-z]+) Message accepted)`)
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sums, spec := serveChainObserved(t)
			var mta *mtatest.MTA
			if name == "postfix" {
				mta = mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, ExtraConfig: []string{
					"milter_rcpt_macros = {i} {rcpt_addr}",
					"milter_end_of_header_macros = {i}",
					"milter_end_of_data_macros = {i}",
				}})
			} else {
				mta = mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: spec, ExtraConfig: []string{
					"define(`confMILTER_MACROS_ENVFROM', ``{i}, {auth_type}, {auth_authen}, {auth_ssf}, {auth_author}, {mail_mailer}, {mail_host}, {mail_addr}'')dnl",
				}})
			}
			cl := mtatest.DialSMTP(t, mta.Addr())
			cl.Cmd("EHLO client.example")
			r := cl.Send("alice@lab.example", []string{"bob@lab.example"}, []byte("Subject: braces\r\n\r\nbody\r\n"))
			cl.Quit()
			m := queuedAs.FindStringSubmatch(r.String())
			if m == nil {
				t.Fatalf("%s: %v, want the message queued", name, r)
			}
			id := m[1] + m[2]
			sums.wait()
			sums.mu.Lock()
			defer sums.mu.Unlock()
			if len(sums.sums) != 1 || sums.sums[0].QueueID != id {
				t.Errorf("%s: summaries %+v, want one with queue id %s", name, sums.sums, id)
			}
		})
	}
}

// serveChainObserved serves a pipeline of one chainFilter on a unix
// socket an MTA can reach, until the test ends, and returns the
// summaries of its messages and the socket's milter spec.
func serveChainObserved(t *testing.T) (*summaries, string) {
	t.Helper()
	sums := &summaries{}
	p := filters.NewPipeline([]filters.Step{{Filter: chainFilter{&chainEvents{}}, Timeout: 5 * time.Second}}, nil)
	srv := milter.NewServer(milter.Config{Pipeline: p}, nil, sums)
	ln, spec := mtatest.MilterListener(t, "unix")
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return sums, spec
}
