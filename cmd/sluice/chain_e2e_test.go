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

// chainRecord is one archived copy as the chain tests compare it.
type chainRecord struct {
	subject, verdict string
	to               []string
	second           bool // carries the second milter's field
}

// chainArchive reads the records of an mbox, none if it does not exist.
func chainArchive(t *testing.T, path string) []chainRecord {
	t.Helper()
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return nil
	}
	var recs []chainRecord
	for _, m := range archiveReadPython(t, path) {
		fields, _ := archiveSplit(m.Message)
		recs = append(recs, chainRecord{
			subject: strings.Join(archiveField(fields, "Subject"), ","),
			verdict: strings.Join(archiveField(fields, "X-Sluice-Verdict"), ","),
			to:      archiveField(fields, "X-Sluice-Envelope-To"),
			second:  len(archiveField(fields, "X-Second")) > 0,
		})
	}
	return recs
}

// The archive of a sluice that shares smtpd_milters with another milter,
// here a second sluice that rejects mail to reject@ at end of message
// and tags the rest (X-Second). Postfix shows a milter nothing of what
// the milters after it decide (see TestPostfixMilterChain in milter/),
// so with the archiving sluice first a message the other milter
// rejected is archived, and counted, as accepted, and the archived copy
// of delivered mail lacks the other milter's field. With the archiving
// sluice last it archives and counts exactly what is delivered, as
// delivered, and the message the other milter rejected is aborted for
// it. docs/postfix.md ("Other milters") tells administrators.
func TestArchiveInMilterChainPostfix(t *testing.T) {
	mtatest.Require(t)
	for _, c := range []struct {
		name       string
		archiveFst bool
		want       []chainRecord
		metric     string
	}{
		{"archive first", true, []chainRecord{
			{"one", "default; action=accept", []string{"ok@lab.example", "reject@lab.example"}, false},
			{"two", "default; action=accept", []string{"ok2@lab.example"}, false},
		}, `sluice_messages_total{verdict="accept"} 2`},
		{"archive last", false, []chainRecord{
			{"two", "default; action=accept", []string{"ok2@lab.example"}, true},
		}, `sluice_messages_total{verdict="aborted"} 1`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			socks := socketDir(t)
			archiveSock, secondSock := filepath.Join(socks, "archive.sock"), filepath.Join(socks, "second.sock")
			archiver := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: archive
    options:
      targets:
        default: archive/all.mbox
        reject: archive/rejected.mbox
`, archiveSock, dir))
			startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: ""
shutdown_timeout: 5s
filters:
  - type: script
    options:
      header: X-Second
      reject_text: Rejected by the second milter
`, secondSock))
			milters := "unix:" + archiveSock + ", unix:" + secondSock
			if !c.archiveFst {
				milters = "unix:" + secondSock + ", unix:" + archiveSock
			}
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{ExtraConfig: []string{"smtpd_milters = " + milters}})

			cl := mtatest.DialSMTP(t, mta.Addr())
			cl.Cmd("EHLO client.example")
			r := cl.Send("alice@example.org", []string{"ok@lab.example", "reject@lab.example"}, []byte("Subject: one\r\n\r\nbody\r\n"))
			if r.String() != "550 5.7.1 Rejected by the second milter" {
				t.Errorf("message one: %v, want the second milter's reject", r)
			}
			cl.Cmd("RSET")
			if r := cl.Send("alice@example.org", []string{"ok2@lab.example"}, []byte("Subject: two\r\n\r\nbody\r\n")); r.Code != 250 {
				t.Fatalf("message two: %v", r)
			}
			cl.Quit()
			ds := mta.WaitDelivered(t, 1, 20*time.Second)
			mta.WaitIdle(t, 20*time.Second)
			if ds = mta.Delivered(t); len(ds) != 1 || ds[0].Get("Subject") != "two" || ds[0].Get("X-Second") == "" {
				t.Fatalf("delivered %d messages, want message two with the second milter's field", len(ds))
			}

			// The archive's append is complete (fsync'd) before sluice
			// replies at end of message.
			got := chainArchive(t, filepath.Join(dir, "archive", "all.mbox"))
			if !slices.EqualFunc(got, c.want, func(a, b chainRecord) bool {
				return a.subject == b.subject && a.verdict == b.verdict && slices.Equal(a.to, b.to) && a.second == b.second
			}) {
				t.Errorf("archived %+v, want %+v", got, c.want)
			}
			if rej := chainArchive(t, filepath.Join(dir, "archive", "rejected.mbox")); len(rej) != 0 {
				t.Errorf("rejected archive holds %+v, want nothing: this sluice rejected nothing", rej)
			}
			if m := archiver.metrics(t); !strings.Contains(m, c.metric) {
				t.Errorf("metrics lack %s", c.metric)
			}
		})
	}
}

// headerfix behind another milter that appends a field (a spam scanner's
// verdict, here a second sluice's tag). Postfix adds the From: it makes
// up, when a bare CR hid the sender's, at the end of the header, and the
// milters after the tagging one see the tag after it. headerfix, which
// splits the sender's From: off the field the CR joined it to, must
// still take Postfix's From: for the made-up one and replace it, so the
// message keeps one From:, the sender's. It did not: it took a made-up
// field for Postfix's only at the very end of the header. The message
// has no Message-ID of its own, so the one Postfix made up, with the
// queue id, marks Postfix's fields (see docs/headerfix.md).
func TestHeaderfixBehindAnotherMilterPostfix(t *testing.T) {
	mtatest.Require(t)
	socks := socketDir(t)
	fixSock, tagSock := filepath.Join(socks, "fix.sock"), filepath.Join(socks, "tag.sock")
	startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: ""
shutdown_timeout: 5s
filters:
  - type: headerfix
`, fixSock))
	startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: ""
shutdown_timeout: 5s
filters:
  - type: script
    options:
      header: X-Tag
`, tagSock))
	for _, c := range []struct{ name, milters string }{
		{"headerfix first", "unix:" + fixSock + ", unix:" + tagSock},
		{"headerfix last", "unix:" + tagSock + ", unix:" + fixSock},
	} {
		t.Run(c.name, func(t *testing.T) {
			mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{ExtraConfig: []string{"smtpd_milters = " + c.milters}})
			if r := headerfixSend(t, mta, "cr@lab.example", headerfixVariants["cr"]); r.Code != 250 {
				t.Fatalf("reply %v", r)
			}
			d := mta.WaitDelivered(t, 1, 20*time.Second)[0]
			if got := d.Values("From"); !slices.Equal(got, []string{headerfixFrom}) {
				t.Errorf("From fields %q, want the sender's alone\n%s", got, d.Raw)
			}
			if got := d.Values("Date"); !slices.Equal(got, []string{headerfixDate}) {
				t.Errorf("Date fields %q, want %q", got, headerfixDate)
			}
			if d.Get("X-Tag") == "" {
				t.Errorf("the other milter's field is missing\n%s", d.Raw)
			}
		})
	}
}
