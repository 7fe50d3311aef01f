package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Many transactions on one SMTP connection through Postfix, each ending
// differently, with every verdict archived to a target of its own and
// bodies spilled to disk: refused at MAIL FROM, rejected at end of
// message, delivered, abandoned with RSET before DATA, discarded,
// deferred, held, and one cut off in the middle of DATA by the client,
// then a message on a new connection. Some transactions follow the
// last without RSET, as a client may after a final reply. Nothing of
// one message may reach the next: each archived copy and each log line
// has its own recipients and verdict, each delivered copy one tag, and
// no spilled body is left behind.
func TestSessionManyTransactionsPostfix(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	spill := filepath.Join(dir, "spill")
	rules := filepath.Join(dir, "senders")
	if err := os.WriteFile(rules, []byte("blocked.example\tREJECT\nhold.example\tQUARANTINE:held for review\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
body:
  memory_limit: 0
  temp_dir: %s
filters:
  - type: senders
    options:
      files:
        - %s
  - type: script
  - type: archive
    options:
      targets:
        default: archive/default.mbox
        reject: archive/reject.mbox
        tempfail: archive/tempfail.mbox
        discard: archive/discard.mbox
        quarantine: archive/quarantine.mbox
`, sock, dir, spill, rules))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock})

	msg := func(subject string) []byte {
		return []byte("From: alice@example.org\r\nSubject: " + subject + "\r\nMessage-ID: <" + subject + "@example.org>\r\n\r\nBody of " + subject + ".\r\n")
	}
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	steps := []struct {
		from, subject string
		rcpts         []string
		reply         string // the final reply, less a queue id
		rset          bool   // RSET after it
	}{
		{"x@blocked.example", "m1", []string{"ok@lab.example"}, "550 5.7.1 Access denied", false},
		{"alice@example.org", "m2", []string{"reject@lab.example", "ok1@lab.example"}, "550 5.7.1 Rejected by test filter", false},
		{"alice@example.org", "m3", []string{"ok2@lab.example", "ok3@lab.example"}, "250", false},
		{"alice@example.org", "m5", []string{"discard@lab.example"}, "250", true},
		{"alice@example.org", "m6", []string{"tempfail@lab.example"}, "451 4.7.1 Deferred by test filter", false},
		{"alice@example.org", "m7", []string{"ok5@lab.example"}, "250", true},
		{"bob@hold.example", "m8", []string{"ok6@lab.example"}, "250", false},
	}
	for i, st := range steps {
		if i == 3 {
			// m4: abandoned before DATA.
			c.Cmd("MAIL FROM:<alice@example.org>")
			c.Cmd("RCPT TO:<ok4@lab.example>")
			c.Cmd("RSET")
		}
		r := c.Send(st.from, st.rcpts, msg(st.subject))
		got := r.String()
		if r.QueueID() != "" {
			got = "250"
		}
		if !strings.HasPrefix(got, st.reply) {
			t.Errorf("%s: %q, want %q", st.subject, got, st.reply)
		}
		// A refusal at MAIL FROM leaves no transaction, and the reply
		// to the end of data ends it: the client may go on without RSET.
		if st.rset {
			c.Cmd("RSET")
		}
	}
	// m9: the client goes away in the middle of the body.
	for _, cmd := range []string{"MAIL FROM:<alice@example.org>", "RCPT TO:<ok7@lab.example>", "DATA"} {
		c.Cmd(cmd)
	}
	if err := c.WriteRaw([]byte("From: alice@example.org\r\nSubject: m9\r\n\r\nthe first part of a body that never ends\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	c.Close()
	mta.WaitLog(t, "lost connection after DATA", 10*time.Second)

	c = mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	if r := c.Send("alice@example.org", []string{"ok8@lab.example"}, msg("m10")); r.Code != 250 {
		t.Errorf("m10: %v", r)
	}
	c.Quit()

	mta.WaitDelivered(t, 4, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	var delivered []string
	for _, d := range mta.Delivered(t) {
		delivered = append(delivered, d.Get("Subject")+" "+d.Recipient())
		if tags := d.Values("X-Sluice-Test"); len(tags) != 1 {
			t.Errorf("%s to %s: X-Sluice-Test %q, want one", d.Get("Subject"), d.Recipient(), tags)
		}
	}
	slices.Sort(delivered)
	if want := []string{"m10 ok8@lab.example", "m3 ok2@lab.example", "m3 ok3@lab.example", "m7 ok5@lab.example"}; !slices.Equal(delivered, want) {
		t.Errorf("delivered %q, want %q", delivered, want)
	}
	if held := mta.Held(t); len(held) != 1 {
		t.Errorf("held %v, want m8 alone", held)
	}

	// Every archived copy, by target: subject, recipients, verdict.
	var archived []string
	for _, target := range []string{"default", "reject", "tempfail", "discard", "quarantine"} {
		for _, rec := range chainArchive(t, filepath.Join(dir, "archive", target+".mbox")) {
			archived = append(archived, target+": "+rec.subject+" "+strings.Join(rec.to, ",")+" | "+rec.verdict)
		}
	}
	want := []string{
		"default: m3 ok2@lab.example,ok3@lab.example | default; action=accept",
		"default: m7 ok5@lab.example | default; action=accept",
		"default: m10 ok8@lab.example | default; action=accept",
		`reject: m2 reject@lab.example,ok1@lab.example | reject; action=reject; filter=script; reason="recipient reject@lab.example"`,
		`tempfail: m6 tempfail@lab.example | tempfail; action=tempfail; filter=script; reason="recipient tempfail@lab.example"`,
		`discard: m5 discard@lab.example | discard; action=discard; filter=script; reason="recipient discard@lab.example"`,
		`quarantine: m8 ok6@lab.example | quarantine; action=quarantine; filter=senders; reason="mail_from bob@hold.example matches hold.example (` + rules + `:2): QUARANTINE:held for review"`,
	}
	if !slices.Equal(archived, want) {
		t.Errorf("archived\n\t%s\nwant\n\t%s", strings.Join(archived, "\n\t"), strings.Join(want, "\n\t"))
	}

	// The daemon's message lines: one per message, m4 and m9 aborted.
	// A line is written as sluice ends the message, which may come after
	// the MTA is done with it.
	waitFor(t, func() bool { return strings.Count(td.log.String(), "msg=message") >= 9 })
	var lines []string
	for _, line := range strings.Split(td.log.String(), "\n") {
		if !strings.Contains(line, "msg=message") {
			continue
		}
		var verdict, rcpts string
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "verdict="); ok {
				verdict = v
			}
			if v, ok := strings.CutPrefix(f, "rcpts="); ok {
				rcpts = v
			}
		}
		lines = append(lines, verdict+" "+rcpts)
	}
	wantLines := []string{
		`reject ""`, // m1, refused at MAIL FROM
		"reject reject@lab.example,ok1@lab.example",
		"accept ok2@lab.example,ok3@lab.example",
		"aborted ok4@lab.example",
		"discard discard@lab.example",
		"tempfail tempfail@lab.example",
		"accept ok5@lab.example",
		"quarantine ok6@lab.example",
		"aborted ok7@lab.example",
		"accept ok8@lab.example",
	}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("message lines\n\t%s\nwant\n\t%s", strings.Join(lines, "\n\t"), strings.Join(wantLines, "\n\t"))
	}
	if left, err := os.ReadDir(spill); err != nil || len(left) != 0 {
		t.Errorf("spill directory holds %d files (%v), want none", len(left), err)
	}
}
