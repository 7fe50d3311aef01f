package mailbox

import (
	"path/filepath"
	"testing"
)

// Folders nested in a maildir's own directory, as Dovecot's LAYOUT=fs and
// mbsync's "SubFolders Verbatim" keep them (Archive/2023/{cur,new,tmp}
// inside Archive/), are not read with it, as Maildir++ folders (.Junk)
// are not: a folder trained as ham must not take a Junk folder below it
// along. Named, each is read. Courier's courierimapkeywords/ and the
// like are never read.
func TestMaildirNestedFoldersNotRead(t *testing.T) {
	root := t.TempDir()
	md := filepath.Join(root, "Archive")
	write(t, filepath.Join(md, "cur", "1.host:2,S"), "Subject: archive\n\nx\n")
	write(t, filepath.Join(md, "tmp", ".keep"), "")
	write(t, filepath.Join(md, "2023", "cur", "2.host:2,S"), "Subject: 2023\n\nx\n")
	write(t, filepath.Join(md, "2023", "new", "3.host"), "Subject: 2023 new\n\nx\n")
	write(t, filepath.Join(md, "courierimapkeywords", ":list"), "$Junk\n")
	got := collect(t, md, "")
	if len(got) != 1 || got[0].Name != filepath.Join(md, "cur", "1.host:2,S") {
		t.Errorf("maildir: %s", summary(got))
	}
	if got := collect(t, filepath.Join(md, "2023"), ""); len(got) != 2 {
		t.Errorf("nested folder named: %s", summary(got))
	}
}
