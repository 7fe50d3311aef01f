package mailbox

import (
	"path/filepath"
	"strings"
	"testing"
)

// A file of one message may start with empty lines (a tool that writes
// one before each message it saves): such a file is mail, by its first
// line that is not empty (see TestDirectoryNonMailReported), as an mbox
// starting so is an mbox. The empty lines were kept in the message,
// where an empty first line ends the header before it begins: the
// tokenizer read the whole header as body text, and the digest made it
// another message than the same one without them, learned twice rather
// than moved. They are left out, and their bytes still count.
func TestLeadingBlankLinesLeftOut(t *testing.T) {
	msg := "Return-Path: <a@example.org>\nSubject: fine\n\nbody\n"
	text := "\n\r\n\n" + msg
	root := t.TempDir()
	write(t, filepath.Join(root, "dir", "saved.eml"), text)
	write(t, filepath.Join(root, "saved.eml"), text)
	for _, path := range []string{filepath.Join(root, "dir"), filepath.Join(root, "saved.eml")} {
		got := collect(t, path, "")
		if len(got) != 1 || got[0].Err != nil || string(got[0].Data) != msg {
			t.Errorf("%s: %s", path, summary(got))
		}
		checkSizes(t, got, len(text))
	}
	got := collect(t, Stdin, text)
	if len(got) != 1 || got[0].Err != nil || string(got[0].Data) != msg {
		t.Errorf("standard input: %s", summary(got))
	}
	// Bounded, the bound is the message's, not the empty lines'.
	var capped []Message
	if err := WalkCapped(Stdin, strings.NewReader(text), len(msg), func(m Message) error {
		capped = append(capped, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(capped) != 1 || string(capped[0].Data) != msg || capped[0].Truncated || capped[0].Size != int64(len(text)) {
		t.Errorf("bounded: %s truncated %v size %d", summary(capped), capped[0].Truncated, capped[0].Size)
	}
	// Empty lines alone are still no message.
	got = collect(t, Stdin, "\n\r\n")
	if len(got) != 1 || got[0].Err == nil {
		t.Errorf("empty lines alone: %s", summary(got))
	}
}
