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

// Messages sent with BDAT (RFC 3030 CHUNKING, which Postfix 3.7
// offers by default) reach sluice as DATA does: the filters, the
// archive and the mailbox get the body as sent, with lines of a single
// dot and lines starting with "From " as they are (BDAT has no
// dot-stuffing), whatever the chunk boundaries, a CR and its LF in
// different chunks included. A message rejected at BDAT LAST is refused
// with sluice's reply, and one abandoned with RSET between chunks ends
// as aborted, without a trace in the archive.
func TestBDATPostfix(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	spill := filepath.Join(dir, "spill")
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
  - type: script
  - type: archive
    options:
      targets:
        default: archive/default.mbox
        reject: archive/reject.mbox
`, sock, dir, spill))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock})
	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); !strings.Contains(r.Text, "CHUNKING") {
		t.Fatalf("EHLO: %v, want CHUNKING offered", r)
	}
	// bdat sends each chunk as a BDAT command, the last with LAST, and
	// returns the replies.
	bdat := func(chunks ...string) []string {
		t.Helper()
		var replies []string
		for i, ch := range chunks {
			last := ""
			if i == len(chunks)-1 {
				last = " LAST"
			}
			if err := c.WriteRaw([]byte(fmt.Sprintf("BDAT %d%s\r\n%s", len(ch), last, ch))); err != nil {
				t.Fatal(err)
			}
			r, err := c.ReadReply()
			if err != nil {
				t.Fatal(err)
			}
			replies = append(replies, r.String())
		}
		return replies
	}
	envelope := func(rcpt string) {
		t.Helper()
		for _, cmd := range []string{"MAIL FROM:<alice@example.org>", "RCPT TO:<" + rcpt + ">"} {
			if r := c.Cmd(cmd); r.Code != 250 {
				t.Fatalf("%s: %v", cmd, r)
			}
		}
	}

	long := strings.Repeat("a line of a body sent in chunks\r\n", 3000)
	chunks := []string{
		"Subject: chunked\r\nFrom: alice@example.org\r",
		"\nX-T: x\r\n\r\n.\r\n..two dots\r\nFrom the start of a line\r",
		"\n" + long[:50000],
		long[50000:] + ".\r\nthe end\r\n",
	}
	envelope("ok@lab.example")
	replies := bdat(chunks...)
	id := ""
	if last := replies[len(replies)-1]; strings.HasPrefix(last, "250 ") {
		if _, after, ok := strings.Cut(last, "queued as "); ok {
			id = after
		}
	}
	if id == "" {
		t.Fatalf("BDAT replies %q, want the message queued", replies)
	}
	envelope("reject@lab.example")
	if got := bdat("Subject: rejected\r\n\r\nbody\r\n"); !slices.Equal(got, []string{"550 5.7.1 Rejected by test filter"}) {
		t.Errorf("rejected message: %q", got)
	}
	envelope("ok2@lab.example")
	first := "Subject: abandoned\r\n\r\n"
	if err := c.WriteRaw([]byte(fmt.Sprintf("BDAT %d\r\n%s", len(first), first))); err != nil {
		t.Fatal(err)
	}
	if r, err := c.ReadReply(); err != nil || r.Code != 250 {
		t.Fatalf("first chunk of the abandoned message: %v %v", r, err)
	}
	if r := c.Cmd("RSET"); r.Code != 250 {
		t.Fatalf("RSET: %v", r)
	}
	if r := c.Send("alice@example.org", []string{"ok3@lab.example"}, []byte("Subject: with DATA\r\n\r\nbody\r\n")); r.Code != 250 {
		t.Errorf("DATA after BDAT: %v", r)
	}
	c.Quit()

	wantBody := strings.ReplaceAll(strings.Join(chunks, ""), "\r\n", "\n")
	_, wantBody, _ = strings.Cut(wantBody, "\n\n")
	mta.WaitDelivered(t, 2, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	var subjects []string
	for _, d := range mta.Delivered(t) {
		subjects = append(subjects, d.Get("Subject"))
		if d.Get("Subject") == "chunked" {
			if string(d.Body) != wantBody {
				t.Errorf("delivered body differs from the body sent (%d bytes, want %d)", len(d.Body), len(wantBody))
			}
			if d.Get("X-T") != "x" || len(d.Values("X-Sluice-Test")) != 1 {
				t.Errorf("delivered header: X-T %q, X-Sluice-Test %q", d.Get("X-T"), d.Values("X-Sluice-Test"))
			}
		}
	}
	slices.Sort(subjects)
	if !slices.Equal(subjects, []string{"chunked", "with DATA"}) {
		t.Errorf("delivered %q", subjects)
	}

	var archived []string
	for _, target := range []string{"default", "reject"} {
		for _, m := range archiveReadPython(t, filepath.Join(dir, "archive", target+".mbox")) {
			fields, body := archiveSplit(m.Message)
			subject := strings.Join(archiveField(fields, "Subject"), ",")
			archived = append(archived, target+": "+subject)
			if subject == "chunked" {
				if string(body) != wantBody {
					t.Errorf("archived body differs from the body sent (%d bytes, want %d)", len(body), len(wantBody))
				}
				if got := archiveField(fields, "X-Sluice-Queue-ID"); len(got) != 1 || got[0] != id {
					t.Errorf("archived queue id %q, want %s", got, id)
				}
			}
		}
	}
	if want := []string{"default: chunked", "default: with DATA", "reject: rejected"}; !slices.Equal(archived, want) {
		t.Errorf("archived %q, want %q", archived, want)
	}
	// A line is written as sluice ends the message, which may come after
	// the MTA is done with it.
	waitFor(t, func() bool { return strings.Count(td.log.String(), "msg=message") >= 4 })
	var verdicts []string
	for _, line := range strings.Split(td.log.String(), "\n") {
		if _, v, ok := strings.Cut(line, " verdict="); ok && strings.Contains(line, "msg=message") {
			verdicts = append(verdicts, strings.Fields(v)[0])
		}
	}
	if want := []string{"accept", "reject", "aborted", "accept"}; !slices.Equal(verdicts, want) {
		t.Errorf("message lines' verdicts %q, want %q", verdicts, want)
	}
	if left, err := os.ReadDir(spill); err != nil || len(left) != 0 {
		t.Errorf("spill directory holds %d files (%v), want none", len(left), err)
	}
}
