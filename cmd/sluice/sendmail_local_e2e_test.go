package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Mail submitted on the host with Sendmail's sendmail(1): the mail
// submission program (submit.cf, FEATURE(msp)) relays it over SMTP to the
// daemon on 127.0.0.1, which runs the milter as for any SMTP client; the
// client is localhost[127.0.0.1] and the HELO name the host's own. Unlike
// Postfix's, Sendmail's sendmail(1) waits for the daemon's answer:
//
//   - the submission program adds Date:, From: and Message-Id: when they
//     are missing, before relaying, so the milter sees them (the daemon
//     hides only the fields it makes up itself);
//   - reject (at MAIL FROM or at the end of the message): sendmail exits 69
//     (EX_UNAVAILABLE) and the sender gets a bounce, itself relayed
//     through the milter;
//   - tempfail: sendmail exits 0 and the message waits in the submission
//     program's queue (clientmqueue), retried by its queue runner;
//   - discard: sendmail exits 0 and nothing is delivered;
//   - quarantine: sendmail exits 0 and the daemon holds the message;
//   - a bare CR, refused by Debian's Sendmail with 421: the message waits
//     in clientmqueue too, and sluice logs it as aborted; accepted by a
//     Sendmail told to, it reaches headerfix with the made-up From:,
//     which gets the From: the CR hid.
func TestLocalSubmissionSendmail(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o755)
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, "From:spammer@lab.example\tREJECT\n")
	dnsSrv := dnsbltest.Start(t)
	dnsSrv.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	// nonSMTPDConfig listens on a unix socket; Sendmail's harness uses TCP.
	cfg := nonSMTPDConfig("/unused", state, rules, dnsSrv.Addr)
	_, rest, _ := strings.Cut(cfg, "\nmetrics:")
	td := startDaemonWith(t, "listen:\n  - address: inet:127.0.0.1:0\nmetrics:"+rest)
	mta := mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: "inet:" + td.info.Milter[0].String()})
	host := mta.Hostname()

	submit := func(from, rcpt, raw string, wantExit int) {
		t.Helper()
		out, err := mta.SubmitLocal(t, from, []string{rcpt}, []byte(raw))
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		}
		if code != wantExit || out != "" {
			t.Fatalf("sendmail -f %q %s: exit %d, output %q; want exit %d and no output", from, rcpt, code, out, wantExit)
		}
	}
	delivered := 0
	next := func(rcpt string) mtatest.Delivered {
		t.Helper()
		delivered++
		ds := mta.WaitDelivered(t, delivered, 20*time.Second)
		d := ds[len(ds)-1]
		if d.Recipient() != rcpt {
			t.Fatalf("delivery %d to %s, want %s", delivered, d.Recipient(), rcpt)
		}
		return d
	}
	// one checks that the delivered header has exactly one field of the
	// name, with the value want ("" for any).
	one := func(d mtatest.Delivered, name, want string) {
		t.Helper()
		vs := d.Values(name)
		if len(vs) != 1 || want != "" && vs[0] != want {
			t.Errorf("delivered to %s: %s fields %q, want one %q", d.Recipient(), name, vs, want)
		}
	}
	line := func(rcpt string) string {
		t.Helper()
		return nonSMTPDWaitLog(t, td, 1, " rcpts="+rcpt+" ")[0]
	}

	// Without Date:, From: and Message-ID: the submission program makes
	// them up; the milter sees them, and the mailbox has one of each.
	submit("alice@lab.example", "ok@lab.example", "Subject: bare\n\nHello.\n", 0)
	d := next("ok@lab.example")
	one(d, "From", "alice@lab.example")
	one(d, "Date", "")
	one(d, "Message-ID", "")
	if got, want := d.Get("X-Sluice-Test"), "client=127.0.0.1 helo="+host; got != want {
		t.Errorf("X-Sluice-Test %q, want %q", got, want)
	}
	for _, want := range []string{
		"client=localhost[127.0.0.1] helo=" + host + " from=alice@lab.example rcpts=ok@lab.example verdict=accept",
		"dnsbl@connect=continue", "headerfix@headers=continue", "script@eom=continue",
	} {
		if l := line("ok@lab.example"); !strings.Contains(l, want) {
			t.Errorf("message line lacks %q:\n%s", want, l)
		}
	}
	// dnsbl skips the loopback client (skip_private): no lookup.
	for _, l := range strings.Split(grepLines(td.metrics(t), "sluice_dnsbl_lookups_total{"), "\n") {
		if strings.Contains(l, `zone="bl.test"`) && !strings.HasSuffix(l, " 0") {
			t.Errorf("dnsbl looked the local client up: %s", l)
		}
	}

	// With all three, they are kept as written, one of each.
	submit("alice@lab.example", "ok2@lab.example",
		"From: Alice <alice@lab.example>\nDate: Fri, 8 Sep 2017 13:44:33 -0400\nMessage-ID: <m2@lab.example>\nSubject: full\n\nHello.\n", 0)
	d = next("ok2@lab.example")
	one(d, "From", "Alice <alice@lab.example>")
	one(d, "Date", "Fri, 8 Sep 2017 13:44:33 -0400")
	one(d, "Message-ID", "<m2@lab.example>")
	if d.Get("X-Sluice-Repaired") != "" {
		t.Errorf("headerfix repaired a clean header: %q", d.Get("X-Sluice-Repaired"))
	}

	// Rejected at the end of the message: sendmail exits 69 and the
	// sender gets the submission program's bounce with sluice's reply;
	// the bounce passes the milter (null sender) and is delivered.
	submit("alice@lab.example", "reject@lab.example", "Subject: rej\n\nHello.\n", 69)
	d = next("alice@lab.example")
	if d.Get("Return-Path") != "<MAILER-DAEMON>" || !strings.Contains(string(d.Body), "Diagnostic-Code: SMTP; 550 5.7.1 Rejected by test filter for 100% sure") {
		t.Errorf("bounce for the rejected message:\n%s", d.Raw)
	}
	nonSMTPDWaitLog(t, td, 1, `from="" rcpts=alice@lab.example verdict=accept`)

	// Rejected at MAIL FROM by a senders rule: likewise.
	submit("spammer@lab.example", "ok3@lab.example", "Subject: spam\n\nHello.\n", 69)
	d = next("spammer@lab.example")
	if !strings.Contains(string(d.Body), "Diagnostic-Code: SMTP; 550 5.7.1 <spammer@lab.example>... Access denied") {
		t.Errorf("bounce for the sender rejected at MAIL FROM:\n%s", d.Raw)
	}
	nonSMTPDWaitLog(t, td, 1, `from=spammer@lab.example rcpts="" verdict=reject reply="550 5.7.1 Access denied" decided_by=senders`)

	// Discarded: sendmail succeeds, nothing arrives.
	submit("alice@lab.example", "discard@lab.example", "Subject: disc\n\nHello.\n", 0)
	nonSMTPDWaitLog(t, td, 1, "rcpts=discard@lab.example verdict=discard")
	mta.WaitIdle(t, 20*time.Second)
	if n := len(mta.Delivered(t)); n != delivered {
		t.Errorf("%d messages delivered, want %d (nothing for discard)", n, delivered)
	}

	// Quarantine: sendmail succeeds; the daemon holds the message.
	submit("alice@lab.example", "quarantine@lab.example", "Subject: q\n\nHello.\n", 0)
	nonSMTPDWaitLog(t, td, 1, "rcpts=quarantine@lab.example verdict=quarantine")
	mta.WaitIdle(t, 20*time.Second)
	if held := mta.Held(t); len(held) != 1 {
		t.Errorf("held %v, want the quarantined message", held)
	}

	// Tempfail: sendmail succeeds; the message waits in clientmqueue.
	submit("alice@lab.example", "tempfail@lab.example", "Subject: tf\n\nHello.\n", 0)
	nonSMTPDWaitLog(t, td, 1, "rcpts=tempfail@lab.example verdict=tempfail")
	q := mta.Queued(t)
	if len(q) != 1 || !strings.HasPrefix(q[0], "clientmqueue/qf") {
		t.Fatalf("after a tempfail the queue holds %v, want one message in clientmqueue", q)
	}

	// A bare CR: the daemon refuses it before the end of the header and
	// closes its connection to sluice without a QUIT, so sluice logs a
	// lost connection; the message waits beside the other.
	submit("alice@lab.example", "cr@lab.example",
		"Date: Fri, 8 Sep 2017 13:44:33 -0400 (EDT)\rFrom: \"Example Name\" <example@example.com>\nSubject: line ends\n\nBody.\n", 0)
	mta.WaitLog(t, "reply=421 4.5.0 Bare carriage return (CR) not allowed, stat=Deferred", 10*time.Second)
	nonSMTPDWaitLog(t, td, 1, `rcpts=cr@lab.example verdict=aborted reason="connection lost"`)
	if q := mta.Queued(t); len(q) != 2 || !strings.HasPrefix(q[0], "clientmqueue/qf") || !strings.HasPrefix(q[1], "clientmqueue/qf") {
		t.Errorf("the queue holds %v, want two messages in clientmqueue", q)
	}
	if n := len(mta.Delivered(t)); n != delivered {
		t.Errorf("%d messages delivered, want %d", n, delivered)
	}
	// With the daemon told to accept a bare CR, headerfix sees the From:
	// the submission program made up above the broken Date: field. An
	// added From: would go before it (two From fields); the made-up one
	// gets the value hidden behind the CR instead.
	relaxed := mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: "inet:" + td.info.Milter[0].String(), ExtraConfig: headerfixSendmailRelaxed})
	if out, err := relaxed.SubmitLocal(t, "alice@lab.example", []string{"cr2@lab.example"}, []byte(
		"Date: Fri, 8 Sep 2017 13:44:33 -0400 (EDT)\rFrom: \"Example Name\" <example@example.com>\nSubject: line ends\n\nBody.\n")); err != nil || out != "" {
		t.Fatalf("sendmail: %v, output %q", err, out)
	}
	d = relaxed.WaitDelivered(t, 1, 20*time.Second)[0]
	one(d, "From", `"Example Name" <example@example.com>`)
	one(d, "Date", "Fri, 8 Sep 2017 13:44:33 -0400 (EDT)")
	one(d, "Message-ID", "")
	one(d, "X-Sluice-Repaired", "split Date/From, dropped From added by MTA")
	// A Message-ID, spelt otherwise than the program's Message-Id: that
	// one is deleted and the sender's added.
	if out, err := relaxed.SubmitLocal(t, "alice@lab.example", []string{"cr3@lab.example"}, []byte(
		"Subject: line ends\rMessage-ID: <m3@example.com>\n\nBody.\n")); err != nil || out != "" {
		t.Fatalf("sendmail: %v, output %q", err, out)
	}
	d = relaxed.WaitDelivered(t, 2, 20*time.Second)[1]
	one(d, "Message-ID", "<m3@example.com>")
	one(d, "Subject", "line ends")
	one(d, "From", "alice@lab.example")
	one(d, "X-Sluice-Repaired", "split Subject/Message-ID, dropped Message-Id added by MTA")
	// With the sender's full name (-F; the program drops it when -f names
	// another user than the caller), the program's From: is "Full Name
	// <sender>", as the control message without a CR shows; it is
	// replaced all the same.
	root := "root@" + relaxed.Hostname()
	for _, raw := range []string{
		"Subject: control\n\nBody.\n",
		"Date: Fri, 8 Sep 2017 13:44:33 -0400 (EDT)\rFrom: \"Example Name\" <example@example.com>\nSubject: line ends\n\nBody.\n",
	} {
		if out, err := relaxed.SubmitLocal(t, root, []string{"cr4@lab.example"}, []byte(raw), "-F", "Alice Example"); err != nil || out != "" {
			t.Fatalf("sendmail -F: %v, output %q", err, out)
		}
	}
	for _, d := range relaxed.WaitDelivered(t, 4, 20*time.Second)[2:] {
		if d.Get("Subject") == "control" {
			one(d, "From", "Alice Example <"+root+">")
			continue
		}
		one(d, "From", `"Example Name" <example@example.com>`)
		one(d, "X-Sluice-Repaired", "split Date/From, dropped From added by MTA")
	}

	m := td.metrics(t)
	for _, want := range []string{
		`sluice_messages_total{verdict="accept"} 8`, // ok, ok2, two bounces, cr2, cr3, two to cr4
		`sluice_messages_total{verdict="reject"} 2`,
		`sluice_messages_total{verdict="tempfail"} 1`,
		`sluice_messages_total{verdict="discard"} 1`,
		`sluice_messages_total{verdict="quarantine"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "sluice_messages_total"))
		}
	}
}
