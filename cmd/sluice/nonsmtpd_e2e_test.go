package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Mail submitted on the host with Postfix's sendmail(1), through a real
// Postfix with non_smtpd_milters = $smtpd_milters (docs/postfix.md,
// "Mail submitted on the host"). Postfix's sendmail only drops the
// message into the maildrop queue and exits 0; pickup(8) hands it to
// cleanup(8), which runs the milters with a simulated connect from
// localhost[127.0.0.1], port 0, and HELO localhost, and acts on their
// verdict where no client is left to tell:
//
//   - reject: the message bounces to the envelope sender at once;
//   - tempfail: the message stays in the maildrop queue and is tried again
//     (with a new queue id) at each scan of pickup(8);
//   - discard and quarantine as for SMTP mail;
//   - sluice down, with milter_default_action = tempfail: as a tempfail.

// nonSMTPDConfig is the daemon's config for these tests: headerfix,
// senders, dnsbl with its default skip_private, and the script filter.
func nonSMTPDConfig(sock, state, rules, dnsAddr string) string {
	return fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: headerfix
  - type: senders
    options:
      files:
        - %s
  - type: dnsbl
    options:
      servers: ["%s"]
      timeout: 500ms
      attempts: 2
      zones:
        - zone: bl.test
  - type: script
    options:
      reject_text: Rejected by test filter for 100%% sure
`, sock, state, rules, dnsAddr)
}

// nonSMTPDLine returns the daemon's message line for the queue id, or "".
func nonSMTPDLine(td *testDaemon, queueID string) string {
	for _, line := range strings.Split(td.log.String(), "\n") {
		if strings.Contains(line, "msg=message ") && strings.Contains(line, " queue_id="+queueID+" ") {
			return line
		}
	}
	return ""
}

// nonSMTPDQueueID returns the queue id in Postfix's own Received: field
// of a locally submitted message ("by HOST (Postfix, from userid 0)\n\tid
// QUEUEID; DATE").
func nonSMTPDQueueID(t *testing.T, d mtatest.Delivered) string {
	t.Helper()
	m := regexp.MustCompile(`\(Postfix, from userid \d+\)\s+id ([0-9A-Za-z]+);`).FindStringSubmatch(d.Get("Received"))
	if m == nil {
		t.Fatalf("delivered to %s: Received %q is not Postfix's for a local submission", d.Recipient(), d.Get("Received"))
	}
	return m[1]
}

// nonSMTPDWaitLog waits until the daemon's log holds n lines containing
// every one of substrs, and returns them.
func nonSMTPDWaitLog(t *testing.T, td *testDaemon, n int, substrs ...string) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got []string
	lines:
		for _, line := range strings.Split(td.log.String(), "\n") {
			for _, s := range substrs {
				if !strings.Contains(line, s) {
					continue lines
				}
			}
			got = append(got, line)
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d daemon log lines with %q after 20s, want %d", len(got), substrs, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nonSMTPDMaildrop waits until the queue holds exactly one message, in
// the maildrop queue (cleanup(8) removes the queue file of a refused try
// a moment after the milter's reply), and returns it.
func nonSMTPDMaildrop(t *testing.T, mta *mtatest.MTA) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q := mta.Queued(t)
		if len(q) == 1 && strings.HasPrefix(q[0], "maildrop/") {
			return q[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue holds %v, want one message in maildrop/", q)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNonSMTPDMiltersPostfix(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o755)
	rules := filepath.Join(dir, "senders")
	sendersWriteFile(t, rules, "From:spammer@lab.example\tREJECT\n")
	// A list with its test entry only (1.0.0.127, the simulated client,
	// is its never-listed entry, which the filter's probe checks).
	dnsSrv := dnsbltest.Start(t)
	dnsSrv.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, nonSMTPDConfig(sock, state, rules, dnsSrv.Addr))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail", NonSMTPDMilters: true})

	submit := func(from, rcpt, raw string, args ...string) {
		t.Helper()
		out, err := mta.SubmitLocal(t, from, []string{rcpt}, []byte(raw), args...)
		// sendmail(1) never waits for the milter: it succeeds whatever
		// sluice decides.
		if err != nil || out != "" {
			t.Fatalf("sendmail -f %q %s: %v, output %q; want success", from, rcpt, err, out)
		}
	}
	plain := func(from, rcpt string) string {
		return "From: " + from + "\nTo: " + rcpt + "\nSubject: local to " + rcpt + "\n\nHello.\n"
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

	// Accepted: the pipeline runs as for SMTP mail. What sluice sees of
	// the simulated connect is in the filters' view (the script's header)
	// and in the log line, written as Postfix writes the client in its
	// own log ("milter-reject: ... from localhost[127.0.0.1]").
	submit("alice@lab.example", "ok@lab.example", plain("alice@lab.example", "ok@lab.example"))
	d := next("ok@lab.example")
	if got, want := d.Get("X-Sluice-Test"), "client=127.0.0.1 helo=localhost"; got != want {
		t.Errorf("X-Sluice-Test %q, want %q", got, want)
	}
	id := nonSMTPDQueueID(t, d)
	line := nonSMTPDLine(td, id)
	for _, want := range []string{
		"client=localhost[127.0.0.1] helo=localhost from=alice@lab.example rcpts=ok@lab.example verdict=accept",
		"dnsbl@connect=continue", "script@eom=continue",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("message line for %s lacks %q:\n%s", id, want, line)
		}
	}
	// dnsbl skips the loopback client (skip_private, the default): the
	// list is up, but no lookup is made for the simulated client (the
	// queries the DNS server saw for 1.0.0.127 are the filter's health
	// probes, not counted as lookups).
	m := td.metrics(t)
	if up := dnsblMetric(m, "sluice_dnsbl_list_up", `zone="bl.test"`); up != 1 {
		t.Errorf("sluice_dnsbl_list_up{zone=\"bl.test\"} = %v, want 1", up)
	}
	for _, l := range strings.Split(grepLines(m, "sluice_dnsbl_lookups_total{"), "\n") {
		if strings.Contains(l, `zone="bl.test"`) && !strings.HasSuffix(l, " 0") {
			t.Errorf("dnsbl looked the simulated client up: %s", l)
		}
	}
	if tag := d.Get("X-Sluice-DNSBL"); tag != "" {
		t.Errorf("dnsbl tagged local mail: %q", tag)
	}

	// headerfix: sendmail(1) keeps a bare CR that smtpd would have
	// turned into a space, and cleanup(8), seeing no From, makes one up
	// with the submitting user's full name ("Alice Example
	// <alice@lab.example>"). headerfix splits the hidden From off and
	// drops the made-up one: the message keeps a single From.
	submit("alice@lab.example", "cr@lab.example",
		"Date: Fri, 8 Sep 2017 13:44:33 -0400 (EDT)\rFrom: \"Example Name\" <example@example.com>\nSubject: line ends\n\nBody.\n",
		"-F", "Alice Example")
	d = next("cr@lab.example")
	if got, want := d.Values("From"), []string{`"Example Name" <example@example.com>`}; !slices.Equal(got, want) {
		t.Errorf("From fields %q, want %q", got, want)
	}
	if got, want := d.Get("X-Sluice-Repaired"), "split Date/From, dropped From added by MTA"; got != want {
		t.Errorf("X-Sluice-Repaired %q, want %q", got, want)
	}
	if got := d.Get("Date"); got != "Fri, 8 Sep 2017 13:44:33 -0400 (EDT)" {
		t.Errorf("Date %q", got)
	}

	// Rejected at the end of the message: the sender gets Postfix's
	// bounce with sluice's reply text. The bounce itself is generated
	// inside Postfix and does not pass the milters.
	submit("alice@lab.example", "reject@lab.example", plain("alice@lab.example", "reject@lab.example"))
	d = next("alice@lab.example")
	if d.Get("Subject") != "Undelivered Mail Returned to Sender" || !strings.Contains(string(d.Body), "<reject@lab.example>: Rejected by test filter for 100% sure") ||
		!strings.Contains(string(d.Body), "Status: 5.7.1") {
		t.Errorf("bounce for the rejected message:\n%s", d.Raw)
	}
	mta.WaitLog(t, "milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.1 Rejected by test filter for 100% sure", 5*time.Second)
	mta.WaitLog(t, "to=<reject@lab.example>, relay=none", 5*time.Second)

	// Rejected at MAIL FROM by a senders rule: bounced to that sender
	// likewise.
	submit("spammer@lab.example", "ok2@lab.example", plain("spammer@lab.example", "ok2@lab.example"))
	d = next("spammer@lab.example")
	if !strings.Contains(string(d.Body), "<ok2@lab.example>: Access denied") {
		t.Errorf("bounce for the sender rejected at MAIL FROM:\n%s", d.Raw)
	}
	mta.WaitLog(t, "milter-reject: MAIL from localhost[127.0.0.1]: 5.7.1 Access denied; from=<spammer@lab.example>", 5*time.Second)

	// Discarded: gone, as over SMTP, with no bounce. Quarantined: held.
	submit("alice@lab.example", "discard@lab.example", plain("alice@lab.example", "discard@lab.example"))
	mta.WaitLog(t, "milter-discard: END-OF-MESSAGE from localhost[127.0.0.1]", 20*time.Second)
	submit("alice@lab.example", "quarantine@lab.example", plain("alice@lab.example", "quarantine@lab.example"))
	deadline := time.Now().Add(20 * time.Second)
	for len(mta.Held(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("quarantined local message not held")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Rejected with the null sender (as a vacation program or a bounce
	// generator submits): there is no one to bounce to, and with
	// Postfix's default notify_classes the message is dropped with
	// "status=bounced" in Postfix's log and sluice's reject line as its
	// only trace (2bounce in notify_classes, below, changes that).
	submit("", "reject@lab.example", plain("daemon@lab.example", "reject@lab.example"))
	nonSMTPDWaitLog(t, td, 1, `from="" rcpts=reject@lab.example verdict=reject`)
	mta.WaitLog(t, "from=<> to=<reject@lab.example>", 5*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	if n := len(mta.Delivered(t)); n != delivered {
		t.Errorf("%d messages delivered, want %d: nothing for discard, quarantine or the null sender's reject", n, delivered)
	}

	// Tempfail: sendmail has long exited 0. The message stays in the
	// maildrop queue (postqueue -p lists it under its maildrop name);
	// each scan of pickup(8) offers it again with a new queue id, and
	// sluice logs each try. Nothing is bounced or lost.
	submit("alice@lab.example", "tempfail@lab.example", plain("alice@lab.example", "tempfail@lab.example"))
	nonSMTPDWaitLog(t, td, 1, "rcpts=tempfail@lab.example verdict=tempfail")
	q := nonSMTPDMaildrop(t, mta)
	mta.KickPickup(t)
	again := nonSMTPDWaitLog(t, td, 2, "rcpts=tempfail@lab.example verdict=tempfail")
	if again[0] == again[1] || !strings.Contains(again[1], "client=localhost[127.0.0.1] helo=localhost") {
		t.Errorf("second try: %q", again)
	}
	if got := nonSMTPDMaildrop(t, mta); got != q {
		t.Errorf("after the second tempfail the maildrop queue holds %s, want %s", got, q)
	}
	// postqueue -p (mailq) lists it under its maildrop queue id.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	mailq, err := exec.CommandContext(ctx, "/usr/sbin/postqueue", "-c", filepath.Join(mta.Dir(), "etc"), "-p").CombinedOutput()
	cancel()
	if id := strings.TrimPrefix(q, "maildrop/"); err != nil || !strings.Contains(string(mailq), id) || !strings.Contains(string(mailq), "tempfail@lab.example") {
		t.Errorf("postqueue -p: %v\n%s\nwant %s to tempfail@lab.example listed", err, mailq, id)
	}

	// With sluice stopped, milter_default_action = tempfail does the
	// same to a new message: it waits in the maildrop queue.
	if err := td.stop(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	submit("alice@lab.example", "down@lab.example", plain("alice@lab.example", "down@lab.example"))
	mta.WaitLog(t, "milter-reject: CONNECT from localhost[127.0.0.1]: 4.7.1 Service unavailable - try again later", 20*time.Second)
	deadline = time.Now().Add(10 * time.Second)
	for q := mta.Queued(t); len(q) != 2 || !strings.HasPrefix(q[0], "maildrop/") || !strings.HasPrefix(q[1], "maildrop/"); q = mta.Queued(t) {
		if time.Now().After(deadline) {
			t.Fatalf("with sluice down the queue holds %v, want two messages in maildrop/", q)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// With sluice back and its verdict changed (here: a daemon whose
	// pipeline has no filter, on the same socket), the next scan
	// delivers both.
	td2 := startDaemonWith(t, fmt.Sprintf("listen:\n  - address: unix:%s\n    mode: \"0666\"\nmetrics:\n  listen: 127.0.0.1:0\nshutdown_timeout: 5s\nfilters: []\n", sock))
	mta.KickPickup(t)
	delivered += 2
	ds := mta.WaitDelivered(t, delivered, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	got := []string{ds[len(ds)-2].Recipient(), ds[len(ds)-1].Recipient()}
	slices.Sort(got)
	if want := []string{"down@lab.example", "tempfail@lab.example"}; !slices.Equal(got, want) {
		t.Errorf("delivered once sluice accepts: %v, want %v", got, want)
	}
	// No bounce or delay warning came meanwhile.
	if n := len(mta.Delivered(t)); n != delivered {
		t.Errorf("%d messages delivered, want %d", n, delivered)
	}
	if err := td2.stop(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}

	// The recommended setting: a null sender's rejected message goes to
	// the postmaster (2bounce_notice_recipient) as a double bounce.
	mta2 := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail", NonSMTPDMilters: true,
		ExtraConfig: []string{"notify_classes = resource, software, 2bounce", "2bounce_notice_recipient = postmaster@lab.example"}})
	startDaemonWith(t, nonSMTPDConfig(sock, state, rules, dnsSrv.Addr))
	out, err := mta2.SubmitLocal(t, "", []string{"reject@lab.example"}, []byte(plain("daemon@lab.example", "reject@lab.example")))
	if err != nil || out != "" {
		t.Fatalf("sendmail: %v %q", err, out)
	}
	d2 := mta2.WaitDelivered(t, 1, 20*time.Second)[0]
	if d2.Recipient() != "postmaster@lab.example" || !strings.Contains(string(d2.Raw), "Rejected by test filter for 100% sure") {
		t.Errorf("with 2bounce, delivered to %s:\n%s", d2.Recipient(), d2.Raw)
	}
}
