package mailbox

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A mailbox's dot-lock beside it in a directory walked is no message and
// no error: the archive filter's lock ("sluice pid=... size=..."), left by
// a daemon that died appending or there while one appends, and another
// program's (a pid, as liblockfile writes). A file named so without its
// mailbox beside it is read as any other file.
func TestDotLockBesideMailboxSkipped(t *testing.T) {
	root := t.TempDir()
	mbox := "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n\n" +
		"From b@example.org Mon Jan  1 10:00:01 2024\nSubject: two\n\nbody\n"
	files := map[string]string{
		"spam.mbox":      mbox,
		"spam.mbox.lock": fmt.Sprintf("sluice pid=%d start=1 host=localhost size=0\n", os.Getpid()),
		"ham":            mbox,
		"ham.lock":       "4242\n",
		"notes.lock":     "Subject: a message, whatever its name\n\nbody\n",
		"stray.lock":     "4243\n",
	}
	for name, text := range files {
		write(t, filepath.Join(root, name), text)
	}
	got := collect(t, root, "")
	want := root + "/ham#1: \"Subject: one\\n\\nbody\\n\"\n" +
		root + "/ham#2: \"Subject: two\\n\\nbody\\n\"\n" +
		root + "/notes.lock: \"Subject: a message, whatever its name\\n\\nbody\\n\"\n" +
		root + "/spam.mbox#1: \"Subject: one\\n\\nbody\\n\"\n" +
		root + "/spam.mbox#2: \"Subject: two\\n\\nbody\\n\"\n" +
		root + "/stray.lock: error " + errNoMail.Error() + "\n"
	if s := summary(got); s != want {
		t.Errorf("walk:\n%s\nwant:\n%s", s, want)
	}
	// The progress bar's total leaves the locks out too.
	var size int64
	for _, name := range []string{"spam.mbox", "ham", "notes.lock", "stray.lock"} {
		size += int64(len(files[name]))
	}
	if got := TotalSize([]string{root}); got != size {
		t.Errorf("TotalSize = %d, want %d", got, size)
	}
}
