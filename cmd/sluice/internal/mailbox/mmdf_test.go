package mailbox

import (
	"path/filepath"
	"strings"
	"testing"
)

const mmdfSep = "\x01\x01\x01\x01\n"

// An MMDF mailbox (mutt's mbox_type=MMDF, SCO and MMDF delivery agents)
// holds each message between two lines of four ^A, without quoting: its
// messages are read one by one, whole, as the same messages in their own
// files are. Mutt writes a From_ line after the opening separator, which
// is no more part of the message than an mbox's.
func TestMMDF(t *testing.T) {
	one := "Return-Path: <a@example.org>\nSubject: one\n\nfirst body\n\nFrom the start, not quoted\n>From as written\n"
	two := "Subject: two\r\n\r\nsecond body, CRLF\r\n"
	three := "Subject: three\n\nno line end at the end"
	text := mmdfSep + one + mmdfSep +
		mmdfSep + "From b@example.org Mon Jan  1 11:00:00 2024\n" + two + mmdfSep +
		"\n" + // a blank line between two messages is no message
		"\x01\x01\x01\x01\r\n" + three + "\n\x01\x01\x01\x01\r\n"
	got := collectCapped(t, "box", text, 0)
	want := "box#1: " + q(one) + "\nbox#2: " + q(two) + "\nbox#3: " + q(three+"\n") + "\n"
	if summary(got) != want {
		t.Errorf("got\n%s\nwant\n%s", summary(got), want)
	}
	checkSizes(t, got, len(text))

	// One message is named as the file; one whose closing separator is
	// missing (cut short, or written by hand) is still read.
	if got := collectCapped(t, "box", mmdfSep+one, 0); summary(got) != "box: "+q(one)+"\n" {
		t.Errorf("got %s", summary(got))
	}

	// Text between two messages belongs to neither: it is reported, after
	// the messages, not dropped unseen.
	got = collectCapped(t, "box", mmdfSep+one+mmdfSep+"stray text\n"+mmdfSep+two+mmdfSep, 0)
	if len(got) != 3 || string(got[0].Data) != one || string(got[1].Data) != two || got[2].Name != "box" ||
		got[2].Err == nil || !strings.Contains(got[2].Err.Error(), "outside its ^A^A^A^A separators") {
		t.Errorf("stray text: got %s", summary(got))
	}

	// Bounded, the rest of a long message is read through to find the
	// next.
	long := "Subject: long\n\n" + strings.Repeat("x", 3*readBuffer) + "\n"
	got = collectCapped(t, "box", mmdfSep+long+mmdfSep+mmdfSep+one+mmdfSep, 100)
	if len(got) != 2 || !got[0].Truncated || string(got[0].Data) != long[:101] || string(got[1].Data) != one {
		t.Errorf("bounded: got %s", summary(got))
	}

	// In a directory beside an mbox, each is read as what it is.
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.mbox"), "From a@example.org Mon Jan  1 10:00:00 2024\n"+one+"\nFrom b@example.org Mon Jan  1 11:00:00 2024\n"+two)
	write(t, filepath.Join(dir, "b.mmdf"), mmdfSep+one+mmdfSep+mmdfSep+two+mmdfSep)
	got = collect(t, dir, "")
	if len(got) != 4 || string(got[2].Data) != one || string(got[3].Data) != two || got[2].Name != filepath.Join(dir, "b.mmdf#1") {
		t.Errorf("directory: got %s", summary(got))
	}
}

func q(s string) string { return strings.TrimSuffix(summary([]Message{{Data: []byte(s)}}), "\n")[2:] }
