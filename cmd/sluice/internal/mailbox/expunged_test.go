package mailbox

import (
	"path/filepath"
	"testing"
)

// Thunderbird deletes a message from a local folder, or moves it out (a
// ham the user moves from Junk to the inbox), by setting the Expunged bit
// (0x0008) of the X-Mozilla-Status field it writes first in each message,
// and leaves the message in the mbox until the folder is compacted. Such
// a message is no longer in the folder, as a maildir message flagged T is
// not: "train --spam Junk" must not learn the ham moved out as spam. The
// field counts only where Thunderbird writes it, first after the From_
// line: one a sender put among its own fields is no state of the folder's.
func TestThunderbirdExpungedSkipped(t *testing.T) {
	const (
		kept = "From - Mon Jan  1 10:00:00 2024\nX-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nSubject: kept\n\nkept\n\n"
		// Read (0x0001) and expunged (0x0008).
		moved = "From - Mon Jan  1 11:00:00 2024\nX-Mozilla-Status: 0009\nX-Mozilla-Status2: 00000000\nSubject: moved out\n\nmoved\n\n"
		// A sender's field, after the trace fields: not Thunderbird's.
		forged = "From a@example.org Mon Jan  1 12:00:00 2024\nReceived: from x by y\nX-Mozilla-Status: 0009\nSubject: forged\n\nforged\n\n"
		crlf   = "From - Mon Jan  1 13:00:00 2024\r\nX-Mozilla-Status: 0008\r\nSubject: crlf\r\n\r\ncrlf\r\n\r\n"
		last   = "From - Mon Jan  1 14:00:00 2024\nX-Mozilla-Status: 8001\nSubject: last\n\nlast\n"
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "Junk")
	write(t, path, kept+moved+forged+crlf+last)
	got := collect(t, path, "")
	want := path + "#1: \"X-Mozilla-Status: 0001\\nX-Mozilla-Status2: 00000000\\nSubject: kept\\n\\nkept\\n\"\n" +
		path + "#3: \"Received: from x by y\\nX-Mozilla-Status: 0009\\nSubject: forged\\n\\nforged\\n\"\n" +
		path + "#5: \"X-Mozilla-Status: 8001\\nSubject: last\\n\\nlast\\n\"\n"
	if summary(got) != want {
		t.Errorf("got\n%s\nwant\n%s", summary(got), want)
	}
	// The sizes of the messages read still add up to the file's, for the
	// progress bar.
	checkSizes(t, got, len(kept+moved+forged+crlf+last))
	// An mbox of a message and an expunged one is named as one of a single
	// message would be not: the number says where it is.
	write(t, path, kept+moved)
	if got := collect(t, path, ""); len(got) != 1 || got[0].Name != path+"#1" {
		t.Errorf("got %s", summary(got))
	}
}
