package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// wordyMbox writes an mbox of n messages, each of a few hundred words
// of its own, so that a training run over it takes several batches and
// a store that grows with every one.
func wordyMbox(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	x := uint32(1)
	word := func() string {
		w := make([]byte, 5+x%6)
		for i := range w {
			x = x*1664525 + 1013904223
			w[i] = 'a' + byte(x>>24)%26
		}
		return string(w)
	}
	for i := range n {
		fmt.Fprintf(&b, "From sender@example.org Mon Jan  1 00:00:00 2024\nFrom: s%d@example.org\nTo: r@example.org\nSubject: offer %d\nMessage-ID: <%d@example.org>\n\n", i, i, i)
		for range 30 {
			words := make([]string, 10)
			for k := range words {
				words[k] = word()
			}
			b.WriteString(strings.Join(words, " ") + "\n")
		}
		b.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), "wordy.mbox")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A training run whose store fills the disk part way through keeps the
// batches written before (each is one transaction, whole or not at all),
// and says so: the summary counts the messages the store now holds, and
// the error says that the rest were not learned and that the n-gram model
// was not fitted again. A run that reported only the failed write would
// leave the administrator to think nothing was learned.
func TestTrainFullDiskReportsWhatIsLearned(t *testing.T) {
	// Room for the store with a batch or two of these messages (about
	// 330 of them fill a batch), not for all of them.
	disk := tinyDisk(t, 24<<20)
	db := filepath.Join(disk, "bayes.db")
	r := runCLI(t, "", "train", "--db", db, "--no-refit", "--spam", wordyMbox(t, 1200))
	if r.code != 1 || !strings.Contains(r.stderr, "no space left") {
		t.Fatalf("train onto a disk that fills: %+v, want it to fail for want of space", r)
	}
	stats := runCLI(t, "", "db", "stats", "--db", db)
	held := regexp.MustCompile(`messages:  (\d+) spam, 0 ham\n`).FindStringSubmatch(stats.stdout)
	if held == nil {
		t.Fatalf("stats after the run: %+v", stats)
	}
	n, _ := strconv.Atoi(held[1])
	if n == 0 || n >= 1200 {
		t.Fatalf("the store holds %d of the 1200 messages; the test wants the disk to fill after the first batch", n)
	}
	if want := fmt.Sprintf("%d messages: %d learned as spam, 0 already learned, 0 moved from ham to spam, 0 errors\n", n, n); r.stdout != want {
		t.Errorf("standard output %q, want the summary of what the store holds, %q", r.stdout, want)
	}
	for _, want := range []string{"the messages counted above are learned, the rest were not", "sluice db refit"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("standard error %q does not say %q", r.stderr, want)
		}
	}
}
