package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Postfix removes Bcc, Resent-Bcc, Content-Length and Return-Path from a
// message as it comes in, before its milters see the header (its default
// message_drop_headers). sluice test --mta postfix must hand the filters
// the header without them, or their words count for the Bayes filter: a
// short ham whose client wrote a Bcc and a Return-Path full of spam words
// is delivered as ham by the daemon and would be shown as unsure, and
// held, by sluice test.
func TestDryRunPostfixDroppedFields(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	trainFixtures(t, filepath.Join(state, "bayes.db"))
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
    options:
      ham_cutoff: 0.2
      unsure:
        action: quarantine
`, sock, state))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	spamWords := "Transfer approval now crypto double gift weight account meds. Risk money unclaimed miracle gift offer bitcoin " +
		"inheritance cheap tonight. Claim meds tonight password meds exclusive unsubscribe password."
	msg := "Return-Path: <winner@casino-royal.example>\n" +
		"Bcc: \"" + spamWords + "\" <jackpot@casino-royal.example>\n" +
		"Content-Length: 12\n" +
		"From: erin@lab.example\nTo: bob@lab.example\nSubject: Budget for the new test machines\n" +
		"Date: Mon, 21 Jan 2024 10:20:00 +0000\nMessage-ID: <95dfed9d7a@lab.example>\n" +
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n" +
		"Merge server logs tracker review garden reviewer deadline changes.\n"
	file := filepath.Join(t.TempDir(), "bcc.eml")
	if err := os.WriteFile(file, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}

	logStart := len(td.log.String())
	c := mtatest.DialSMTPFrom(t, mta.Addr(), "127.0.0.1")
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	if r := c.Send("erin@lab.example", []string{"bob@lab.example"}, toCRLF([]byte(msg))); r.Code != 250 {
		t.Fatalf("the message was refused: %v", r)
	}
	c.Quit()
	daemon := dryRunDaemonLine(t, td, logStart)
	var delivered string
	for _, f := range mta.WaitDelivered(t, 1, 20*time.Second)[0].Header {
		if f.Name == "X-Sluice-Bayes" {
			delivered = f.Value
		}
	}

	cr := runCLI(t, "", "test", "--config", td.config, "--format", "json", "--client-name", daemon.clientName,
		"--helo", "client.example", "--rcpt", "bob@lab.example", "--queue-id", daemon.fields["queue_id"], file)
	var rep testReport
	if err := json.Unmarshal([]byte(cr.stdout), &rep); err != nil {
		t.Fatalf("sluice test: exit %d, %v\n%s%s", cr.code, err, cr.stdout, cr.stderr)
	}
	if rep.Verdict != daemon.fields["verdict"] {
		t.Errorf("verdict: sluice test %s (%s), daemon %s", rep.Verdict, rep.Reason, daemon.fields["verdict"])
	}
	// The client's Return-Path still names the sender, as without the
	// drop.
	if rep.Envelope == nil || rep.Envelope.From != "winner@casino-royal.example" {
		t.Errorf("sluice test: envelope %+v, want the sender of the Return-Path", rep.Envelope)
	}
	if !slices.ContainsFunc(rep.Edits, func(e testEdit) bool { return e.Name == "X-Sluice-Bayes" && e.Value == delivered }) {
		t.Errorf("delivered X-Sluice-Bayes: %s\nsluice test's edits: %+v", delivered, rep.Edits)
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", strings.TrimSpace(td.log.String()))
	}
}
