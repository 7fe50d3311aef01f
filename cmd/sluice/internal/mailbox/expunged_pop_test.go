package mailbox

import (
	"path/filepath"
	"testing"
)

// A message Thunderbird fetched by POP starts with the fields its POP
// code writes before X-Mozilla-Status: X-Account-Key (the account it came
// from) and X-UIDL (its id on the server), then the status fields. The
// Expunged bit was looked for only in the first field, so a message the
// user of a POP account deleted, or moved out of the folder (a ham moved
// from Junk to the inbox), was still learned from the folder it had left.
// Thunderbird's own fields before it count as Thunderbird's; a sender's
// field after the delivery's trace fields still does not.
func TestThunderbirdPOPExpungedSkipped(t *testing.T) {
	const (
		pop  = "X-Account-Key: account2\nX-UIDL: 000012345abc\n"
		kept = "From - Mon Jan  1 10:00:00 2024\n" + pop + "X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nReturn-Path: <a@example.org>\nSubject: kept\n\nkept\n\n"
		// Read (0x0001) and expunged (0x0008).
		moved = "From - Mon Jan  1 11:00:00 2024\n" + pop + "X-Mozilla-Status: 0009\nX-Mozilla-Status2: 00000000\nReturn-Path: <a@example.org>\nSubject: moved out\n\nmoved\n\n"
		// Without X-UIDL (a server that gives none), CRLF.
		crlf = "From - Mon Jan  1 12:00:00 2024\r\nX-Account-Key: account2\r\nX-Mozilla-Status: 0008\r\nSubject: crlf\r\n\r\ncrlf\r\n\r\n"
		// A sender's fields, after the trace fields: not Thunderbird's.
		forged = "From a@example.org Mon Jan  1 13:00:00 2024\nReceived: from x by y\n" + pop + "X-Mozilla-Status: 0009\nSubject: forged\n\nforged\n"
	)
	path := filepath.Join(t.TempDir(), "Inbox")
	write(t, path, kept+moved+crlf+forged)
	got := collect(t, path, "")
	want := path + "#1: \"" + `X-Account-Key: account2\nX-UIDL: 000012345abc\nX-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nReturn-Path: <a@example.org>\nSubject: kept\n\nkept\n` + "\"\n" +
		path + "#4: \"" + `Received: from x by y\nX-Account-Key: account2\nX-UIDL: 000012345abc\nX-Mozilla-Status: 0009\nSubject: forged\n\nforged\n` + "\"\n"
	if summary(got) != want {
		t.Errorf("got\n%s\nwant\n%s", summary(got), want)
	}
	checkSizes(t, got, len(kept+moved+crlf+forged))
}
