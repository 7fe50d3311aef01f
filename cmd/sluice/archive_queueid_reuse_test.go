package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
)

// archiveAs archives the message file name with the given queue id,
// recipients and verdict, as the daemon does.
func archiveAs(t *testing.T, f *archive.Filter, name, queueID, verdict string, rcpts ...string) {
	t.Helper()
	raw := strings.ReplaceAll(string(mustRead(t, name)), "\n", "\r\n")
	hdr, body, _ := strings.Cut(raw, "\r\n\r\n")
	m := &filters.Message{QueueID: queueID, From: filters.Address{Addr: "sender@example.org"}, Body: filters.NewBody(1<<20, "")}
	for _, r := range rcpts {
		m.Rcpts = append(m.Rcpts, filters.Address{Addr: r})
	}
	for _, line := range strings.Split(hdr, "\r\n") {
		if line[0] == ' ' || line[0] == '\t' {
			m.Headers[len(m.Headers)-1].Value += "\r\n" + line
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		m.Headers = append(m.Headers, filters.Header{Name: k, Value: strings.TrimPrefix(v, " ")})
	}
	m.Headers = append(m.Headers, filters.Header{Name: "X-Sluice-Bayes", Value: verdict + ", spamicity=0.99"})
	m.Body.Write([]byte(body))
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
}

// Postfix's short queue ids (its default, enable_long_queue_ids = no)
// are the microseconds and the queue file's inode number, and come again:
// an archive kept for months holds several messages under one id.
// Retraining "the" message of a queue id as ham must not also learn an
// old spam that had the same id as ham; the run learns nothing and says
// how to pick the message. The copies of one message (one per recipient
// with a {rcpt} template) share their queue id and are one message.
func TestTrainQueueIDReused(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	trainFixtures(t, db)
	f, err := archive.New(filters.Env{Name: "archive", StateDir: dir}, archive.Config{Targets: map[string]string{
		"spam": "{rcpt_local}-spam.mbox",
	}})
	if err != nil {
		t.Fatal(err)
	}
	const qid = "3F2A81C0E4B"
	// Months ago: a spam, learned as spam (trainFixtures).
	archiveAs(t, f, fixture("spam", "00.eml"), qid, "Spam", "bob@lab.example")
	// Today Postfix gave the id again, to a ham the daemon called spam
	// and learned as spam.
	if r := runCLI(t, "", "train", "--db", db, "--spam", fixture("ham", "00.eml")); r.code != 0 {
		t.Fatalf("precondition: %+v", r)
	}
	archiveAs(t, f, fixture("ham", "00.eml"), qid, "Spam", "bob@lab.example", "carol@lab.example")
	bob, carol := filepath.Join(dir, "bob-spam.mbox"), filepath.Join(dir, "carol-spam.mbox")
	if n := len(countRecords(t, bob)); n != 2 {
		t.Fatalf("%s holds %d records, want 2", bob, n)
	}

	r := runCLI(t, "", "train", "--db", db, "--ham", "--queue-id", qid, bob, carol)
	if r.code != 1 || !strings.Contains(r.stderr, "queue id "+qid+" picks different messages: "+bob+"#1 and "+bob+"#2") ||
		!strings.Contains(r.stderr, "--message-id") || r.stdout != "" {
		t.Errorf("train --queue-id over a reused id: %+v, want exit 1, an error naming both and no summary", r)
	}
	if r := runCLI(t, "", "train", "--db", db, "--spam", fixture("spam", "00.eml")); r.stdout != "1 message: 0 learned as spam, 1 already learned, 0 moved from ham to spam, 0 errors\n" {
		t.Errorf("the old spam is no longer learned as spam: %+v", r)
	}

	// The message meant, by its Message-ID; its copy for carol too,
	// which is the same message under the same queue id.
	r = runCLI(t, "", "train", "--db", db, "--ham", "--message-id", "6665e7e423@team.example", bob, carol)
	if want := "2 messages: 0 learned as ham, 1 already learned, 1 moved from spam to ham, 0 errors\n"; r.code != 0 || r.stdout != want {
		t.Errorf("train --message-id: %+v, want %q", r, want)
	}
	r = runCLI(t, "", "train", "--db", db, "--spam", "--queue-id", qid, carol)
	if want := "1 message: 0 learned as spam, 0 already learned, 1 moved from ham to spam, 0 errors\n"; r.code != 0 || r.stdout != want {
		t.Errorf("train --queue-id, one message: %+v, want %q", r, want)
	}
}
