package mailbox

import (
	"path/filepath"
	"strings"
	"testing"
)

// A file that a Windows tool saved starts with a UTF-8 byte order mark,
// which is no part of the message. It was accepted (see
// TestDirectoryNonMailReported) but kept: the message's first line was
// then "\ufeffReturn-Path: ...", no header field to the tokenizer, which
// read the whole header as body text, and whose digest made it another
// message than the same one without the mark. An mbox so saved was read
// as one message, its From_ lines and all. The mark is left out, named,
// met in a directory, or on standard input, and its bytes still count.
func TestByteOrderMarkLeftOut(t *testing.T) {
	const bom = "\ufeff"
	msg := "Return-Path: <a@example.org>\nSubject: fine\n\nbody\n"
	mbox := "From a@example.org Mon Jan  1 10:00:00 2024\n" + msg + "\n" +
		"From b@example.org Mon Jan  1 11:00:00 2024\nSubject: two\n\nsecond\n"
	root := t.TempDir()
	write(t, filepath.Join(root, "dir", "saved.eml"), bom+msg)
	write(t, filepath.Join(root, "saved.eml"), bom+msg)
	write(t, filepath.Join(root, "saved.mbox"), bom+mbox)
	write(t, filepath.Join(root, "saved.mmdf"), bom+"\x01\x01\x01\x01\n"+msg+"\x01\x01\x01\x01\n")

	for _, path := range []string{filepath.Join(root, "dir"), filepath.Join(root, "saved.eml"), filepath.Join(root, "saved.mmdf")} {
		got := collect(t, path, "")
		if len(got) != 1 || got[0].Err != nil || string(got[0].Data) != msg {
			t.Errorf("%s: %s", path, summary(got))
		}
		checkSizes(t, got, len(bom+msg)+strings.Count(path, "mmdf")*10)
	}
	got := collect(t, filepath.Join(root, "saved.mbox"), "")
	if len(got) != 2 || got[0].Err != nil || string(got[0].Data) != msg || got[1].Err != nil || string(got[1].Data) != "Subject: two\n\nsecond\n" {
		t.Errorf("mbox: %s", summary(got))
	}
	checkSizes(t, got, len(bom+mbox))
	got = collect(t, Stdin, bom+msg)
	if len(got) != 1 || got[0].Err != nil || string(got[0].Data) != msg {
		t.Errorf("standard input: %s", summary(got))
	}
	// The mark alone is no message.
	got = collect(t, Stdin, bom+"\n")
	if len(got) != 1 || got[0].Err == nil {
		t.Errorf("a mark alone: %s", summary(got))
	}
}
