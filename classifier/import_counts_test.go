package classifier_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// Every token's probability is its share of the learned spam and of the
// learned ham: a word list imported without the numbers of messages
// (bogoutil's .MSG_COUNT line, an export's totals line) gives tokens
// counts with nothing to divide them by, and each message trained after
// it would be taken for most of the training. bogoutil -d writes the
// line for a list bogofilter trained, and export always writes totals:
// an input without it is refused, naming what is missing, and the store
// is left as it was. A list of the line alone (nothing learned) is fine.
func TestImportWithoutMessageCounts(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, text, want string
		bogoutil         bool
	}{
		{"bogoutil", ".ENCODING 2 0 20261206\n.WORDLIST_VERSION 20040500 0 20261206\nbar 0 2 20240101\nfoo 1 0 20240101\n", ".MSG_COUNT", true},
		{"export", exportHeader() + "dialect sluice\nt a 1 0 20240101\nend 1 0\n", "totals", false},
		{"export format 1", "sluice-classifier-export 1\ndialect sluice\nt a 1 0 20240101\n", "totals", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := emptyStore(t)
			err := importText(ctx, st, tc.text, tc.bogoutil)
			if err == nil || !strings.Contains(err.Error(), "no "+tc.want+" line") {
				t.Errorf("error %v, want one saying the input has no %s line", err, tc.want)
			}
			s, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Tokens != 0 {
				t.Errorf("a refused import changed the store: %+v", s)
			}
			if d, _ := st.Meta(ctx, classifier.MetaDialect); d != "" {
				t.Errorf("a refused import set the dialect to %q", d)
			}
		})
	}
	// Nothing learned, and so nothing to count: the line alone imports.
	st := emptyStore(t)
	if _, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(".MSG_COUNT 0 0 20240101\n")); err != nil {
		t.Errorf("a list of .MSG_COUNT alone: %v", err)
	}
}

// What bogoutil really writes: a list bogofilter trained dumps with its
// .MSG_COUNT line, but one loaded with bogoutil -l from a list without
// it dumps without, and is refused.
func TestImportBogoutilDumpWithoutMessageCounts(t *testing.T) {
	needBogofilter(t)
	ctx := context.Background()
	dir := t.TempDir()
	load := exec.Command("bogoutil", "-l", filepath.Join(dir, "wordlist.db"))
	load.Stdin = strings.NewReader("bar 0 2 20240101\nfoo 1 0 20240101\n")
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("bogoutil -l: %v: %s", err, out)
	}
	dump, err := exec.Command("bogoutil", "-d", filepath.Join(dir, "wordlist.db")).Output()
	if err != nil {
		t.Fatalf("bogoutil -d: %v", err)
	}
	if bytes.Contains(dump, []byte(".MSG_COUNT")) {
		t.Fatalf("bogoutil -d wrote a .MSG_COUNT line for a list loaded without one:\n%s", dump)
	}
	st := emptyStore(t)
	if _, err := classifier.ImportBogoutil(ctx, st, bytes.NewReader(dump)); err == nil || !strings.Contains(err.Error(), "no .MSG_COUNT line") {
		t.Errorf("import of the dump: %v, want a refusal naming .MSG_COUNT", err)
	}
}

// A .MSG_COUNT line that says no message of a class was learned, in a
// list whose tokens were seen in messages of that class, gives those
// counts nothing to be a share of either: a token is counted once per
// learned message, so bogofilter never writes such a list. It is refused.
func TestImportBogoutilCountsWithoutMessages(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ text, want string }{
		{".MSG_COUNT 0 0 20240101\nfoo 1 0 20240101\n", "0 spam"},
		{".MSG_COUNT 3 0 20240101\nfoo 1 0 20240101\nbar 0 2 20240101\n", "0 ham"},
	} {
		st := emptyStore(t)
		if _, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want a refusal naming %s", tc.text, err, tc.want)
		}
	}
	// Spam alone learned, and ham alone: fine.
	for _, text := range []string{".MSG_COUNT 3 0 20240101\nfoo 1 0 20240101\n", ".MSG_COUNT 0 3 20240101\nfoo 0 1 20240101\n"} {
		if _, err := classifier.ImportBogoutil(ctx, emptyStore(t), strings.NewReader(text)); err != nil {
			t.Errorf("%q: %v", text, err)
		}
	}
}
