package classifier_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// FuzzImport checks the import of sluice's own export format: an input
// it refuses leaves the store as it was, and one it takes gives a store
// whose export imports into another empty store and exports again to the
// same bytes, with as many tokens and digests as the import counted.
func FuzzImport(f *testing.F) {
	d1 := classifier.MessageDigest([]byte("a")).String()
	d2 := classifier.MessageDigest([]byte("b")).String()
	fp1 := strings.Repeat("0123456789abcdef", 4)
	fp2 := strings.Repeat("fedcba9876543210", 4)
	for _, s := range []string{
		"sluice-classifier-export 3\ndialect bogofilter\ntotals 3 5\nt cash 3 0 20261201\nd " + d1 + " spam\nf " + fp1 + " 2026-12-07T03:55:18Z\nf " + fp2 + " 2026-12-07T04:00:00Z\nend 1 1 2\n",
		"sluice-classifier-export 3\ndialect sluice\ntotals 0 0\nf " + fp1 + " 2026-12-07T03:55:18Z\nend 0 0 1\n",
		"sluice-classifier-export 3\ndialect sluice\ntotals 1 1\nt a 1 0 0\nend 1 0 0\n",
		"sluice-classifier-export 3\ndialect sluice\ntotals 1 1\nf " + fp1 + " 2026-12-07T03:55:18+01:00\nf " + fp1 + " 2026-12-07T03:55:18Z\nend 0 0 2\n",
		"sluice-classifier-export 3\ndialect sluice\ntotals 1 1\nf " + strings.ToUpper(fp2) + " 2026-12-07T03:55:18Z\nend 0 0 1\n",
		"sluice-classifier-export 3\ndialect sluice\ntotals 1 1\nf " + fp2 + "\nend 0 0 1\n",
		"sluice-classifier-export 3\ndialect sluice\ntotals 1 1\nt a 1 0 0\nend 1 0\n",
		"sluice-classifier-export 2\ndialect sluice\ntotals 1 1\nf " + fp2 + " 2026-12-07T03:55:18Z\nend 0 0\n",
		"sluice-classifier-export 2\ndialect sluice\ntotals 1 1\nt tok 1 0 20240101\nd " + d1 + " spam\nd " + d2 + " ham QUJDRA==\nend 1 2\n",
		"sluice-classifier-export 2\ndialect bogofilter\ntotals 3 4\nt subj:free 2 1 0\nt \"two words\" 1 1 20241231\nend 2 0\n",
		"sluice-classifier-export 2\ndialect sluice\ntotals 0 0\nend 0 0\n",
		"sluice-classifier-export 1\ndialect sluice\ntotals 2 0\nt \"\\xff\\x00\" 1 0 0\nd " + d1 + " spam\n",
		"sluice-classifier-export 1\ndialect \ntotals 1 0\nt a 1 0 0",
		"sluice-classifier-export 2\ndialect sluice\ntotals 1 1\nt a 1 0 0\nt a 4294967295 0 20240229\nend 2 0\n",
		"sluice-classifier-export 2\ndialect sluice\ntotals 1 1\nt a 1 0 20241399\nend 1 0\n",
		"sluice-classifier-export 2\ndialect sluice\ntotals 1 1\nd " + strings.ToUpper(d1) + " spam\nd " + d1 + " ham\nend 0 2\n",
		"sluice-classifier-export 2\r\ndialect sluice\r\ntotals 1 1\r\nt a 1 0 0\r\nend 1 0\r\n",
		"sluice-classifier-export 2\ndialect sluice\ntotals 1 1\nt a 1 0 0\nend 1 0\nt b 1 0 0\n",
		"sluice-classifier-export 2\ntotals 1 1\ndialect sluice\nend 0 0\n",
		"sluice-classifier-export 2\ndialect sluice\ntotals 1\tand 1\nend 0 0\n",
		"",
		"\n",
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, in []byte) {
		st, is, ok := importFuzzed(t, in, classifier.Import)
		if !ok {
			return
		}
		first := exportFuzzed(t, st)
		if n := strings.Count(first, "\nt "); n > is.Tokens {
			t.Fatalf("%d tokens exported from an import of %d", n, is.Tokens)
		}
		if n := strings.Count(first, "\nd "); n > is.Digests {
			t.Fatalf("%d digests exported from an import of %d", n, is.Digests)
		}
		// The records the export carried, and the import's own.
		if n := strings.Count(first, "\nf "); n > is.Fingerprints+1 {
			t.Fatalf("%d import records exported from an import of %d", n, is.Fingerprints)
		}
		again := openTestStore(t, filepath.Join(t.TempDir(), "again.db"))
		defer again.Close()
		is2, err := classifier.Import(ctx, again, strings.NewReader(first))
		if err != nil {
			t.Fatalf("the export of an import does not import: %v\n%s", err, first)
		}
		if second := exportFuzzed(t, again); second != first {
			t.Fatalf("export, import, export changed the export:\n%s\nthen\n%s", first, second)
		}
		if is2.Totals != is.Totals {
			t.Fatalf("totals %+v imported, %+v after export and import", is.Totals, is2.Totals)
		}
	})
}

