package mailbox

import (
	"path/filepath"
	"testing"
)

// TestIMAPPseudoMessageSkipped checks that the folder-state message an
// IMAP server writes first in an mbox is not read as mail, and that the
// same fields anywhere else, or only one of them, do not skip a message.
func TestIMAPPseudoMessageSkipped(t *testing.T) {
	const (
		pseudo = "From MAILER-DAEMON Mon Jan  1 09:00:00 2024\nDate: Mon, 1 Jan 2024 09:00:00 +0000\nFrom: Mail System Internal Data <MAILER-DAEMON@host.example>\n" +
			"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nMessage-ID: <1704099600@host.example>\nX-IMAP: 1704099600 0000000002\nStatus: RO\n\n" +
			"This text is part of the internal format of your mail folder, and is not\na real message.\n\n"
		real = "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: real\nX-UID: 1\n\nreal\n\n"
		// The same fields in a later message: a sender's, read.
		later = "From b@example.org Mon Jan  1 11:00:00 2024\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1 2\n\nlater\n"
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "INBOX")
	write(t, path, pseudo+real+later)
	got := collect(t, path, "")
	want := path + "#2: \"Subject: real\\nX-UID: 1\\n\\nreal\\n\"\n" +
		path + "#3: \"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\\nX-IMAP: 1 2\\n\\nlater\\n\"\n"
	if summary(got) != want {
		t.Errorf("got\n%s\nwant\n%s", summary(got), want)
	}
	checkSizes(t, got, len(pseudo+real+later))

	// The subject alone, or the X-IMAP field alone, is a message.
	for _, first := range []string{
		"From x@example.org Mon Jan  1 09:00:00 2024\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n\nbody\n\n",
		"From x@example.org Mon Jan  1 09:00:00 2024\nX-IMAP: 1 2\nSubject: hello\n\nbody\n\n",
	} {
		write(t, path, first+real)
		if got := collect(t, path, ""); len(got) != 2 {
			t.Errorf("%q first: got %s, want both messages", first, summary(got))
		}
	}
	// An MMDF file (UW-IMAP's mmdf driver keeps the same message).
	const mark = "\x01\x01\x01\x01\n"
	mmdf := mark + "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1 2\n\nstate\n" + mark +
		mark + "Subject: real\n\nreal\n" + mark
	write(t, path, mmdf)
	got = collect(t, path, "")
	if want := path + "#2: \"Subject: real\\n\\nreal\\n\"\n"; summary(got) != want {
		t.Errorf("MMDF: got\n%s\nwant\n%s", summary(got), want)
	}
	checkSizes(t, got, len(mmdf))

	// CRLF line ends.
	write(t, path, "From MAILER-DAEMON Mon Jan  1 09:00:00 2024\r\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\r\nX-IMAP: 1 2\r\n\r\nstate\r\n\r\n"+real)
	if got := collect(t, path, ""); len(got) != 1 || got[0].Name != path+"#2" {
		t.Errorf("CRLF: got %s, want the second message alone", summary(got))
	}
}
