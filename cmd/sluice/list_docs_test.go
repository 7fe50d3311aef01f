package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// A path named, in a list too, is read as one message whatever it is:
// the maildir rules (tmp/ left alone, messages flagged T skipped, a
// folder's index files not read) hold only for a maildir named as a
// directory. The find command that docs/training.md gives for --list -
// must so list the new messages of a maildir and nothing else. It listed
// every file of the folder: Dovecot's dovecot-uidlist and index files,
// deliveries in progress in tmp/, and the hams an IMAP client marked
// deleted (T) when it moved them out of Junk, all learned as spam.
func TestTrainingListExampleListsOnlyMessages(t *testing.T) {
	if _, err := exec.LookPath("find"); err != nil {
		t.Skip("no find(1)")
	}
	doc := readDoc(t, "docs/training.md")
	m := regexp.MustCompile("`(find ~/Maildir/\\.Junk[^`]*?) \\| sluice train --spam --list -`").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/training.md has no `find ~/Maildir/.Junk ... | sluice train --spam --list -` example")
	}
	home := t.TempDir()
	junk := filepath.Join(home, "Maildir", ".Junk")
	files := map[string]bool{ // listed?
		"new/1700000001.M1P1.host":       true,
		"cur/1700000002.M2P2.host:2,S":   true,
		"cur/1700000003.M3P3.host:2,":    true,
		"cur/1700000004.M4P4.host:2,ST":  false, // moved out, marked deleted
		"cur/1700000005.M5P5.host:2,FTS": false,
		"tmp/1700000006.M6P6.host":       false, // being delivered
		"dovecot-uidlist":                false,
		"dovecot.index.log":              false,
		"maildirfolder":                  false,
	}
	for name := range files {
		p := filepath.Join(junk, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("Subject: x\n\nbody\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stamp := filepath.Join(home, "stamp")
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stamp, old, old); err != nil {
		t.Fatal(err)
	}
	command := strings.ReplaceAll(m[1], "~/", home+"/")
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir = home
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	var got, want []string
	for _, l := range strings.Fields(string(out)) {
		rel, _ := filepath.Rel(junk, l)
		got = append(got, rel)
	}
	for name, listed := range files {
		if listed {
			want = append(want, name)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s lists %q, want %q", m[1], got, want)
	}
}