// FuzzImportBogoutil checks the import of a "bogoutil -d" word list as
// FuzzImport does sluice's own export: refused, it leaves the store as it
// was; taken, the store is of the bogofilter dialect and its export
// imports and exports again to the same bytes.
func FuzzImportBogoutil(f *testing.F) {
	for _, s := range []string{
		".MSG_COUNT 10 20 20240101\n.WORDLIST_VERSION 20040502 0 20240101\n.ENCODING 2 0 20240101\nfree 5 1 20240101\nsubj:hello 0 3 20231231\n",
		".MSG_COUNT 1 1\nword 1 1\n",
		".MSG_COUNT 1 0 0\n.ROBX 52 0 20240101\nnbsp\u00a0word 1 0 20240101\n",
		".ENCODING 1 0 0\n.MSG_COUNT 1 1 0\ncaf\xe9 1 0 0\n",
		".MSG_COUNT 0 1 0\nspammy 1 0 0\n",
		".MSG_COUNT 1 1 0\n.MSG_COUNT 1 1 0\n",
		".MSG_COUNT 1 1 0\nword\t1\t1\t20240101\n",
		".MSG_COUNT 1 1 0\nword 1 1 2024010",
		".MSG_COUNT 1 1 0\nword 1 1 20240230\n",
		".MSG_COUNT 1 1 0\n\"quoted 1 1 0\n",
		"word 1 1 0\n",
		"\n\n",
		"",
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, in []byte) {
		st, is, ok := importFuzzed(t, in, classifier.ImportBogoutil)
		if !ok {
			return
		}
		if d, err := st.Meta(ctx, classifier.MetaDialect); err != nil || d != string(classifier.DialectBogofilter) {
			t.Fatalf("dialect %q after a bogoutil import, %v", d, err)
		}
		first := exportFuzzed(t, st)
		if n := strings.Count(first, "\nt "); n > is.Tokens {
			t.Fatalf("%d tokens exported from an import of %d", n, is.Tokens)
		}
		again := openTestStore(t, filepath.Join(t.TempDir(), "again.db"))
		defer again.Close()
		if _, err := classifier.Import(ctx, again, strings.NewReader(first)); err != nil {
			t.Fatalf("the export of a bogoutil import does not import: %v\n%s", err, first)
		}
		if second := exportFuzzed(t, again); second != first {
			t.Fatalf("export, import, export changed the export:\n%s\nthen\n%s", first, second)
		}
	})
}

// checkUntouched fails t unless st is as empty as it was before an
// import refused with err: no counts, no digests, no dialect, no mark.
// importFuzzed imports in into a new store with imp. A refused input
// must leave the store untouched (checkUntouched), and ok is then false.
// The store is closed when the test ends.
func importFuzzed(t *testing.T, in []byte, imp func(context.Context, classifier.Store, io.Reader) (classifier.ImportStats, error)) (*classifier.BoltStore, classifier.ImportStats, bool) {
	t.Helper()
	st := openTestStore(t, filepath.Join(t.TempDir(), "in.db"))
	t.Cleanup(func() { st.Close() })
	is, err := imp(context.Background(), st, bytes.NewReader(in))
	if err != nil {
		checkUntouched(t, st, err)
		return st, is, false
	}
	return st, is, true
}

func checkUntouched(t *testing.T, st classifier.Store, err error) {
	t.Helper()
	ctx := context.Background()
	s, serr := st.Stats(ctx)
	if serr != nil {
		t.Fatal(serr)
	}
	s.Bytes = 0 // the file's size, whatever it holds
	if s != (classifier.Stats{}) {
		t.Fatalf("a refused import (%v) changed the store: %+v", err, s)
	}
	for _, key := range []string{classifier.MetaDialect, classifier.MetaImporting} {
		if v, merr := st.Meta(ctx, key); merr != nil || v != "" {
			t.Fatalf("a refused import (%v) left %s %q, %v", err, key, v, merr)
		}
	}
	n := 0
	if werr := st.WalkDigests(ctx, func(classifier.DigestClass) error { n++; return nil }); werr != nil || n != 0 {
		t.Fatalf("a refused import (%v) left %d digests, %v", err, n, werr)
	}
	n = 0
	if werr := st.WalkMeta(ctx, classifier.MetaImportedPrefix, func(string, string) error { n++; return nil }); werr != nil || n != 0 {
		t.Fatalf("a refused import (%v) left %d records of imports, %v", err, n, werr)
	}
}

// exportFuzzed returns the export of st.
func exportFuzzed(t *testing.T, st classifier.Store) string {
	t.Helper()
	var b strings.Builder
	if err := classifier.Export(context.Background(), st, &b); err != nil {
		t.Fatalf("export: %v", err)
	}
	return b.String()
}
