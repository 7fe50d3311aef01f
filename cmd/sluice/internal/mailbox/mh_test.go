package mailbox

import (
	"path/filepath"
	"testing"
)

// An MH folder (nmh, MH-E, exmh) is a directory of messages named by
// number. Removing a message renames it ",N" (nmh's default backup
// prefix) or "#N" rather than deleting it; walking the folder must not
// learn those with the messages the user kept. A file so named is still
// read when named, and names that merely start so are not MH's.
func TestMHRemovedMessagesSkipped(t *testing.T) {
	root := t.TempDir()
	folder := filepath.Join(root, "inbox")
	msg := "From: a@example.org\nSubject: kept\n\nbody\n"
	write(t, filepath.Join(folder, "1"), msg)
	write(t, filepath.Join(folder, ",2"), "From: b@example.org\nSubject: removed\n\nbody\n")
	write(t, filepath.Join(folder, "#3"), "From: c@example.org\nSubject: removed too\n\nbody\n")
	write(t, filepath.Join(folder, ",notes"), msg)
	got := collect(t, folder, "")
	if len(got) != 2 || got[0].Err != nil || got[1].Err != nil ||
		filepath.Base(got[0].Name) != ",notes" || filepath.Base(got[1].Name) != "1" {
		t.Errorf("MH folder: %s", summary(got))
	}
	got = collect(t, filepath.Join(folder, ",2"), "")
	if len(got) != 1 || got[0].Err != nil {
		t.Errorf("a removed message named: %s", summary(got))
	}
}
