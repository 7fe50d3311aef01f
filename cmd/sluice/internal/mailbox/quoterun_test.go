package mailbox

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters/archive"
)

// A line of '>'s longer than the read buffer is read in pieces; it is
// unquoted all the same when "From " follows the run (one '>' fewer, as
// archive.ReadMbox, "sluice archive show", has it), and kept as it is
// otherwise, wherever the pieces end: inside the run, just after it, or
// inside the "From ".
func TestLongQuotedFromLine(t *testing.T) {
	const sep = "From a@example.org Mon Jan  1 10:00:00 2024\n"
	for _, n := range []int{readBuffer - 6, readBuffer - 5, readBuffer - 3, readBuffer - 1, readBuffer, readBuffer + 1, 2*readBuffer - 2, 2 * readBuffer} {
		for _, rest := range []string{"From x\n", "Fromage\n", "Fro\n", "F\n", "\n", "x\n", "From x", "Fro"} {
			line := strings.Repeat(">", n) + rest
			for _, last := range []bool{false, true} {
				mbox := sep + "Subject: one\n\n" + line
				if !last {
					if !strings.HasSuffix(mbox, "\n") {
						continue
					}
					mbox += "\n" + sep + "Subject: two\n\nbody\n"
				}
				name := fmt.Sprintf("%d '>' then %q, last %v", n, rest, last)
				var want [][]byte
				if err := archive.ReadMbox(strings.NewReader(mbox), func(r archive.Record) error {
					want = append(want, r.Message)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				got := readInput(t, []byte(mbox), 0)
				if len(got) != len(want) {
					t.Errorf("%s: %d messages, want %d", name, len(got), len(want))
					continue
				}
				for i := range got {
					if !bytes.Equal(got[i].Data, want[i]) {
						a, b := got[i].Data, want[i]
						t.Errorf("%s: message %d has %d bytes, ends %q; want %d, ends %q", name, i, len(a), a[max(len(a)-12, 0):], len(b), b[max(len(b)-12, 0):])
					}
				}
			}
		}
	}
}
