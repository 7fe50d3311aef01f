package mailbox

import (
	"path/filepath"
	"strings"
	"testing"
)

// Variants of mbox as writers write them, read by the separator lines
// alone (docs/training.md): a Content-Length field (mboxcl, mboxcl2),
// right, wrong or missing, neither joins nor cuts messages; Thunderbird's
// "From - DATE" separators count as separators; an mbox whose first line
// is no From_ line is one message, as any file that does not start as an
// mbox is.
func TestMboxVariants(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, text string
		want       string
	}{
		{"cl", "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: right\nContent-Length: 5\n\nbody\n\n" +
			"From a@example.org Mon Jan  1 11:00:00 2024\nSubject: wrong\nContent-Length: 9999\n\nbody\n\n" +
			"From a@example.org Mon Jan  1 12:00:00 2024\nSubject: short\nContent-Length: 1\n\nbody\nmore\n\n" +
			"From a@example.org Mon Jan  1 13:00:00 2024\nSubject: missing\n\nbody\n",
			"#1: \"Subject: right\\nContent-Length: 5\\n\\nbody\\n\"\n" +
				"#2: \"Subject: wrong\\nContent-Length: 9999\\n\\nbody\\n\"\n" +
				"#3: \"Subject: short\\nContent-Length: 1\\n\\nbody\\nmore\\n\"\n" +
				"#4: \"Subject: missing\\n\\nbody\\n\"\n"},
		{"thunderbird", "From - Mon Jan  1 10:00:00 2024\r\nX-Mozilla-Status: 0001\r\nSubject: a\r\n\r\nbody\r\n\r\n" +
			"From - Mon Jan  1 11:00:00 2024\r\nX-Mozilla-Status: 0000\r\nSubject: b\r\n\r\nbody\r\n",
			"#1: \"X-Mozilla-Status: 0001\\r\\nSubject: a\\r\\n\\r\\nbody\\r\\n\"\n" +
				"#2: \"X-Mozilla-Status: 0000\\r\\nSubject: b\\r\\n\\r\\nbody\\r\\n\"\n"},
		{"headless", "Subject: first line no From_ line\n\nbody\n\nFrom a@example.org Mon Jan  1 10:00:00 2024\nSubject: b\n\nbody\n",
			": \"Subject: first line no From_ line\\n\\nbody\\n\\nFrom a@example.org Mon Jan  1 10:00:00 2024\\nSubject: b\\n\\nbody\\n\"\n"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.name)
		write(t, path, c.text)
		var want string
		for _, line := range strings.SplitAfter(c.want, "\n") {
			if line != "" {
				want += path + line
			}
		}
		if got := summary(collect(t, path, "")); got != want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, got, want)
		}
	}
}

// Mutt writes a message it has no sender address for (spam without a
// From field, saved to a junk folder) with an empty sender in its From_
// line, "From  Wed Dec  6 ...". That line separates as any other: read
// as body, it merged the message into the one before.
func TestMboxEmptySender(t *testing.T) {
	text := "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n\n" +
		"From  Wed Dec  6 01:00:00 2026\nSubject: no sender\n\nbody\n\n" +
		"From b@example.org Mon Jan  1 12:00:00 2024\nSubject: three\n\nbody\n"
	got := collectCapped(t, "box", text, 0)
	want := "box#1: \"Subject: one\\n\\nbody\\n\"\nbox#2: \"Subject: no sender\\n\\nbody\\n\"\nbox#3: \"Subject: three\\n\\nbody\\n\"\n"
	if summary(got) != want {
		t.Errorf("got\n%s\nwant\n%s", summary(got), want)
	}
}
