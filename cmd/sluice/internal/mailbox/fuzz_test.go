package mailbox

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// readInput returns the messages ReadCapped finds in data with the bound
// maxBytes, each Data copied.
func readInput(t *testing.T, data []byte, maxBytes int) []Message {
	t.Helper()
	var msgs []Message
	err := ReadCapped("in", bytes.NewReader(data), maxBytes, func(m Message) error {
		m.Data = bytes.Clone(m.Data)
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadCapped(bound %d): %v", maxBytes, err)
	}
	return msgs
}

// FuzzReadCapped checks, on any input, what train and classify rely on:
// reading never fails on an in-memory file; every input byte is counted
// in exactly one message's Size, so progress adds up; and a bound on the
// bytes held changes nothing but how much of each message is kept: the
// same messages, with the same names and sizes, each a prefix of the
// unbounded one, marked Truncated exactly when bytes were left out.
func FuzzReadCapped(f *testing.F) {
	for _, seed := range []string{
		"",
		"Subject: plain\n\nbody\n",
		"From a@b Thu Jan  1 00:00:00 2026\nSubject: one\n\nbody\n",
		"From a@b Thu Jan  1 00:00:00 2026\nSubject: one\n\n>From here\n\nFrom a@b Thu Jan  1 00:00:01 2026\nSubject: two\n\nx\n\n",
		"From a@b Thu Jan  1 00:00:00 2026\r\nA: 1\r\n\r\n\r\nFrom a@b Thu Jan  1 00:00:01 2026\r\n\r\n",
		"From x\nA: 1\n\nFrom y\nB: 2\n\nFrom my point of view\n",
		"From a@b Thu Jan  1 00:00:00 2026\n" + strings.Repeat("y", readBuffer+10) + "\n\nFrom a@b Thu Jan  1 00:00:01 2026\nB: 2\n",
		"From a@b Thu Jan  1 00:00:00 2026\n\n" + strings.Repeat(">", readBuffer-3) + "From x\n\nFrom a@b Thu Jan  1 00:00:01 2026\nB: 2\n",
		"\x01\x01\x01\x01\nA: 1\n\nbody\n\x01\x01\x01\x01\n\x01\x01\x01\x01\r\nFrom a@b Thu Jan  1 00:00:01 2026\nB: 2\n\x01\x01\x01\x01\r\n",
		"\x01\x01\x01\x01\nA: 1\n\x01\x01\x01\x01\nstray\n\x01\x01\x01\x01",
		"\x1f\x8b\b\x00\x00\x00",
	} {
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, bound uint8) {
		maxBytes := int(bound) + 1
		whole := readInput(t, data, 0)
		var size int64
		unread := false // input that is no mailbox: its bytes are not counted
		for _, m := range whole {
			size += m.Size
			var nr notRead
			if errors.As(m.Err, &nr) {
				unread = true
				continue
			}
			if m.Truncated {
				t.Errorf("%s: truncated without a bound", m.Name)
			}
			if (m.Err == nil) == (m.Data == nil) {
				t.Errorf("%s: data %q with error %v", m.Name, m.Data, m.Err)
			}
			if m.Err != nil && !errors.Is(m.Err, ErrEmpty) {
				t.Errorf("%s: %v", m.Name, m.Err)
			}
		}
		if size != int64(len(data)) && !unread {
			t.Errorf("sizes add up to %d bytes, input is %d", size, len(data))
		}
		capped := readInput(t, data, maxBytes)
		if len(capped) != len(whole) {
			t.Fatalf("bound %d: %d messages, %d without", maxBytes, len(capped), len(whole))
		}
		for i, c := range capped {
			w := whole[i]
			if c.Name != w.Name || c.Size != w.Size || (c.Err == nil) != (w.Err == nil) {
				t.Errorf("bound %d: message %d is %q size %d err %v, without bound %q size %d err %v",
					maxBytes, i, c.Name, c.Size, c.Err, w.Name, w.Size, w.Err)
				continue
			}
			want := w.Data[:min(len(w.Data), maxBytes+1)]
			if !bytes.Equal(c.Data, want) {
				t.Errorf("bound %d: %s holds %q, want %q", maxBytes, c.Name, c.Data, want)
			}
			if c.Truncated != (len(w.Data) > len(c.Data)) {
				t.Errorf("bound %d: %s truncated %v, holds %d of %d bytes", maxBytes, c.Name, c.Truncated, len(c.Data), len(w.Data))
			}
		}
	})
}
