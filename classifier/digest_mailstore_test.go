package classifier

import "testing"

// The fields mail stores keep their own state in change whenever the
// user reads, flags or tags a message (Thunderbird's X-Mozilla-Status,
// X-Mozilla-Status2 and X-Mozilla-Keys, its POP account's X-Account-Key),
// or a message arrives after it (Dovecot's X-IMAPbase on an mbox's first
// message, which carries the next UID): the copy in such a folder is the
// message the daemon saw, and stays one message however its flags
// change. Otherwise a nightly "train --spam Junk" learned it again each
// time the user read it, and the copy moved to the inbox was not the
// message learned as spam, so training it as ham did not move it.
func TestMailStoreFieldsLeftOut(t *testing.T) {
	base := "From: a@example.org\nSubject: hi\nMessage-ID: <1@example.org>\n\nbody line\n"
	stored := []string{
		"X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nX-Mozilla-Keys:                                                                                 \n" + base,
		"X-Account-Key: account3\nX-UIDL: 1700000000.123\nX-Mozilla-Status: 0011\nX-Mozilla-Status2: 10000000\nX-Mozilla-Keys: $label1\n" + base,
		"X-IMAPbase: 1700000000 0000000042 $Junk NonJunk\nStatus: RO\nX-Status: F\nX-Keywords: $Junk\nX-UID: 1\nContent-Length: 10\n" + base,
		"X-IMAP: 1700000000 0000000042\n" + base,
	}
	tok := NewTokenizer(TokenizerOptions{})
	want := MessageDigest([]byte(base))
	for _, s := range stored {
		if MessageDigest([]byte(s)) != want {
			t.Errorf("digest of %q differs from the message's", s)
		}
		if tok.Digest([]byte(s)) != want {
			t.Errorf("tokenizer's digest of %q differs from the message's", s)
		}
	}
	// Not a field of the message itself either: another one keeps its
	// digest apart.
	if MessageDigest([]byte("X-Mozilla-Statux: 0001\n"+base)) == want {
		t.Error("a field that is no mail store's state was left out of the digest")
	}
}
