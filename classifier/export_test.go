package classifier_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// exportOf returns the export of a store holding n tokens, one learned
// message of each class and their digests.
func exportOf(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	st, err := classifier.Open(filepath.Join(t.TempDir(), "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var b classifier.Batch
	for i := range n {
		b.Records = append(b.Records, classifier.Record{Token: fmt.Sprintf("tok%06d", i), Counts: classifier.Counts{Spam: 1, LastSeen: 20240101}})
	}
	b.Totals = classifier.Totals{Spam: 1, Ham: 1}
	b.Digests = []classifier.DigestClass{
		{Digest: classifier.MessageDigest([]byte("a")), Class: classifier.Spam},
		{Digest: classifier.MessageDigest([]byte("b")), Class: classifier.Ham},
	}
	if err := st.Add(ctx, b); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := classifier.Export(ctx, st, &out); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// importInto imports text into a new store and returns the error and the
// store's stats afterwards.
func importInto(t *testing.T, text string) (classifier.Stats, error) {
	t.Helper()
	ctx := context.Background()
	st, err := classifier.Open(filepath.Join(t.TempDir(), "dst.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, ierr := classifier.Import(ctx, st, strings.NewReader(text))
	s, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, ierr
}

// An export cut short at a line boundary (an interrupted copy, a full
// disk) is refused, and so is one with a bad line after the first write
// batch: an import either adds the whole export or changes nothing, so
// that running it again after a fix does not count anything twice.
func TestImportAllOrNothing(t *testing.T) {
	const n = 25000 // more than one import batch
	text := exportOf(t, n)

	s, err := importInto(t, text)
	if err != nil || s.Tokens != n || s.Digests != 2 || s.Spam != 1 || s.Ham != 1 {
		t.Fatalf("whole export: %+v, %v", s, err)
	}

	lines := strings.SplitAfter(text, "\n")
	tests := []struct {
		name, text, want string
	}{
		{"truncated after tokens", strings.Join(lines[:n/2], ""), "truncated"},
		{"truncated before the end line", strings.Join(lines[:len(lines)-2], ""), "truncated"},
		{"bad line late", strings.Join(lines[:n], "") + "t broken\n" + strings.Join(lines[n:], ""), "missing counts"},
		{"end line with other counts", strings.Replace(text, fmt.Sprintf("\nend %d 2\n", n), fmt.Sprintf("\nend %d 2\n", n+1), 1), "end line"},
		{"line after the end line", text + "t extra 1 0 0\n", "after the end line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := importInto(t, tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if s.Tokens != 0 || s.Digests != 0 || s.Spam != 0 || s.Ham != 0 {
				t.Errorf("a refused import changed the store: %+v", s)
			}
		})
	}
}

// Exports written before the end line existed (format 1) still import.
func TestImportFormat1(t *testing.T) {
	text := "sluice-classifier-export 1\ndialect sluice\ntotals 2 3\nt hello 1 2 20240101\n"
	s, err := importInto(t, text)
	if err != nil || s.Tokens != 1 || s.Spam != 2 || s.Ham != 3 {
		t.Fatalf("format 1: %+v, %v", s, err)
	}
}

// A bogoutil word list with a malformed line after the first write batch
// is refused with the line's number and changes nothing, not even the
// store's dialect, so that importing the fixed list afterwards counts
// nothing twice.
func TestImportBogoutilAllOrNothing(t *testing.T) {
	const n = 25000 // more than one import batch
	var b strings.Builder
	b.WriteString(".MSG_COUNT 3 4 20240101\n")
	for i := range n {
		fmt.Fprintf(&b, "tok%06d 1 0 20240101\n", i)
	}
	good := b.String()
	bad := good + "broken 1\n" + "last 0 1 20240101\n"
	badLine := n + 2

	ctx := context.Background()
	st, err := classifier.Open(filepath.Join(t.TempDir(), "dst.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = classifier.ImportBogoutil(ctx, st, strings.NewReader(bad))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d:", badLine)) {
		t.Errorf("error %v, want one naming line %d", err, badLine)
	}
	s, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Tokens != 0 || s.Spam != 0 || s.Ham != 0 {
		t.Errorf("a refused import changed the store: %+v", s)
	}
	if d, err := st.Meta(ctx, classifier.MetaDialect); err != nil || d != "" {
		t.Errorf("a refused import set the dialect to %q (%v)", d, err)
	}

	is, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(good))
	if err != nil || is.Tokens != n {
		t.Fatalf("the good list: %+v, %v", is, err)
	}
	s, err = st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Tokens != n || s.Spam != 3 || s.Ham != 4 {
		t.Errorf("after the good list: %+v, want %d tokens, 3 spam and 4 ham", s, n)
	}
	if d, err := st.Meta(ctx, classifier.MetaDialect); err != nil || d != string(classifier.DialectBogofilter) {
		t.Errorf("dialect %q (%v), want bogofilter", d, err)
	}
}
