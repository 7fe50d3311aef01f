package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// startDaemonWith is startDaemon with the shipped filters (bayes) as
// well as the test filters registered.
func startDaemonWith(t *testing.T, configText string) *testDaemon {
	t.Helper()
	return startDaemonReg(t, configText, testRegistry())
}

// End to end through real Postfix: the daemon (in-process, on a unix
// socket) runs the bayes filter on a store trained from the fixtures.
// Spam is rejected with the configured reply, ham arrives with the
// X-Sluice-Bayes header, and a user retraining the delivered copy moves
// the message the daemon auto-learned, while the daemon runs.
func TestBayesEndToEndPostfix(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)

	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
log:
  level: debug
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
    on_failure: tempfail
    options:
      spam:
        action: reject
        reply: "554 5.7.1 Spam rejected (spamicity {spamicity}, queue id {queue_id})"
      autolearn:
        ham: 0.05
`, sock, state))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	crlf := func(name string) []byte {
		raw, err := os.ReadFile(fixture("check", name))
		if err != nil {
			t.Fatal(err)
		}
		return []byte(strings.ReplaceAll(string(raw), "\n", "\r\n"))
	}
	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	r := c.Send("promo@casino-royal.example", []string{"bob@lab.example"}, crlf("spam.eml"))
	spamReply := regexp.MustCompile(`^5\.7\.1 Spam rejected \(spamicity (0\.9\d{5}|1\.000000), queue id [0-9A-Za-z]+\)$`)
	if r.Code != 554 || !spamReply.MatchString(r.Text) {
		t.Errorf("spam: reply %v, want 554 matching %s", r, spamReply)
	}
	c.Cmd("RSET")
	ham := c.Send("erin@lab.example", []string{"bob@lab.example"}, crlf("ham.eml"))
	if ham.Code != 250 || ham.QueueID() == "" {
		t.Fatalf("ham: reply %v", ham)
	}
	c.Cmd("RSET")
	// A sender's own verdict header is replaced, not kept beside ours.
	forged := append([]byte("X-Sluice-Bayes: Ham, spamicity=0.000000\r\n"), crlf("ham.eml")...)
	forged = []byte(strings.Replace(string(forged), "Subject: ", "Subject: Fwd: ", 1))
	fr := c.Send("erin@lab.example", []string{"carol@lab.example"}, forged)
	if fr.Code != 250 {
		t.Fatalf("forged: reply %v", fr)
	}
	c.Quit()

	mta.WaitDelivered(t, 2, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	ds := mta.Delivered(t)
	if len(ds) != 2 {
		t.Fatalf("%d messages delivered, want 2 (the spam must not arrive)", len(ds))
	}
	var hamFile string
	for _, d := range ds {
		vs := d.Values("X-Sluice-Bayes")
		if len(vs) != 1 {
			t.Errorf("to %s: X-Sluice-Bayes %q, want exactly one", d.Recipient(), vs)
			continue
		}
		got := strings.ReplaceAll(vs[0], "\n", "")
		switch d.Recipient() {
		case "bob@lab.example":
			hamFile = d.File
			want := regexp.MustCompile(`^Ham, spamicity=0\.0\d{5}, queue_id=` + ham.QueueID() + `, version=` + regexp.QuoteMeta(version) + `, autolearn=ham$`)
			if !want.MatchString(got) {
				t.Errorf("ham header %q does not match %s", got, want)
			}
		case "carol@lab.example":
			if !strings.HasPrefix(got, "Ham, spamicity=") || !strings.Contains(got, "queue_id="+fr.QueueID()) {
				t.Errorf("forwarded ham header %q", got)
			}
		default:
			t.Errorf("unexpected delivery to %s", d.Recipient())
		}
	}
	if hamFile == "" {
		t.Fatal("the ham message was not delivered")
	}

	// The user decides the delivered ham was spam after all and trains
	// the copy from the Maildir, with the MTA's trace fields and the
	// verdict header: it is the message the daemon learned, so it moves.
	tr := runCLI(t, "", "train", "--db", db, "--spam", hamFile)
	if want := "1 message: 0 learned as spam, 0 already learned, 1 moved from ham to spam, 0 errors\n"; tr.code != 0 || tr.stdout != want {
		t.Errorf("retraining the delivered copy: %+v, want %q", tr, want)
	}

	m := td.metrics(t)
	for _, want := range []string{
		`sluice_bayes_messages_total{filter="bayes",verdict="spam"} 1`,
		`sluice_bayes_messages_total{filter="bayes",verdict="ham"} 2`,
		`sluice_bayes_autolearned_total{class="ham",filter="bayes"} 2`, // the forwarded copy is another message
		`sluice_bayes_spamicity_count{filter="bayes"} 3`,
		`sluice_bayes_classify_duration_seconds_count{filter="bayes"} 3`,
		`sluice_bayes_store_messages{class="spam",filter="bayes"} 14`,
		`sluice_messages_total{verdict="reject"} 1`,
		`sluice_messages_total{verdict="accept"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^sluice_bayes_store_tokens\{filter="bayes"\} [1-9]\d*$`).MatchString(m) {
		t.Error("metrics lack the store's token count")
	}
}

// The daemon keeps the store open between messages; training from the
// command line meanwhile works and the daemon sees it; a reload rebuilds
// the filter on the same store, and the metrics go on counting.
func TestBayesDaemonTrainingAndReload(t *testing.T) {
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)
	cfg := func(header string) string {
		return fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
    options:
      stats_interval: 50ms
      header:
        name: %s
`, state, header)
	}
	td := startDaemonWith(t, cfg("X-First"))
	verdict := regexp.MustCompile(`^(Spam|Ham|Unsure), spamicity=`)
	if name, value := td.addedHeader(t); name != "X-First" || !verdict.MatchString(value) {
		t.Fatalf("header %q: %q", name, value)
	}

	// Train while the daemon holds the store; it then reports the new
	// totals without a reload.
	if r := runCLI(t, "", "train", "--db", db, "--spam", fixture("check", "spam.eml")); r.code != 0 || !strings.HasPrefix(r.stdout, "1 message: 1 learned") {
		t.Fatalf("train while the daemon runs: %+v", r)
	}
	waitFor(t, func() bool {
		return strings.Contains(td.metrics(t), `sluice_bayes_store_messages{class="spam",filter="bayes"} 15`)
	})

	os.WriteFile(td.config, []byte(cfg("X-Second")), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	if name, value := td.addedHeader(t); name != "X-Second" || !verdict.MatchString(value) {
		t.Fatalf("after reload: header %q: %q", name, value)
	}
	// The new filter reads the store too: training goes on working.
	if r := runCLI(t, "", "train", "--db", db, "--ham", fixture("check", "ham.eml")); r.code != 0 {
		t.Fatalf("train after reload: %+v", r)
	}
	if name, _ := td.addedHeader(t); name != "X-Second" {
		t.Fatalf("after training: header %q", name)
	}
	m := td.metrics(t)
	total := 0
	for _, v := range []string{"spam", "ham", "unsure"} {
		re := regexp.MustCompile(`sluice_bayes_messages_total\{filter="bayes",verdict="` + v + `"\} (\d+)`)
		if mm := re.FindStringSubmatch(m); mm != nil {
			n, _ := strconv.Atoi(mm[1])
			total += n
		}
	}
	if total != 3 {
		t.Errorf("sluice_bayes_messages_total adds up to %d across the reload, want 3", total)
	}
}

