package mailbox

import (
	"strings"
	"testing"
)

// Each message of an mbox carries the From_ line it was read under, line
// end and all, for a reader that reads it as bogofilter does (see
// Message.From): a CRLF one, one longer than the read buffer (kept up to
// maxFromLine bytes, then ended with a line end), and none for a file
// that is no mbox, nor for an MMDF file.
func TestMessageFromLine(t *testing.T) {
	long := "From a@example.org " + strings.Repeat("x", readBuffer+10) + "\n"
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"mbox", "From a@example.org  Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n\n" +
			"From b@example.org  Tue Jan  2 10:00:00 2024\r\nSubject: two\r\n\r\nbody\r\n",
			[]string{"From a@example.org  Mon Jan  1 10:00:00 2024\n", "From b@example.org  Tue Jan  2 10:00:00 2024\r\n"}},
		{"long", long + "Subject: long\n\nbody\n",
			[]string{long[:maxFromLine] + "\n"}},
		{"plain", "Subject: plain\n\nbody\n", []string{""}},
		{"mmdf", "\x01\x01\x01\x01\nFrom a@example.org  Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n\x01\x01\x01\x01\n", []string{""}},
	} {
		got := collectCapped(t, tc.name, tc.text, 0)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d messages, want %d: %s", tc.name, len(got), len(tc.want), summary(got))
			continue
		}
		for i, m := range got {
			if m.Err != nil {
				t.Errorf("%s #%d: %v", tc.name, i+1, m.Err)
			}
			if string(m.From) != tc.want[i] {
				t.Errorf("%s #%d: From %q, want %q", tc.name, i+1, m.From, tc.want[i])
			}
		}
	}
}
