package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The archived header against the delivered one, field by field, through
// each MTA (docs/archive.md, "Fields that differ from the mailbox"). The
// archive writes the header the MTA showed its milters. Postfix drops
// Return-Path, Bcc, Resent-Bcc and Content-Length (message_drop_headers)
// before its milters see the header, and shows them the fields it makes
// up, so the archived header is the delivered one without the fields of
// the delivery itself. Sendmail 8.17 shows its milters the header as the
// client sent it, and changes it only when it writes the message out: it
// drops the client's Return-Path, Bcc, Resent-Bcc, Content-Length and
// Full-Name (and an empty From:, which the milter is not even shown),
// adds the Date, From, Message-Id and Resent-* fields it makes up, which
// the milter never sees, and writes address fields anew.
func TestArchiveHeaderAgainstMailbox(t *testing.T) {
	mtatest.Require(t)
	const made = "*" // a value the MTA makes up: a date, a message id, its Received
	messages := []struct {
		rcpt, raw string
	}{
		// The fields Sendmail drops or replaces at delivery.
		{"fields@lab.example", "Return-Path: <forged@example.net>\r\nFrom: Alice <alice@example.org>\r\n" +
			"To: fields@lab.example\r\nDate: " + headerfixDate + "\r\nMessage-ID: <fields@example.org>\r\nSubject: fields\r\n" +
			"Bcc: Hidden <hidden@lab.example>\r\nContent-Length: 999\r\nFull-Name: Forged Name\r\nApparently-To: app@lab.example\r\n" +
			"\r\nBody.\r\n"},
		// A Resent- field makes both MTAs add the Resent-Date, Resent-From
		// and Resent-Message-Id the message lacks; Sendmail puts the
		// Full-Name into its Resent-From.
		{"resent@lab.example", "From: Alice <alice@example.org>\r\nTo: resent@lab.example\r\nDate: " + headerfixDate + "\r\n" +
			"Message-ID: <resent@example.org>\r\nSubject: resent\r\nResent-To: resent@lab.example\r\nResent-Bcc: rhidden@lab.example\r\n" +
			"Full-Name: Forged Name\r\n\r\nBody.\r\n"},
		// An empty From:, no Date: and no Message-ID:, and address lists
		// spaced and folded as Sendmail would not.
		{"bare@lab.example", "From:\r\nSubject: bare\r\n" +
			"To: Aaaaaaaaaa Bbbbbbbbbb <bare@lab.example>, Cccccccccc Dddddddddd <c@lab.example>, Eeeeeeeeee <e@lab.example>\r\n" +
			"Cc: x@lab.example,\r\n  y@lab.example,   z@lab.example\r\n\r\nBody.\r\n"},
	}
	longTo := "Aaaaaaaaaa Bbbbbbbbbb <bare@lab.example>, Cccccccccc Dddddddddd <c@lab.example>, Eeeeeeeeee <e@lab.example>"
	sentCc := "x@lab.example,\n  y@lab.example,   z@lab.example"
	cases := []struct {
		mta string
		// archived is the mbox copy's header below the archive's own
		// X-Sluice- fields; the maildir copy has Return-Path: <sender>
		// above them and the sender's Content-Length value.
		archived map[string][]string
		// delivered is the header of the mailbox copy.
		delivered map[string][]string
	}{
		{
			mta: "postfix",
			archived: map[string][]string{
				"fields@lab.example": {"From: Alice <alice@example.org>", "To: fields@lab.example", "Date: " + headerfixDate,
					"Message-ID: <fields@example.org>", "Subject: fields", "Full-Name: Forged Name", "Apparently-To: app@lab.example"},
				"resent@lab.example": {"From: Alice <alice@example.org>", "To: resent@lab.example", "Date: " + headerfixDate,
					"Message-ID: <resent@example.org>", "Subject: resent", "Resent-To: resent@lab.example",
					"Full-Name: Forged Name", "Resent-Message-Id: " + made, "Resent-Date: " + made, "Resent-From: alice@example.org"},
				"bare@lab.example": {"From: ", "Subject: bare", "To: " + longTo, "Cc: " + sentCc,
					"Message-Id: " + made, "Date: " + made},
			},
			delivered: map[string][]string{
				"fields@lab.example": {"Return-Path: <alice@example.org>", "X-Original-To: fields@lab.example",
					"Delivered-To: fields@lab.example", "Received: " + made,
					"From: Alice <alice@example.org>", "To: fields@lab.example", "Date: " + headerfixDate,
					"Message-ID: <fields@example.org>", "Subject: fields", "Full-Name: Forged Name", "Apparently-To: app@lab.example"},
				"resent@lab.example": {"Return-Path: <alice@example.org>", "X-Original-To: resent@lab.example",
					"Delivered-To: resent@lab.example", "Received: " + made,
					"From: Alice <alice@example.org>", "To: resent@lab.example", "Date: " + headerfixDate,
					"Message-ID: <resent@example.org>", "Subject: resent", "Resent-To: resent@lab.example",
					"Full-Name: Forged Name", "Resent-Message-Id: " + made, "Resent-Date: " + made, "Resent-From: alice@example.org"},
				"bare@lab.example": {"Return-Path: <alice@example.org>", "X-Original-To: bare@lab.example",
					"Delivered-To: bare@lab.example", "Received: " + made,
					"From: ", "Subject: bare", "To: " + longTo, "Cc: " + sentCc, "Message-Id: " + made, "Date: " + made},
			},
		},
		{
			mta: "sendmail",
			archived: map[string][]string{
				"fields@lab.example": {"Return-Path: <forged@example.net>", "From: Alice <alice@example.org>",
					"To: fields@lab.example", "Date: " + headerfixDate, "Message-ID: <fields@example.org>", "Subject: fields",
					"Bcc: Hidden <hidden@lab.example>", "Content-Length: 6", "Full-Name: Forged Name", "Apparently-To: app@lab.example"},
				"resent@lab.example": {"From: Alice <alice@example.org>", "To: resent@lab.example", "Date: " + headerfixDate,
					"Message-ID: <resent@example.org>", "Subject: resent", "Resent-To: resent@lab.example",
					"Resent-Bcc: rhidden@lab.example", "Full-Name: Forged Name"},
				"bare@lab.example": {"Subject: bare", "To: " + longTo, "Cc: " + sentCc},
			},
			delivered: map[string][]string{
				// The first field is the test's delivery program's.
				"fields@lab.example": {"Delivered-To: fields@lab.example", "Return-Path: <alice@example.org>", "Received: " + made,
					"From: Alice <alice@example.org>", "To: fields@lab.example", "Date: " + headerfixDate,
					"Message-ID: <fields@example.org>", "Subject: fields", "Apparently-To: app@lab.example"},
				"resent@lab.example": {"Delivered-To: resent@lab.example", "Return-Path: <alice@example.org>", "Received: " + made,
					"Resent-Date: " + made, "Resent-From: Forged Name <alice@example.org>", "Resent-Message-Id: " + made,
					"From: Alice <alice@example.org>", "To: resent@lab.example", "Date: " + headerfixDate,
					"Message-ID: <resent@example.org>", "Subject: resent", "Resent-To: resent@lab.example"},
				"bare@lab.example": {"Delivered-To: bare@lab.example", "Return-Path: <alice@example.org>", "Received: " + made,
					"Date: " + made, "From: alice@example.org", "Message-Id: " + made, "Subject: bare",
					"To: Aaaaaaaaaa Bbbbbbbbbb <bare@lab.example>,\n        Cccccccccc Dddddddddd <c@lab.example>, Eeeeeeeeee <e@lab.example>",
					"Cc: x@lab.example, y@lab.example, z@lab.example"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.mta, func(t *testing.T) {
			mbox, maildir, mta := archivingMTA(t, tc.mta)
			for _, m := range messages {
				if r := headerfixSend(t, mta, m.rcpt, m.raw); r.Code != 250 {
					t.Fatalf("%s: %v", m.rcpt, r)
				}
			}
			ds := mta.WaitDelivered(t, len(messages), 30*time.Second)
			mta.WaitIdle(t, 30*time.Second)
			mboxCopies := archiveFieldsMbox(t, mbox)
			maildirCopies := archiveFieldsMaildir(t, maildir)
			if len(mboxCopies) != len(messages) || len(maildirCopies) != len(messages) {
				t.Fatalf("copies for %d recipients in the mbox and %d in the maildir, want %d each", len(mboxCopies), len(maildirCopies), len(messages))
			}
			for _, m := range messages {
				archiveFieldsExpect(t, m.rcpt+" delivered", headerfixDelivered(t, ds, m.rcpt).Header, tc.delivered[m.rcpt])
				archiveFieldsExpect(t, m.rcpt+" mbox copy", mboxCopies[m.rcpt], tc.archived[m.rcpt])
				// The maildir copy starts with the archive's Return-Path
				// and keeps the sender's Content-Length (see Format).
				want := []string{"Return-Path: <" + headerfixSender + ">"}
				for _, f := range tc.archived[m.rcpt] {
					if strings.HasPrefix(f, "Content-Length: ") {
						f = "Content-Length: 999"
					}
					want = append(want, f)
				}
				archiveFieldsExpect(t, m.rcpt+" maildir copy", maildirCopies[m.rcpt], want)
			}
		})
	}
}

// archiveFieldsExpect compares a header with the "Name: value" lines want,
// in order; a value "*" stands for any value.
func archiveFieldsExpect(t *testing.T, what string, got []mtatest.Field, want []string) {
	t.Helper()
	lines := headerfixFields(got)
	ok := len(lines) == len(want)
	for i := 0; ok && i < len(want); i++ {
		name, value, _ := strings.Cut(want[i], ": ")
		gotName, gotValue, _ := strings.Cut(lines[i], ": ")
		ok = gotName == name && (value == "*" || gotValue == value)
	}
	if !ok {
		t.Errorf("%s: header\n  %s\nwant\n  %s", what, strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
	}
}

// archiveFieldsOwn returns the copy's header below the archive's
// X-Sluice-Queue-ID, X-Sluice-Envelope-To and X-Sluice-Verdict fields,
// and the copy's recipient.
func archiveFieldsOwn(t *testing.T, raw []byte) (string, []mtatest.Field) {
	t.Helper()
	d := mtatest.ParseDelivered(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")))
	rcpts := d.Values(archive.FieldEnvelopeTo)
	if len(rcpts) != 1 {
		t.Fatalf("archived copy with recipients %q:\n%s", rcpts, raw)
	}
	var own []mtatest.Field
	for _, f := range d.Header {
		switch f.Name {
		case archive.FieldQueueID, archive.FieldEnvelopeTo, archive.FieldVerdict:
			continue
		}
		own = append(own, f)
	}
	return rcpts[0], own
}

// archiveFieldsMbox returns the header of each copy in the mbox, by
// recipient.
func archiveFieldsMbox(t *testing.T, path string) map[string][]mtatest.Field {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	copies := map[string][]mtatest.Field{}
	err = archive.ReadMbox(bytes.NewReader(raw), func(r archive.Record) error {
		rcpt, own := archiveFieldsOwn(t, r.Message)
		if _, dup := copies[rcpt]; dup {
			t.Errorf("%s: two copies for %s", path, rcpt)
		}
		copies[rcpt] = own
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return copies
}

// archiveFieldsMaildir returns the header of each copy in the maildir, by
// recipient.
func archiveFieldsMaildir(t *testing.T, dir string) map[string][]mtatest.Field {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	copies := map[string][]mtatest.Field{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rcpt, own := archiveFieldsOwn(t, raw)
		if _, dup := copies[rcpt]; dup {
			t.Errorf("%s: two copies for %s", dir, rcpt)
		}
		copies[rcpt] = own
	}
	return copies
}

// The sender an archived copy records against the Return-Path of the
// delivered one, for MAIL FROM forms each MTA accepts and delivers from
// a spelling of the address its own. Both show their milters the
// address as the client wrote it (less the brackets). Postfix (with its
// default strict_rfc821_envelopes = no) delivers from the address it
// reads in a phrase, a group, a comment, list commas, a source route, a
// UUCP path, the percent hack, and quotes that the local part does not
// need, and quotes a local part that needs it; the archive recognises
// Postfix by macro v and records the same. Sendmail delivers the forms
// tested here as written, less a source route, and so does the archive
// behind it. A quoted local part keeps its blank in both mailboxes. The
// maildir copy's Return-Path is the mailbox's; the mbox From_ line holds
// the same address, a blank in it written "_" (see docs/archive.md).
func TestArchiveSenderAgainstMailbox(t *testing.T) {
	mtatest.Require(t)
	for _, tc := range []struct {
		mta   string
		forms []string
	}{
		{"postfix", []string{
			`<"Joe" <joe@example.com>>`,
			`<Joe <joe@example.com>>`,
			`<Joe:joe@example.com;>`,
			`<x: joe@example.com ;>`,
			`<joe@example.com (Joe)>`,
			`<joe@example.com (Joe>`,
			`<joe@example.com,>`,
			`<;,joe@example.com>`,
			`<@relay.example:joe@example.com>`,
			`<"joe"@example.com>`,
			`<"joe@example.com">`,
			`<example.com!joe>`,
			`<joe%example.com>`,
			`<joe % example.com>`,
			`<joe @ example . com>`,
			`<"j" . "oe"@example.com>`,
			`<x!y!joe>`,
			`<joe@"example.com">`,
			`<"john smith"@example.com>`,
			`"john smith"@example.com`,
			`<x:"john smith"@example.com;>`,
			`<"John Smith" <"john smith"@example.com>>`,
			`<"a\"b"@example.com>`,
			`<"a\\b"@example.com>`,
			`<.a@example.com>`,
			`<x\:joe@example.com;>`,
			`<x:joe@example.com>`,
			`<@x@example.com>`,
			`<client.example!>`,
			`<x:;>`,
			`<@relay.example:>`,
			`<>`,
		}},
		{"sendmail", []string{
			`<@relay.example:joe@example.com>`,
			`<"joe"@example.com>`,
			`<"joe@example.com">`,
			`<joe@"example.com">`,
			`<"john smith"@example.com>`,
			`<"a\"b"@example.com>`,
			`<.a@example.com>`,
			`<x:joe@example.com>`,
			`<client.example!>`,
		}},
	} {
		t.Run(tc.mta, func(t *testing.T) {
			archiveSenderForms(t, tc.mta, tc.forms)
		})
	}
}

// archiveSenderForms sends a message from each of forms through the MTA
// to a daemon that archives into an mbox and a maildir, and compares
// each copy's sender with the delivered Return-Path.
func archiveSenderForms(t *testing.T, kind string, forms []string) {
	t.Helper()
	mbox, maildir, mta := archivingMTA(t, kind)
	sent := map[string]string{} // MAIL FROM by recipient
	for i, from := range forms {
		rcpt := fmt.Sprintf("sender%d@lab.example", i)
		c := mtatest.DialSMTP(t, mta.Addr())
		if r := c.Cmd("EHLO client.example"); r.Code != 250 {
			t.Fatalf("EHLO: %v", r)
		}
		if r := c.Cmd("MAIL FROM:" + from); r.Code != 250 {
			t.Fatalf("MAIL FROM:%s: %v", from, r)
		}
		if r := c.Cmd("RCPT TO:<" + rcpt + ">"); r.Code != 250 {
			t.Fatalf("RCPT TO:<%s>: %v", rcpt, r)
		}
		if r := c.Data(sendersMessage("x@client.example", rcpt, fmt.Sprintf("sender%d", i))); r.Code != 250 {
			t.Fatalf("DATA from %s: %v", from, r)
		}
		c.Quit()
		sent[rcpt] = from
	}
	ds := mta.WaitDelivered(t, len(forms), 60*time.Second)
	mta.WaitIdle(t, 30*time.Second)

	raw, err := os.ReadFile(mbox)
	if err != nil {
		t.Fatal(err)
	}
	fromLines := map[string]string{}
	err = archive.ReadMbox(bytes.NewReader(raw), func(r archive.Record) error {
		rcpt, _ := archiveFieldsOwn(t, r.Message)
		fromLines[rcpt] = r.From()
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", mbox, err)
	}
	maildirCopies := archiveFieldsMaildir(t, maildir)
	if len(fromLines) != len(forms) || len(maildirCopies) != len(forms) {
		t.Fatalf("copies for %d recipients in the mbox and %d in the maildir, want %d each", len(fromLines), len(maildirCopies), len(forms))
	}
	for _, d := range ds {
		rcpt := d.Recipient()
		delivered := d.Get("Return-Path")
		if got := maildirCopies[rcpt]; len(got) == 0 || got[0].Name != "Return-Path" || got[0].Value != delivered {
			t.Errorf("MAIL FROM:%s: maildir copy starts %v, the mailbox's Return-Path is %s", sent[rcpt], got[:min(len(got), 1)], delivered)
		}
		sender := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(delivered, "<"), ">"), " ", "_")
		if sender == "" {
			sender = "MAILER-DAEMON"
		}
		if got := fromLines[rcpt]; !strings.HasPrefix(got, "From "+sender+" ") {
			t.Errorf("MAIL FROM:%s: mbox From line %q, the mailbox's Return-Path is %s", sent[rcpt], got, delivered)
		}
	}
}

// archivingMTA starts a daemon that archives every message into an mbox
// and a maildir, and an MTA of kind in front of it; it returns the
// paths of both archives and the MTA.
func archivingMTA(t *testing.T, kind string) (mbox, maildir string, mta *mtatest.MTA) {
	t.Helper()
	state := t.TempDir()
	mbox, maildir = filepath.Join(state, "all.mbox"), filepath.Join(state, "maildir")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
filters:
  - type: archive
    options:
      targets:
        default: %s
  - type: archive
    name: maildir
    options:
      format: maildir
      targets:
        default: %s
`, mbox, maildir))
	return mbox, maildir, headerfixMTA(t, kind, "inet:"+td.info.Milter[0].String())
}
