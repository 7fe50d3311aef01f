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

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Internationalised mail (SMTPUTF8, RFC 6531/6532) end to end through a
// real Postfix (compatibility_level 3.6 in the harness: smtputf8_enable
// is yes): UTF-8 envelope addresses and raw UTF-8 header fields pass the
// usual pipeline (headerfix, senders, bayes tag, archive) unchanged, the
// log line stays one valid line, the archive record keeps the envelope,
// and the archive commands find the record again.
func TestIntlEndToEndPostfix(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)
	rules := filepath.Join(state, "senders")
	// One domain per spelling: a rule in one form must catch the other.
	if err := os.WriteFile(rules, []byte("bücher.example REJECT\nxn--mller-kva.example REJECT\nexämple.* WATCH\n"), 0o644); err != nil {
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
filters:
  - type: headerfix
  - type: senders
    options:
      files: [%s]
  - type: bayes
    options:
      db: %s
      spam:
        action: tag
  - type: archive
    options:
      targets:
        default: archive/{rcpt_domain}/{rcpt_local}.mbox
`, sock, state, rules, db))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	c := mtatest.DialSMTP(t, mta.Addr())
	ehlo := c.Cmd("EHLO client.example")
	if ehlo.Code != 250 || !strings.Contains(ehlo.Text, "SMTPUTF8") {
		t.Fatalf("EHLO: %v, want SMTPUTF8 offered", ehlo)
	}
	const (
		from    = "jösé@exämple.org"
		rcpt    = "ü@lab.example"
		rcpt2   = "ö@lab.example"
		subject = "Grüße aus Köln – 日本語のテスト"
	)
	body := "Hallo Jürgen,\r\n\r\ndie Bücher über Köln sind angekommen. Schöne Grüße!\r\n"
	raw := []byte("From: José Müller <" + from + ">\r\nTo: <" + rcpt + ">\r\nSubject: " + subject +
		"\r\nMessage-ID: <intl-1@exämple.org>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body)
	r := c.Cmd("MAIL FROM:<" + from + "> SMTPUTF8")
	if r.Code != 250 {
		t.Fatalf("MAIL FROM: %v", r)
	}
	for _, to := range []string{rcpt, rcpt2} {
		if r = c.Cmd("RCPT TO:<" + to + ">"); r.Code != 250 {
			t.Fatalf("RCPT TO:<%s>: %v", to, r)
		}
	}
	r = c.Data(raw)
	if r.Code != 250 || r.QueueID() == "" {
		t.Fatalf("DATA: %v", r)
	}
	qid := r.QueueID()

	// senders: each rule catches its domain in the other spelling and in
	// another case, at MAIL FROM.
	for _, sender := range []string{"a@xn--bcher-kva.example", "a@BÜCHER.example", "a@müller.example", "a@MÜLLER.example"} {
		c.Cmd("RSET")
		if r := c.Cmd("MAIL FROM:<" + sender + "> SMTPUTF8"); r.Code != 550 {
			t.Errorf("MAIL FROM:<%s>: %v, want 550 from the senders rule", sender, r)
		}
	}
	// The WATCH rule has reported exämple.org; the same domain in its
	// A-label, in upper case, is not new.
	c.Cmd("RSET")
	if r := c.Cmd("MAIL FROM:<x@XN--EXMPLE-CUA.org>"); r.Code != 250 {
		t.Errorf("MAIL FROM in the A-label: %v", r)
	}
	c.Quit()

	mta.WaitDelivered(t, 2, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	ds := mta.Delivered(t)
	if len(ds) != 2 {
		t.Fatalf("%d messages delivered, want 2", len(ds))
	}
	if got := []string{ds[0].Recipient(), ds[1].Recipient()}; !(got[0] == rcpt && got[1] == rcpt2 || got[0] == rcpt2 && got[1] == rcpt) {
		t.Errorf("delivered to %q, want %s and %s", got, rcpt, rcpt2)
	}
	d := ds[0]
	t.Logf("delivered:\n%s", d.Raw)
	if got := d.Get("Subject"); got != subject {
		t.Errorf("delivered Subject %q, want %q", got, subject)
	}
	if got := d.Get("From"); got != "José Müller <"+from+">" {
		t.Errorf("delivered From %q", got)
	}
	if got := d.Get("Return-Path"); got != "<"+from+">" {
		t.Errorf("delivered Return-Path %q, want <%s>", got, from)
	}
	if !strings.Contains(string(d.Body), "die Bücher über Köln") {
		t.Errorf("delivered body %q", d.Body)
	}
	bayes := d.Get("X-Sluice-Bayes")
	if bayes == "" || !isASCIIPrintable(bayes) {
		t.Errorf("X-Sluice-Bayes %q: want a printable ASCII value", bayes)
	}

	// The log: one line per message, valid UTF-8, no control bytes, the
	// addresses as sent.
	var msgLine string
	for _, line := range strings.Split(td.log.String(), "\n") {
		if !utf8.ValidString(line) || strings.ContainsFunc(line, func(r rune) bool { return unicode.IsControl(r) }) {
			t.Errorf("log line not valid UTF-8 text: %q", line)
		}
		if strings.Contains(line, "msg=message") && strings.Contains(line, "queue_id="+qid) {
			msgLine = line
		}
	}
	t.Logf("log:\n%s", td.log.String())
	if !strings.Contains(msgLine, "from="+from) || !strings.Contains(msgLine, "rcpts="+rcpt+","+rcpt2) || !strings.Contains(msgLine, "verdict=accept") {
		t.Errorf("message log line %q: want from=%s rcpts=%s verdict=accept", msgLine, from, rcpt)
	}

	// WATCH reports the domain once, in its A-label (the form the seen
	// file keys it by, whatever spelling the mail used).
	if n := strings.Count(td.log.String(), "msg=\"new sender domain"); n != 1 ||
		!strings.Contains(td.log.String(), `msg="new sender domain matching exämple.*: xn--exmple-cua.org"`) {
		t.Errorf("%d WATCH reports, want 1 for xn--exmple-cua.org", n)
	}

	// The archive: one file per recipient. Their local parts are kept
	// (ü.mbox, ö.mbox), not both turned into "__.mbox", which mixed
	// two people's mail in one file.
	var files []string
	filepath.Walk(filepath.Join(state, "archive"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, strings.TrimPrefix(p, state+"/"))
		}
		return nil
	})
	if want := []string{"archive/lab.example/ö.mbox", "archive/lab.example/ü.mbox"}; !slices.Equal(files, want) {
		t.Fatalf("archive files %q, want %q", files, want)
	}
	mbox := filepath.Join(state, "archive/lab.example/ü.mbox")
	for _, to := range []string{rcpt, rcpt2} {
		data, err := os.ReadFile(filepath.Join(state, "archive/lab.example", strings.TrimSuffix(to, "@lab.example")+".mbox"))
		if err != nil {
			t.Fatal(err)
		}
		if to == rcpt {
			t.Logf("archive record:\n%s", data)
		}
		// Read as bytes: Python's mailbox decodes the From_ line as
		// ASCII and cannot read the UTF-8 sender that Postfix's local(8)
		// writes there too.
		fromLine, rec, _ := strings.Cut(string(data), "\n")
		if !strings.HasPrefix(fromLine, "From "+from+" ") {
			t.Errorf("archive From_ line %q, want the envelope sender %s", fromLine, from)
		}
		if n := strings.Count(string(data), "\nFrom "); n != 0 {
			t.Errorf("archive for %s holds %d more records", to, n)
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
		if v := archiveField(fields, "From"); len(v) != 1 || v[0] != "José Müller <"+from+">" {
			t.Errorf("archived From %q", v)
		}
		if !strings.Contains(string(abody), "die Bücher über Köln") {
			t.Errorf("archived body %q", abody)
		}
	}

	// The archive commands find the record by its queue id.
	show := runCLI(t, "", "archive", "show", "--queue-id", qid, mbox)
	if show.code != 0 || !strings.Contains(show.stdout, "Subject: "+subject) {
		t.Errorf("archive show: %+v", show)
	}
	if tr := runCLI(t, "", "train", "--db", db, "--spam", "--queue-id", qid, mbox); tr.code != 0 || !strings.HasPrefix(tr.stdout, "1 message: ") {
		t.Errorf("train --queue-id: %+v", tr)
	}
	// archive move --to VERDICT renders the target for the record's
	// recipient, which is the file the record is in.
	if mv := runCLI(t, "", "--config", td.config, "archive", "move", "--queue-id", qid, "--to", "default", mbox); mv.code != 1 || !strings.Contains(mv.stderr, "already in") {
		t.Errorf("archive move --to default: %+v, want already in", mv)
	}
	other := filepath.Join(state, "moved.mbox")
	if mv := runCLI(t, "", "archive", "move", "--queue-id", qid, "--to", other, mbox); mv.code != 0 {
		t.Errorf("archive move: %+v", mv)
	}
	if moved, err := os.ReadFile(other); err != nil || !strings.HasPrefix(string(moved), "From "+from+" ") || !strings.Contains(string(moved), "Subject: "+subject+"\n") {
		t.Errorf("moved archive: %q, %v", moved, err)
	}
}

func isASCIIPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 && s[i] != '\t' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// The dnsbl domain lists, end to end through Postfix: a UTF-8 envelope
// sender, From: domain and EHLO name are looked up as A-labels on the
// test's DNS server, and a listing there is found.
func TestIntlDNSBLEndToEndPostfix(t *testing.T) {
	mtatest.Require(t)
	dnsSrv := dnsbltest.Start(t)
	dnsSrv.AddA("xn--exmple-cua.org.dbl.test", 300, "127.0.1.2")
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
filters:
  - type: dnsbl
    options:
      servers: ["%s"]
      timeout: 2s
      skip_private: false
      zones:
        - zone: dbl.test
          type: domain
          check: [sender, header_from, helo]
`, sock, dnsSrv.Addr))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
	msg := func(from string) []byte {
		return []byte("From: " + from + "\r\nTo: ü@lab.example\r\nSubject: Grüße\r\n\r\nHallo.\r\n")
	}
	send := func(helo, from, hdrFrom string) mtatest.Reply {
		c := mtatest.DialSMTP(t, mta.Addr())
		defer c.Close()
		if r := c.Cmd("EHLO " + helo); r.Code != 250 {
			t.Fatalf("EHLO %s: %v", helo, r)
		}
		if r := c.Cmd("MAIL FROM:<" + from + "> SMTPUTF8"); r.Code != 250 {
			return r
		}
		if r := c.Cmd("RCPT TO:<ü@lab.example>"); r.Code != 250 {
			return r
		}
		r := c.Data(msg(hdrFrom))
		c.Quit()
		return r
	}
	if r := send("mx.fine.example", "jösé@exämple.org", "a@fine.example"); r.Code != 554 || !strings.Contains(r.Text, "dbl.test") {
		t.Errorf("listed envelope sender: %v, want 554 naming dbl.test", r)
	}
	if r := send("mx.fine.example", "a@grün.example", "José <jösé@EXÄMPLE.org>"); r.Code != 554 || !strings.Contains(r.Text, "dbl.test") {
		t.Errorf("listed From: domain: %v, want 554 naming dbl.test", r)
	}
	// A HELO name is looked up whole (docs/dnsbl.md), so the listed name.
	if r := send("Exämple.org", "a@grün.example", "a@grün.example"); r.Code != 554 || !strings.Contains(r.Text, "dbl.test") {
		t.Errorf("listed HELO name: %v, want 554 naming dbl.test", r)
	}
	if r := send("mx.fine.example", "a@grün.example", "a@grün.example"); r.Code != 250 {
		t.Errorf("unlisted sender: %v, want 250", r)
	}
	qs := dnsSrv.Queries()
	for _, q := range qs {
		if !isASCIIPrintable(q.Name) || strings.ToLower(q.Name) != q.Name {
			t.Errorf("query name %q is not a lower-case A-label", q.Name)
		}
	}
	if dnsSrv.Count("xn--grn-ioa.example.dbl.test", dns.TypeA) == 0 {
		t.Errorf("grün.example not looked up as xn--grn-ioa.example; queries %v", qs)
	}
	mta.WaitDelivered(t, 1, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	if ds := mta.Delivered(t); len(ds) != 1 || ds[0].Get("Subject") != "Grüße" {
		t.Errorf("delivered %d messages, want the unlisted one with its UTF-8 Subject", len(ds))
	}
	t.Logf("queries: %v\nlog:\n%s", qs, td.log.String())
}
