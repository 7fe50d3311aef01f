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

	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// A copy the archive filter wrote, given back to sluice test, is tested
// with the envelope the archive recorded, as the daemon saw it: the
// sender of the mbox "From " line (or of the maildir copy's Return-Path
// on top) and the recipients of X-Sluice-Envelope-To, not the addresses
// of the message's own From and To, which a mailing list's message does
// not share with its envelope, nor a Return-Path the client wrote, which
// Sendmail keeps in the copy. The archive's own fields, which the daemon
// never saw, are no part of the message tested: the Bayes field the test
// adds is the one the copy holds. The MTA delivers the
// message; senders rules on the envelope sender alone ("From:" tag) name
// the domains of the header From and of the forged Return-Path, so a
// test run that took the sender from either would refuse what the
// daemon accepted.
func TestDryRunArchivedCopyEnvelope(t *testing.T) {
	mtatest.Require(t)
	for _, mc := range e2eMTAs {
		t.Run(mc.name, func(t *testing.T) { dryRunArchivedCopyEnvelope(t, mc) })
	}
}

func dryRunArchivedCopyEnvelope(t *testing.T, mc e2eCase) {
	state := t.TempDir()
	trainFixtures(t, filepath.Join(state, "bayes.db"))
	rules := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(rules, []byte("From:news.example\tREJECT\nFrom:forged.example\tREJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := "address: inet:127.0.0.1:0"
	sock := filepath.Join(socketDir(t), "sluice.sock")
	if mc.unix {
		listen = fmt.Sprintf("address: unix:%s\n    mode: \"0666\"", sock)
	}
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - %s
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: senders
    options:
      files: [%s]
  - type: bayes
    options:
      ham_cutoff: 0.2
  - type: archive
    name: box
    options:
      targets:
        default: archive/all.mbox
  - type: archive
    name: dir
    options:
      format: maildir
      targets:
        default: archive/all.maildir
`, listen, state, rules))
	spec := "unix:" + sock
	if !mc.unix {
		spec = "inet:" + td.info.Milter[0].String()
	}
	mta := mc.start(t, spec, "tempfail")

	const envelopeFrom = "bounce+4711@lists.example"
	rcpts := []string{"bob@lab.example", "carol@lab.example"}
	msg := "Return-Path: <ceo@forged.example>\r\nFrom: Weekly News <news@news.example>\r\nTo: subscribers@lists.example\r\n" +
		"Subject: this week\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <weekly@news.example>\r\n\r\n" +
		"Merge server logs tracker review garden reviewer deadline changes.\r\n" +
		"Test disk thursday agenda call notes alert results hotel proposal.\r\n"
	logStart := len(td.log.String())
	c := mtatest.DialSMTPFrom(t, mta.Addr(), "127.0.0.1")
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	if r := c.Send(envelopeFrom, rcpts, []byte(msg)); r.Code != 250 {
		t.Fatalf("the daemon refused the message: %v", r)
	}
	c.Quit()
	daemon := dryRunDaemonLine(t, td, logStart)
	if daemon.fields["verdict"] != "accept" {
		t.Fatalf("daemon verdict %q, want accept", daemon.fields["verdict"])
	}
	mta.WaitDelivered(t, len(rcpts), 20*time.Second)

	maildirCopies, err := filepath.Glob(filepath.Join(state, "archive", "all.maildir", "new", "*"))
	if err != nil || len(maildirCopies) != 1 {
		t.Fatalf("maildir copies %v, %v: want one", maildirCopies, err)
	}
	for _, copyPath := range []string{filepath.Join(state, "archive", "all.mbox"), maildirCopies[0]} {
		t.Run(filepath.Base(filepath.Dir(copyPath)), func(t *testing.T) {
			cr := runCLI(t, "", "test", "--config", td.config, "--format", "json", "--mta", mc.name,
				"--client-name", daemon.clientName, "--helo", "client.example", copyPath)
			var rep testReport
			if err := json.Unmarshal([]byte(cr.stdout), &rep); err != nil {
				t.Fatalf("sluice test: exit %d, %v\n%s%s", cr.code, err, cr.stdout, cr.stderr)
			}
			if rep.Envelope == nil {
				t.Fatalf("sluice test reports no envelope: %s%s", cr.stdout, cr.stderr)
			}
			if rep.Envelope.From != envelopeFrom {
				t.Errorf("sluice test: sender %q, the daemon's was %q", rep.Envelope.From, envelopeFrom)
			}
			if !slices.Equal(rep.Envelope.Rcpts, rcpts) {
				t.Errorf("sluice test: recipients %q, the daemon's were %q", rep.Envelope.Rcpts, rcpts)
			}
			if rep.Envelope.QueueID != daemon.fields["queue_id"] {
				t.Errorf("sluice test: queue id %q, the daemon's was %q", rep.Envelope.QueueID, daemon.fields["queue_id"])
			}
			if rep.Verdict != daemon.fields["verdict"] || cr.code != 0 {
				t.Errorf("sluice test: verdict %s (exit %d, reason %q), the daemon's was %s", rep.Verdict, cr.code, rep.Reason, daemon.fields["verdict"])
			}
			if got, want := dryRunDecisions(rep), daemon.decisions(); got != want {
				t.Errorf("filters:\n sluice test %s\n daemon      %s", got, want)
			}
			// The Bayes field the daemon added, which the copy holds:
			// the same spamicity of the same message, the same queue id.
			raw, err := os.ReadFile(copyPath)
			if err != nil {
				t.Fatal(err)
			}
			hdrs, _ := milter.ParseMessage(raw, milter.Postfix)
			var archived string
			for _, h := range hdrs {
				if h.Name == "X-Sluice-Bayes" {
					archived = h.Value
				}
			}
			if archived == "" || !slices.ContainsFunc(rep.Edits, func(e testEdit) bool { return e.Kind == "add" && e.Value == archived }) {
				t.Errorf("the copy holds X-Sluice-Bayes: %s\nsluice test's edits: %+v", archived, rep.Edits)
			}
		})
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", td.log)
		for _, p := range []string{filepath.Join(state, "archive", "all.mbox"), maildirCopies[0]} {
			b, _ := os.ReadFile(p)
			t.Logf("%s:\n%s", p, strings.ReplaceAll(string(b), "\r", `\r`))
		}
	}
}

// The envelope of an archive copy as sluice test reads it, for the
// copies no MTA test above makes: a bounce (the null sender, which the
// "From " line writes MAILER-DAEMON) that came with a Return-Path of the
// client's, which Sendmail keeps and archives; and a message whose
// sender wrote the archive's fields further down, which is no copy.
func TestDryRunArchivedCopyTransaction(t *testing.T) {
	tf := testFlags{clientIP: "127.0.0.1", clientName: "unknown", mta: "sendmail"}
	conn, err := tf.conn()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		fromLine  string
		msg       string
		wantFrom  string
		wantRcpts []string
		wantQueue string
		wantFirst string // the first header field the filters see
	}{
		{"mbox bounce with a forged Return-Path", "From MAILER-DAEMON Mon Dec  7 10:00:00 2026\n",
			"X-Sluice-Queue-ID: 0B7Jm1aA012345\nX-Sluice-Envelope-To: bob@lab.example\nX-Sluice-Verdict: ham; action=accept\n" +
				"Return-Path: <ceo@lab.example>\nFrom: Mail Delivery <mailer-daemon@relay.example>\nTo: alice@lab.example\n\nbody\n",
			"", []string{"bob@lab.example"}, "0B7Jm1aA012345", "Return-Path"},
		{"maildir copy with a forged Return-Path", "",
			"Return-Path: <list-bounces@lists.example>\nX-Sluice-Queue-ID: 0B7Jm1aA012346\nX-Sluice-Envelope-To: bob@lab.example\n" +
				"X-Sluice-Envelope-To: carol@lab.example\nX-Sluice-Verdict: spam; action=accept\n" +
				"Return-Path: <ceo@lab.example>\nFrom: news@news.example\nTo: list@lists.example\n\nbody\n",
			"list-bounces@lists.example", []string{"bob@lab.example", "carol@lab.example"}, "0B7Jm1aA012346", "Return-Path"},
		{"the archive's fields written by the sender", "From alice@example.org Mon Dec  7 10:00:00 2026\n",
			"From: alice@example.org\nX-Sluice-Queue-ID: 0B7Jm1aA012347\nX-Sluice-Envelope-To: mallory@example.net\nX-Sluice-Verdict: ham; action=accept\n" +
				"To: bob@lab.example\n\nbody\n",
			"alice@example.org", []string{"bob@lab.example"}, "", "From"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fromLine []byte
			if tc.fromLine != "" {
				fromLine = []byte(tc.fromLine)
			}
			tx, err := tf.transaction(conn, []byte(tc.msg), fromLine)
			if err != nil {
				t.Fatal(err)
			}
			var rcpts []string
			for _, r := range tx.Rcpts {
				rcpts = append(rcpts, r.Addr)
			}
			if tx.From.Addr != tc.wantFrom || !slices.Equal(rcpts, tc.wantRcpts) || tx.QueueID != tc.wantQueue {
				t.Errorf("envelope <%s> %q queue id %q, want <%s> %q queue id %q", tx.From.Addr, rcpts, tx.QueueID, tc.wantFrom, tc.wantRcpts, tc.wantQueue)
			}
			if len(tx.Headers) == 0 || tx.Headers[0].Name != tc.wantFirst {
				t.Errorf("the filters see %v first, want %s", tx.Headers, tc.wantFirst)
			}
		})
	}
}
