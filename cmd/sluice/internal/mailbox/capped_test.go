package mailbox

import (
	"strings"
	"testing"
)

func collectCapped(t *testing.T, name, text string, maxBytes int) []Message {
	t.Helper()
	var got []Message
	err := ReadCapped(name, strings.NewReader(text), maxBytes, func(m Message) error {
		got = append(got, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A message above the bound is held only up to the bound and one byte
// more, and the messages after it in the mbox are found as without a
// bound: its rest is read through, a line longer than the read buffer,
// quoted ">From " lines and a "From " line that follows no empty line
// included.
func TestReadCappedBoundsHugeMessage(t *testing.T) {
	const maxBytes = 1000
	huge := "Subject: huge\n\n" +
		strings.Repeat("a line of the huge body\n", 100) +
		strings.Repeat("x", 3*readBuffer) + "\n" + // longer than the read buffer
		">From quoted in the huge body\n" +
		"From not a separator: no empty line before\n" +
		strings.Repeat("y", readBuffer-3) + "\n\n\n" + // blank lines at a piece boundary
		"the end of the huge body\n"
	mbox := "From a@example.org Mon Jan  1 10:00:00 2024\n" +
		"Subject: one\n\nfirst body\n\n" +
		"From b@example.org Mon Jan  1 11:00:00 2024\n" +
		huge + "\n" +
		"From c@example.org Mon Jan  1 12:00:00 2024\n" +
		"Subject: three\n\n>From third body\n"

	whole := collectCapped(t, "box", mbox, 0)
	capped := collectCapped(t, "box", mbox, maxBytes)
	if len(whole) != 3 || len(capped) != 3 {
		t.Fatalf("whole:\n%s\ncapped:\n%s\nwant 3 messages each", summary(whole), summary(capped))
	}
	unquoted := strings.Replace(huge, ">From quoted", "From quoted", 1)
	if string(whole[1].Data) != unquoted || whole[1].Truncated {
		t.Errorf("without a bound the huge message is %d bytes (truncated %v), want all %d", len(whole[1].Data), whole[1].Truncated, len(unquoted))
	}
	if got := string(capped[1].Data); got != unquoted[:maxBytes+1] || !capped[1].Truncated {
		t.Errorf("bounded: %d bytes (truncated %v), want the first %d and truncated", len(got), capped[1].Truncated, maxBytes+1)
	}
	for i, m := range capped {
		if m.Name != whole[i].Name || m.Size != whole[i].Size || m.Err != nil {
			t.Errorf("message %d: bounded %q size %d err %v, without a bound %q size %d", i, m.Name, m.Size, m.Err, whole[i].Name, whole[i].Size)
		}
		if i != 1 && (string(m.Data) != string(whole[i].Data) || m.Truncated) {
			t.Errorf("message %d: bounded %q (truncated %v), without a bound %q", i, m.Data, m.Truncated, whole[i].Data)
		}
	}
}

// The bound keeps the line end that belongs to the mbox out of what it
// counts: a message exactly at the bound, or one byte over, is held as
// without a bound.
func TestReadCappedAtTheBound(t *testing.T) {
	for _, size := range []int{9, 10, 11, 12, 13} {
		body := strings.Repeat("b", size-1) + "\n"
		for _, mbox := range []string{
			"From a Mon Jan  1 10:00:00 2024\n" + body + "\nFrom b Mon Jan  1 10:00:00 2024\nx\n",
			"From a Mon Jan  1 10:00:00 2024\n" + body + "\n",
			"From a Mon Jan  1 10:00:00 2024\r\n" + strings.ReplaceAll(body, "\n", "\r\n") + "\r\n",
		} {
			whole := collectCapped(t, "box", mbox, 0)
			capped := collectCapped(t, "box", mbox, 10)
			want := whole[0].Data
			if len(want) > 11 {
				want = want[:11]
			}
			if string(capped[0].Data) != string(want) || capped[0].Truncated != (len(whole[0].Data) > 11) {
				t.Errorf("size %d, mbox %q: bounded %q (truncated %v), without a bound %q", size, mbox, capped[0].Data, capped[0].Truncated, whole[0].Data)
			}
		}
	}
}

// A plain file above the bound is held up to the bound and one byte more;
// its size is still the file's.
func TestReadCappedPlainFile(t *testing.T) {
	text := "Subject: x\n\n" + strings.Repeat("z", 5000)
	got := collectCapped(t, "file", text, 100)
	if len(got) != 1 || string(got[0].Data) != text[:101] || !got[0].Truncated || got[0].Size != int64(len(text)) {
		t.Fatalf("got %d messages: %q truncated %v size %d", len(got), got[0].Data, got[0].Truncated, got[0].Size)
	}
	got = collectCapped(t, "file", text, len(text))
	if string(got[0].Data) != text || got[0].Truncated {
		t.Errorf("a file at the bound: %d bytes, truncated %v", len(got[0].Data), got[0].Truncated)
	}
}
