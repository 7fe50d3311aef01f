package mailbox

import (
	"path/filepath"
	"testing"
)

// A maildir copied by rsync -m keeps only its cur/ when new/ and tmp/
// were empty, as tmp/ nearly always is; and a user may name a folder's
// cur/ itself (~/Maildir/.Junk/cur). Either is still read by the maildir
// rules, as long as cur/ holds files with maildir names (":2," and the
// flags): messages flagged T (moved out by an IMAP client without MOVE)
// are not learned, nor are the mail server's files or folders nested
// beside cur/.
func TestMaildirOfCurOnly(t *testing.T) {
	md := filepath.Join(t.TempDir(), "Archive")
	write(t, filepath.Join(md, "cur", "1700000001.M1.host:2,S"), "Subject: kept\n\nx\n")
	write(t, filepath.Join(md, "cur", "1700000002.M2.host:2,ST"), "Subject: moved away\n\nx\n")
	write(t, filepath.Join(md, "dovecot-uidlist"), "3 V1 N4\n")
	write(t, filepath.Join(md, "Junk", "cur", "1700000003.M3.host:2,S"), "Subject: nested junk\n\nx\n")
	for _, p := range []string{md, filepath.Join(md, "cur")} {
		got := collect(t, p, "")
		if len(got) != 1 || got[0].Err != nil || got[0].Name != filepath.Join(md, "cur", "1700000001.M1.host:2,S") {
			t.Errorf("%s: %s", p, summary(got))
		}
		if total, want := TotalSize([]string{p}), int64(len("Subject: kept\n\nx\n")); total != want {
			t.Errorf("%s: TotalSize %d, want %d", p, total, want)
		}
	}
}

// A directory of plain message files is no maildir for having, or
// being, a directory named cur: all of it is read, files whose names
// happen to hold a T included.
func TestCurOfPlainFilesIsNoMaildir(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "cur", "a-T.eml"), "Subject: a\n\nx\n")
	write(t, filepath.Join(root, "cur", "2023", "b.eml"), "Subject: b\n\nx\n")
	write(t, filepath.Join(root, "old", "c.eml"), "Subject: c\n\nx\n")
	for p, want := range map[string]int{root: 3, filepath.Join(root, "cur"): 2} {
		got := collect(t, p, "")
		if len(got) != want {
			t.Errorf("%s: %s, want %d messages", p, summary(got), want)
		}
		for _, m := range got {
			if m.Err != nil {
				t.Errorf("%s: %v", m.Name, m.Err)
			}
		}
		if total := TotalSize([]string{p}); total != int64(want*len("Subject: a\n\nx\n")) {
			t.Errorf("%s: TotalSize %d", p, total)
		}
	}
}
