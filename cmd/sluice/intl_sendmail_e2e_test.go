package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Internationalised mail through a real Sendmail. Debian 12's Sendmail
// 8.17 is built without USE_EAI (sendmail -d0.1 lists no EAI): it does
// not offer SMTPUTF8 and refuses the parameter, so the SMTPUTF8 checks of
// TestIntlEndToEndPostfix have no Sendmail counterpart. It takes raw UTF-8
// all the same, in header fields and, without SMTPUTF8, in envelope
// addresses, except that an address with a byte from 0x80 to 0x9F (the
// second byte of Ü, for one), which Sendmail keeps for its own
// meta-characters, is refused at MAIL FROM and RCPT TO before sluice sees
// it. What it accepts reaches sluice and the mailbox byte for byte; the
// log line stays valid UTF-8 and the archive keeps the envelope.
func TestIntlEndToEndSendmail(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	rules := filepath.Join(state, "senders")
	if err := os.WriteFile(rules, []byte("exämple.* WATCH\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: headerfix
  - type: senders
    options:
      files: [%s]
  - type: archive
    options:
      targets:
        default: archive/{rcpt_domain}/{rcpt_local}.mbox
`, state, rules))
	mta := mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: "inet:" + td.info.Milter[0].String()})

	const (
		from    = "jösé@exämple.org"
		rcpt    = "ü@lab.example"
		rcpt2   = "o@lab.example"
		subject = "Grüße aus Köln – 日本語のテスト"
	)
	head := "From: José Müller <" + from + ">\r\nTo: <" + rcpt + ">\r\nSubject: " + subject +
		"\r\nMessage-ID: <intl-1@exämple.org>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
	body := "Hallo Jürgen,\r\n\r\ndie Bücher über Köln sind angekommen. Schöne Grüße!\r\n"

	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 || strings.Contains(r.Text, "SMTPUTF8") || !strings.Contains(r.Text, "8BITMIME") {
		t.Fatalf("EHLO: %v, want 8BITMIME and no SMTPUTF8", r)
	}
	if r := c.Cmd("MAIL FROM:<" + from + "> SMTPUTF8"); r.String() != "555 5.5.4 SMTPUTF8 parameter unrecognized" {
		t.Errorf("MAIL FROM with SMTPUTF8: %q", r.String())
	}
	c.Cmd("RSET")
	// Ü is C3 9C in UTF-8.
	if r := c.Cmd("MAIL FROM:<a@BÜCHER.example> BODY=8BITMIME"); r.Code != 501 || !strings.HasPrefix(r.Text, "5.1.7 8-bit character in mailbox address") {
		t.Errorf("MAIL FROM with a byte 0x9C: %v, want 501 5.1.7", r)
	}
	c.Cmd("RSET")
	if r := c.Cmd("MAIL FROM:<" + from + "> BODY=8BITMIME"); r.Code != 250 {
		t.Fatalf("MAIL FROM: %v", r)
	}
	for _, to := range []string{rcpt, "Ü@lab.example", rcpt2} {
		want := 250
		if to == "Ü@lab.example" {
			want = 501
		}
		if r := c.Cmd("RCPT TO:<" + to + ">"); r.Code != want {
			t.Errorf("RCPT TO:<%s>: %v, want %d", to, r, want)
		}
	}
	r := c.Data([]byte(head + "\r\n" + body))
	if r.Code != 250 || r.QueueID() == "" {
		t.Fatalf("DATA: %v", r)
	}
	qid := r.QueueID()
	c.Quit()

	mta.WaitDelivered(t, 2, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	ds := mta.Delivered(t)
	if len(ds) != 2 {
		t.Fatalf("%d messages delivered, want 2", len(ds))
	}
	// Byte for byte: the client's header block and body follow
	// Sendmail's own Received: (the local mailer writes LF line ends).
	lf := func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
	for _, d := range ds {
		if d.Recipient() != rcpt && d.Recipient() != rcpt2 {
			t.Errorf("delivered to %s", d.Recipient())
		}
		if !strings.HasSuffix(string(d.Raw), "\n"+lf(head)+"\n"+lf(body)) || d.Get("Return-Path") != "<"+from+">" {
			t.Errorf("delivered to %s:\n%s\nwant the header and body as sent", d.Recipient(), d.Raw)
		}
	}

	// The log: valid UTF-8 text, the addresses as sent, the WATCH report
	// in the A-label.
	var msgLine string
	for _, line := range strings.Split(td.log.String(), "\n") {
		if !utf8.ValidString(line) || strings.ContainsFunc(line, unicode.IsControl) {
			t.Errorf("log line not valid UTF-8 text: %q", line)
		}
		if strings.Contains(line, "msg=message") {
			if msgLine != "" {
				t.Errorf("second message line %q", line)
			}
			msgLine = line
		}
	}
	if want := "queue_id=" + qid + " client=localhost[127.0.0.1] helo=client.example from=" + from + " rcpts=" + rcpt + "," + rcpt2 + " verdict=accept "; !strings.Contains(msgLine, want) {
		t.Errorf("message line %q, want %q", msgLine, want)
	}
	if !strings.Contains(td.log.String(), `msg="new sender domain matching exämple.*: xn--exmple-cua.org"`) {
		t.Errorf("no WATCH report for xn--exmple-cua.org")
	}

	// The archive: one file per recipient, named by its local part, with
	// the envelope and the message as sent.
	var files []string
	filepath.Walk(filepath.Join(state, "archive"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, strings.TrimPrefix(p, state+"/"))
		}
		return nil
	})
	if want := []string{"archive/lab.example/o.mbox", "archive/lab.example/ü.mbox"}; !slices.Equal(files, want) {
		t.Fatalf("archive files %q, want %q", files, want)
	}
	for _, to := range []string{rcpt, rcpt2} {
		local, _, _ := strings.Cut(to, "@")
		data, err := os.ReadFile(filepath.Join(state, "archive/lab.example", local+".mbox"))
		if err != nil {
			t.Fatal(err)
		}
		fromLine, rec, _ := strings.Cut(string(data), "\n")
		if !strings.HasPrefix(fromLine, "From "+from+" ") || strings.Contains(rec, "\nFrom ") {
			t.Errorf("archive for %s: From_ line %q, or more than one record", to, fromLine)
		}
		fields, abody := archiveSplit([]byte(rec))
		if v := archiveField(fields, "X-Sluice-Envelope-To"); len(v) != 1 || v[0] != to {
			t.Errorf("X-Sluice-Envelope-To %q, want [%s]", v, to)
		}
		if v := archiveField(fields, "X-Sluice-Queue-ID"); len(v) != 1 || v[0] != qid {
			t.Errorf("X-Sluice-Queue-ID %q, want [%s]", v, qid)
		}
		if v := archiveField(fields, "Subject"); len(v) != 1 || v[0] != subject {
			t.Errorf("archived Subject %q", v)
		}
		// The mbox record ends with the blank line that separates it
		// from the next.
		if string(abody) != lf(body)+"\n" {
			t.Errorf("archived body %q, want %q and the separating blank line", abody, lf(body))
		}
	}

	// Sendmail without EAI takes other 8-bit charsets as well (Latin-1
	// here: ö is F6, ü FC, none from 80 to 9F). sluice keeps such
	// addresses as sent, but they are not UTF-8: the log line escapes
	// the bytes (\xfc), and the archive writes each as U+FFFD in its
	// envelope fields and as "_" in a path.
	c = mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	if r := c.Send("j\xf6s\xe9@ex\xe4mple.org", []string{"\xfc@lab.example"}, []byte("Subject: Gr\xfc\xdfe\r\n\r\nHallo J\xfcrgen\r\n")); r.Code != 250 {
		t.Fatalf("Latin-1 message: %v", r)
	}
	c.Quit()
	mta.WaitDelivered(t, 3, 20*time.Second)
	var latin1 []string
	for _, line := range strings.Split(td.log.String(), "\n") {
		if !utf8.ValidString(line) || strings.ContainsFunc(line, unicode.IsControl) {
			t.Errorf("log line not valid UTF-8 text: %q", line)
		}
		if strings.Contains(line, `from="j\xf6s\xe9@ex\xe4mple.org" rcpts="\xfc@lab.example" verdict=accept `) {
			latin1 = append(latin1, line)
		}
	}
	if len(latin1) != 1 {
		t.Errorf("no message line for the Latin-1 message with its addresses escaped:\n%s", td.log)
	}
	data, err := os.ReadFile(filepath.Join(state, "archive/lab.example/_.mbox"))
	if err != nil {
		t.Fatal(err)
	}
	fromLine, rec, _ := strings.Cut(string(data), "\n")
	fields, _ := archiveSplit([]byte(rec))
	if !strings.HasPrefix(fromLine, "From j\ufffds\ufffd@ex\ufffdmple.org ") || !slices.Equal(archiveField(fields, "X-Sluice-Envelope-To"), []string{"\ufffd@lab.example"}) {
		t.Errorf("Latin-1 archive record: From_ line %q, envelope recipients %q", fromLine, archiveField(fields, "X-Sluice-Envelope-To"))
	}
}