// What Postfix makes of a bayes reply text that milters find awkward: a
// literal "%" (which both MTAs read as an escape, so sluice doubles it),
// a literal "{", and a template of the longest text allowed: 400
// characters with {queue_id} at its longest (64), so that no queue id
// makes the reply longer than a reply may be and none is cut. The client
// must get exactly the rendered text after the code and enhanced status,
// and the spam must not be delivered.
func TestBayesReplyTextThroughPostfix(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	trainFixtures(t, filepath.Join(state, "bayes.db"))
	head := "Spam, 100% sure, queue id "
	tail := " { " + strings.Repeat("x", 400-len(head)-64-len(" { "))
	tmpl := head + "{queue_id}" + tail
	sock := filepath.Join(socketDir(t), "sluice.sock")
	startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: ""
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
    on_failure: accept
    options:
      spam:
        action: reject
        reply: "554 5.7.1 %s"
`, sock, state, tmpl))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	raw, err := os.ReadFile(fixture("check", "spam.eml"))
	if err != nil {
		t.Fatal(err)
	}
	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	r := c.Send("promo@casino-royal.example", []string{"bob@lab.example"}, []byte(strings.ReplaceAll(string(raw), "\n", "\r\n")))
	c.Quit()
	m := regexp.MustCompile(`^5\.7\.1 ` + regexp.QuoteMeta(head) + `([0-9A-Za-z]+) `).FindStringSubmatch(r.Text)
	if r.Code != 554 || m == nil {
		t.Fatalf("spam: reply %d %q, want 554 with the rendered text", r.Code, r.Text)
	}
	if want := "5.7.1 " + head + m[1] + tail; r.Text != want {
		t.Errorf("reply text\n%q\nwant\n%q, whole", r.Text, want)
	}
	mta.WaitIdle(t, 20*time.Second)
	if ds := mta.Delivered(t); len(ds) != 0 {
		t.Errorf("%d messages delivered, want none", len(ds))
	}
}

// A reply whose text starts with a digit and has no enhanced status code
// ("554 {spamicity} is over the line") reaches the client with 5.0.0 in
// front, which Postfix needs there (see filters.Reply.Sent). The
// daemon's log line and sluice test must name the reply the client got,
// the one the MTA's log and the sender's bounce quote, so that a
// postmaster searching for it finds it.
func TestBayesReplyStartingWithDigitAsTheClientGetsIt(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	trainFixtures(t, filepath.Join(state, "bayes.db"))
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: ""
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
    on_failure: accept
    options:
      spam:
        action: reject
        reply: "554 {spamicity} is over the spam cutoff"
`, sock, state))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	raw, err := os.ReadFile(fixture("check", "spam.eml"))
	if err != nil {
		t.Fatal(err)
	}
	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	r := c.Send("promo@casino-royal.example", []string{"bob@lab.example"}, toCRLF(raw))
	c.Quit()
	got := fmt.Sprintf("%d %s", r.Code, r.Text)
	if !regexp.MustCompile(`^554 5\.0\.0 [01]\.\d{6} is over the spam cutoff$`).MatchString(got) {
		t.Fatalf("the client got %q, want 554 5.0.0 and the rendered text", got)
	}
	daemon := dryRunDaemonLine(t, td, 0)
	if daemon.fields["reply"] != got {
		t.Errorf("the daemon logs reply=%q, the client got %q", daemon.fields["reply"], got)
	}
	cr := runCLI(t, "", "test", "--config", td.config, "--format", "json", "--from", "promo@casino-royal.example",
		"--rcpt", "bob@lab.example", fixture("check", "spam.eml"))
	var rep testReport
	if err := json.Unmarshal([]byte(cr.stdout), &rep); err != nil {
		t.Fatalf("sluice test: exit %d, %v\n%s%s", cr.code, err, cr.stdout, cr.stderr)
	}
	if rep.Reply != got {
		t.Errorf("sluice test says reply %q, the client got %q", rep.Reply, got)
	}
	for _, d := range rep.Decisions {
		if d.Action == "reject" && d.Reply != got {
			t.Errorf("sluice test says %s's reply is %q, the client got %q", d.Filter, d.Reply, got)
		}
	}
}
