package mailbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkWalkSmallFiles reads 200 files of about 5 kB each, as
// "sluice classify --list" does: one message per file, plain or as an
// mbox of one message (a file saved with its From_ line). With a 64 kB
// read buffer made afresh per file, and each message grown from nothing,
// this took 98-117 us per file on the development machine; with the
// buffer kept and the message sized from it, 38-48.
func BenchmarkWalkSmallFiles(b *testing.B) {
	dir := b.TempDir()
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", 80)
	var plain, mbox []string
	for i := range 200 {
		msg := fmt.Sprintf("From: a%d@example.com\nSubject: test %d\n\n%s", i, i, body)
		p := filepath.Join(dir, fmt.Sprintf("plain-%03d", i))
		m := filepath.Join(dir, fmt.Sprintf("mbox-%03d", i))
		if err := os.WriteFile(p, []byte(msg), 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(m, []byte("From a@example.com Thu Aug 22 12:36:23 2002\n"+msg), 0o600); err != nil {
			b.Fatal(err)
		}
		plain, mbox = append(plain, p), append(mbox, m)
	}
	for _, c := range []struct {
		name  string
		files []string
	}{{"plain", plain}, {"mbox", mbox}} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				for _, f := range c.files {
					err := WalkCapped(f, nil, 1<<20, func(m Message) error {
						n++
						return m.Err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			if n != b.N*len(c.files) {
				b.Fatalf("%d messages read from %d files", n, b.N*len(c.files))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(n), "us/file")
		})
	}
}
