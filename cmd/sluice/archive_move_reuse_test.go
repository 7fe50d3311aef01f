package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
)

// Postfix's short queue ids (its default, enable_long_queue_ids = no)
// come again, so an archive kept for months holds several messages under
// one id. Moving "the" message of an id to the ham archive must not also
// file an old spam with the ham; the move moves nothing and says how to
// pick the message. The copies of one message (one per recipient with a
// {rcpt} template) share their queue id and move together.
func TestArchiveMoveQueueIDReused(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]string{"spam": "{rcpt_local}-spam.mbox", "ham": "{rcpt_local}-ham.mbox"}
	f, err := archive.New(filters.Env{Name: "archive", StateDir: dir}, archive.Config{Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	const qid = "3F2A81C0E4B"
	archiveAs(t, f, fixture("spam", "00.eml"), qid, "Spam", "bob@lab.example")
	archiveAs(t, f, fixture("ham", "00.eml"), qid, "Spam", "bob@lab.example", "carol@lab.example")
	cfg := filepath.Join(dir, "sluice.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("state_dir: %s\nfilters:\n  - type: archive\n    options:\n      targets:\n"+
		"        spam: \"{rcpt_local}-spam.mbox\"\n        ham: \"{rcpt_local}-ham.mbox\"\n", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	bob, carol := filepath.Join(dir, "bob-spam.mbox"), filepath.Join(dir, "carol-spam.mbox")

	r := runCLI(t, "", "--config", cfg, "archive", "move", "--queue-id", qid, "--to", "ham", bob, carol)
	if r.code != 1 || !strings.Contains(r.stderr, "queue id "+qid+" picks different messages: "+bob+"#1 and "+bob+"#2") ||
		!strings.Contains(r.stderr, "--message-id") || r.stdout != "" {
		t.Errorf("move --queue-id over a reused id: %+v, want exit 1, an error naming both and nothing moved", r)
	}
	if n, m := len(countRecords(t, bob)), len(countRecords(t, carol)); n != 2 || m != 1 {
		t.Errorf("after the refused move: %d records for bob, %d for carol, want 2 and 1", n, m)
	}

	// The message meant, by its Message-ID: its copies for bob and carol.
	r = runCLI(t, "", "--config", cfg, "archive", "move", "--message-id", "6665e7e423@team.example", "--to", "ham", bob, carol)
	if r.code != 0 || strings.Count(r.stdout, "moved "+qid+" from ") != 2 {
		t.Errorf("move --message-id: %+v", r)
	}
	if n := len(countRecords(t, bob)); n != 1 {
		t.Errorf("%d records left for bob, want the old spam", n)
	}
	// One message under the id: moved by it.
	r = runCLI(t, "", "--config", cfg, "archive", "move", "--queue-id", qid, "--to", "ham", filepath.Join(dir, "bob-ham.mbox"), filepath.Join(dir, "carol-ham.mbox"))
	if r.code != 1 || !strings.Contains(r.stderr, "already in") {
		t.Errorf("move of the one message already there: %+v", r)
	}
}
