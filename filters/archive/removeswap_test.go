package archive

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Locks do not stop a rename: whoever may write the archive's directory
// (the daemon's user) can move the mbox away once RemoveRecords holds it
// and put a symbolic link at its name, to another archive or, when root
// runs "sluice archive move", to /etc/shadow. The rewritten mbox must not
// be renamed over whatever the name leads to then: that file's content
// would be lost (or replaced by archived mail, owned by the mbox's owner),
// and the record meant to go would stay where it was, reported removed.
func TestRemoveRecordsRefusesSwappedName(t *testing.T) {
	dir := t.TempDir()
	spam, ham := filepath.Join(dir, "spam.mbox"), filepath.Join(dir, "ham.mbox")
	rec := func(q string) string {
		return "From a@b Thu Jan  1 00:00:00 2025\nX-Sluice-Queue-ID: " + q + "\n\nbody " + q + "\n\n"
	}
	spamBefore, hamBefore := rec("A")+rec("B")+rec("C"), rec("H1")+rec("H2")
	if err := os.WriteFile(spam, []byte(spamBefore), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ham, []byte(hamBefore), 0o640); err != nil {
		t.Fatal(err)
	}
	a := NewAppender(time.Second, nil)
	swapped := false
	a.link = func(oldname, newname string) error {
		err := os.Link(oldname, newname)
		if !swapped && newname == spam+lockSuffix {
			// Another process, with the mbox open and locked: its name
			// now leads to the ham archive.
			swapped = true
			if err := os.Rename(spam, filepath.Join(dir, "spam.old")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("ham.mbox", spam); err != nil {
				t.Fatal(err)
			}
		}
		return err
	}
	n, err := a.RemoveRecords(context.Background(), spam, func(r RecordAt) bool { return r.Head.QueueID() == "B" })
	if !swapped {
		t.Fatal("the name was not swapped: the test did not run")
	}
	if err == nil || !strings.Contains(err.Error(), "replaced or moved") {
		t.Errorf("RemoveRecords after the swap: dropped %d, error %v; want an error saying the mbox was replaced", n, err)
	}
	if got, _ := os.ReadFile(ham); string(got) != hamBefore {
		t.Errorf("the ham archive, never locked nor read, was replaced:\n got %q\nwant %q", got, hamBefore)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "spam.old")); string(got) != spamBefore {
		t.Errorf("the mbox locked changed:\n got %q\nwant %q", got, spamBefore)
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".*sluice-tmp*")); len(tmps) != 0 {
		t.Errorf("left behind: %v", tmps)
	}
}
