package classifier_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
		{"end line with other counts", strings.Replace(text, fmt.Sprintf("\nend %d 2 0\n", n), fmt.Sprintf("\nend %d 2 0\n", n+1), 1), "end line"},
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

// failAfter is a store whose Add fails after the first n calls: an import
// stopped between two of its write batches, as a Ctrl-C or a kill does.
type failAfter struct {
	classifier.Store
	n int
}

func (f *failAfter) Add(ctx context.Context, b classifier.Batch) error {
	if f.n == 0 {
		return fmt.Errorf("stopped")
	}
	f.n--
	return f.Store.Add(ctx, b)
}

// An import stopped after its first write batch leaves part of it in the
// store; importing the export again would count that part twice (the
// totals, which come first, doubled), so it is refused. A whole import
// leaves no mark: importing an export of other messages into that store
// adds, as documented (the same export again is refused for another
// reason, see TestImportOverlap).
func TestImportAfterInterruptedImport(t *testing.T) {
	ctx := context.Background()
	const n = 25000 // more than one import batch
	text := exportOf(t, n)

	st, err := classifier.Open(filepath.Join(t.TempDir(), "dst.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := classifier.Import(ctx, &failAfter{Store: st, n: 1}, strings.NewReader(text)); err == nil {
		t.Fatal("the stopped import reported no error")
	}
	before, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.Spam != 1 || before.Tokens == 0 || before.Tokens == n {
		t.Fatalf("after the first batch: %+v, want part of the import", before)
	}
	_, err = classifier.Import(ctx, st, strings.NewReader(text))
	if err == nil || !strings.Contains(err.Error(), "has not finished") {
		t.Errorf("import again: error %v, want one saying the first has not finished", err)
	}
	_, err = classifier.ImportBogoutil(ctx, st, strings.NewReader(".MSG_COUNT 1 1 20240101\nword 1 0 20240101\n"))
	if err == nil || !strings.Contains(err.Error(), "has not finished") {
		t.Errorf("import bogoutil: error %v, want one saying the first has not finished", err)
	}
	after, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("refused imports changed the store: %+v, was %+v", after, before)
	}
	if m, err := classifier.IncompleteImport(ctx, st); err != nil || m.Began == "" {
		t.Errorf("IncompleteImport of the stopped import: %+v, %v; want the time it began", m, err)
	}

	whole, err := classifier.Open(filepath.Join(t.TempDir(), "whole.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	// The same tokens and totals, learned from two other messages.
	other := strings.NewReplacer(
		classifier.MessageDigest([]byte("a")).String(), classifier.MessageDigest([]byte("c")).String(),
		classifier.MessageDigest([]byte("b")).String(), classifier.MessageDigest([]byte("d")).String()).Replace(text)
	for _, text := range []string{text, other} {
		if _, err := classifier.Import(ctx, whole, strings.NewReader(text)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := whole.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Spam != 2 || s.Ham != 2 || s.Tokens != n {
		t.Errorf("two whole imports: %+v, want 2 spam, 2 ham, %d tokens", s, n)
	}
	if m, err := classifier.IncompleteImport(ctx, whole); err != nil || m.Began != "" {
		t.Errorf("IncompleteImport of whole imports: %+v, %v; want none", m, err)
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

// An export of a format this sluice does not know, as a newer sluice
// writes it (a store moved to a machine that runs an older one), is
// refused as what it is: the error used to say it was no sluice export
// at all, which sent the administrator looking for a damaged file.
func TestImportNewerFormat(t *testing.T) {
	text := "sluice-classifier-export 4\ndialect sluice\ntotals 2 3\nt hello 1 2 20240101\nend 1 0 0\n"
	_, err := importInto(t, text)
	if err == nil || !strings.Contains(err.Error(), `an export of format "4", which this sluice does not read`) {
		t.Errorf("format 4: %v, want an error naming the format", err)
	}
	if _, err := importInto(t, "From: someone\n\nhello\n"); err == nil || !strings.Contains(err.Error(), "not a sluice classifier export") {
		t.Errorf("a message: %v, want not a sluice classifier export", err)
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

// digestsOf returns what WalkDigests gives for each digest.
// emptyStore opens a new store in a temporary directory, closed when the
// test ends.
func emptyStore(t *testing.T) classifier.Store {
	t.Helper()
	st, err := classifier.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func digestsOf(t *testing.T, st classifier.Store) map[classifier.Digest]classifier.DigestClass {
	t.Helper()
	out := map[classifier.Digest]classifier.DigestClass{}
	err := st.WalkDigests(context.Background(), func(d classifier.DigestClass) error {
		out[d.Digest] = d
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The features of learned messages go through export and import unchanged:
// a digest line carries them in standard base64 when the message has any,
// and exporting the imported store gives the same bytes.
func TestExportImportFeatures(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, filepath.Join(t.TempDir(), "src.db"))
	defer src.Close()
	c := classifier.New(src, classifier.Params{})
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "train", "*", "*.eml"))
	if len(files) < 10 {
		t.Fatalf("only %d training fixtures", len(files))
	}
	var ops []classifier.LearnOp
	for i, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		op := c.PrepareBytes(raw, classifier.Class(1+i%2), false)
		if i%5 == 0 {
			op.Features = nil // learned before the n-gram model
		}
		ops = append(ops, op)
	}
	// Features of one, two and three bytes each, at the ends of their
	// ranges, as no fixture makes them.
	odd := classifier.LearnOp{Class: classifier.Ham, Tokens: []string{"odd"}, Date: 20240101}
	odd.Digest[0] = 0xff
	odd.Features = classifier.EncodeFeatures([]uint32{0, 1, 127, 128, 255, 16383, 16384, 1<<20 - 1})
	ops = append(ops, odd)
	if _, err := c.Learn(ctx, ops); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	if err := classifier.Export(ctx, src, &first); err != nil {
		t.Fatal(err)
	}

	// The digest lines: three fields with features, two without.
	want := digestsOf(t, src)
	withFeatures := 0
	for _, l := range strings.Split(first.String(), "\n") {
		f := strings.Split(l, " ")
		if f[0] != "d" {
			continue
		}
		d, err := classifier.ParseDigest(f[1])
		if err != nil {
			t.Fatalf("digest line %q: %v", l, err)
		}
		w := want[d]
		switch {
		case len(w.Features) == 0 && len(f) != 3:
			t.Errorf("digest %s has no features, its line has %d fields: %q", d, len(f), l)
		case len(w.Features) > 0 && (len(f) != 4 || f[3] != base64.StdEncoding.EncodeToString(w.Features)):
			t.Errorf("digest %s: line %.80q... does not end in the base64 of its %d bytes of features", d, l, len(w.Features))
		case len(w.Features) > 0:
			withFeatures++
		}
	}
	if wantN := len(ops) - (len(files)+4)/5; withFeatures != wantN {
		t.Errorf("%d digest lines with features, want %d", withFeatures, wantN)
	}

	dst := openTestStore(t, filepath.Join(t.TempDir(), "dst.db"))
	defer dst.Close()
	is, err := classifier.Import(ctx, dst, bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if is.Digests != len(ops) {
		t.Errorf("imported %d digests, want %d", is.Digests, len(ops))
	}
	var second bytes.Buffer
	if err := classifier.Export(ctx, dst, &second); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("export of the imported store differs from the export imported")
	}
	got := digestsOf(t, dst)
	for d, w := range want {
		g := got[d]
		if g.Class != w.Class || !bytes.Equal(g.Features, w.Features) || (w.Features == nil) != (g.Features == nil) {
			t.Errorf("digest %s after import: %v with %d bytes of features, want %v with %d", d, g.Class, len(g.Features), w.Class, len(w.Features))
		}
	}
}

// Digest lines without features, as every export before the n-gram model
// has them, import as digests without features.
func TestImportDigestsWithoutFeatures(t *testing.T) {
	a := classifier.MessageDigest([]byte("a"))
	b := classifier.MessageDigest([]byte("b"))
	feats := []byte{3, 1, 4, 1, 5}
	for _, tc := range []struct{ name, text string }{
		{"format 2", fmt.Sprintf("sluice-classifier-export 2\ndialect sluice\ntotals 1 1\nt hello 1 1 20240101\nd %s spam\nd %s ham %s\nend 1 2\n",
			a, b, base64.StdEncoding.EncodeToString(feats))},
		{"format 1", fmt.Sprintf("sluice-classifier-export 1\ndialect sluice\ntotals 1 1\nt hello 1 1 20240101\nd %s spam\nd %s ham %s\n",
			a, b, base64.StdEncoding.EncodeToString(feats))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openTestStore(t, filepath.Join(t.TempDir(), "db"))
			defer st.Close()
			if _, err := classifier.Import(context.Background(), st, strings.NewReader(tc.text)); err != nil {
				t.Fatal(err)
			}
			got := digestsOf(t, st)
			if d := got[a]; len(got) != 2 || d.Class != classifier.Spam || d.Features != nil {
				t.Errorf("digest without features imported as %+v (of %d digests)", d, len(got))
			}
			if d := got[b]; d.Class != classifier.Ham || !bytes.Equal(d.Features, feats) {
				t.Errorf("digest with features imported as %+v", d)
			}
		})
	}
}

// A digest line with malformed features is refused with its line number,
// and the import writes nothing, even with a write batch's worth of lines
// before it.
func TestImportBadFeatures(t *testing.T) {
	const n = 25000 // more than one import batch
	text := exportOf(t, n)
	lines := strings.SplitAfter(text, "\n")
	// lines: header, dialect, totals, n tokens, 2 digests, end, "".
	at := 3 + n // the first digest line, 0-based
	d, _, _ := strings.Cut(strings.TrimPrefix(lines[at], "d "), " ")
	tests := []struct{ name, line, want string }{
		{"not base64", "d " + d + " spam no*base64\n", "features"},
		{"missing padding", "d " + d + " spam QUJDRA\n", "features"},
		{"non-zero padding bits", "d " + d + " spam QUJDRB==\n", "features"},
		{"empty field", "d " + d + " spam \n", "empty features"},
		// Base64 of bytes that are no feature list: a varint cut short,
		// and one written longer than it needs.
		{"cut-short varint", "d " + d + " spam QUJDgA==\n", "features: bad varint"},
		{"overlong varint", "d " + d + " spam gAA=\n", "features: overlong varint"},
		{"four fields", "d " + d + " spam QUJD QUJD\n", "want 2 or 3 fields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Join(lines[:at], "") + tc.line + strings.Join(lines[at+1:], "")
			s, err := importInto(t, bad)
			prefix := fmt.Sprintf("line %d: ", at+1)
			if err == nil || !strings.Contains(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q and %q", err, prefix, tc.want)
			}
			if s.Tokens != 0 || s.Digests != 0 || s.Spam != 0 || s.Ham != 0 {
				t.Errorf("a refused import changed the store: %+v", s)
			}
		})
	}
	// The same line with good features imports.
	good := strings.Join(lines[:at], "") + "d " + d + " spam QUJDRA==\n" + strings.Join(lines[at+1:], "")
	if s, err := importInto(t, good); err != nil || s.Digests != 2 {
		t.Errorf("the line with good features: %+v, %v", s, err)
	}
}

// bogofilter's tokens are bytes: a no-break space or an ideographic space
// inside one is part of the token, not a column separator, and such a
// word list imports whole.
func TestImportBogoutilUnicodeSpaceInToken(t *testing.T) {
	dump := ".ENCODING 2 0 20261205\n.MSG_COUNT 2 1 20261205\n.WORDLIST_VERSION 20040500 0 20261205\n" +
		"and 1 0 20261205\ncaf\u00e9\u3000tokyo 1 0 20261205\nwonderful\u00a0offer 1 0 20261205\n" +
		"tabbed\t2\t1\t20261205\n"
	ctx := context.Background()
	st := emptyStore(t)
	is, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(dump))
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	_, c, err := st.Lookup(ctx, []string{"wonderful\u00a0offer", "caf\u00e9\u3000tokyo", "tabbed"})
	if err != nil {
		t.Fatal(err)
	}
	if is.Tokens != 4 || c[0].Spam != 1 || c[1].Spam != 1 || c[2].Spam != 2 || c[2].Ham != 1 {
		t.Errorf("tokens %d, counts %+v", is.Tokens, c)
	}
}

// A bbolt export taken while messages are learned is one version of the
// store: its totals, token counts and digests agree.
func TestBoltExportIsASnapshot(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t, filepath.Join(t.TempDir(), "db"))
	defer st.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			op := classifier.LearnOp{Class: classifier.Spam, Tokens: []string{"common", fmt.Sprint("u", i)}, Date: 20240101}
			copy(op.Digest[:], fmt.Sprint("msg", i))
			if _, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for try := 0; try < 50; try++ {
		var buf bytes.Buffer
		if err := classifier.Export(ctx, st, &buf); err != nil {
			t.Fatal(err)
		}
		var totals, common, tokens, digests int
		for _, l := range strings.Split(buf.String(), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "totals":
				fmt.Sscan(f[1], &totals)
			case len(f) == 5 && f[0] == "t":
				tokens++
				if f[1] == "common" {
					fmt.Sscan(f[2], &common)
				}
			case len(f) >= 3 && f[0] == "d":
				digests++
			}
		}
		// Each message has "common" and a token of its own.
		if totals != common || common != digests || (totals > 0 && tokens != totals+1) {
			t.Fatalf("export %d: totals %d, common %d, %d tokens, %d digests", try, totals, common, tokens, digests)
		}
	}
}

// A digest with every feature the model has (the longest line an export
// can hold) is imported back; a line longer than any export writes is
// refused with its own line number.
func TestExportImportLargestFeatures(t *testing.T) {
	ctx := context.Background()
	src := openTestStore(t, filepath.Join(t.TempDir(), "src"))
	defer src.Close()
	f := make([]uint32, 0, 1<<20)
	for v := uint32(0); v < 1<<20; v++ {
		f = append(f, v)
	}
	var d classifier.Digest
	copy(d[:], "big")
	feats := classifier.EncodeFeatures(f)
	if err := src.Add(ctx, classifier.Batch{Totals: classifier.Totals{Spam: 1}, Digests: []classifier.DigestClass{{Digest: d, Class: classifier.Spam, Features: feats}}}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := classifier.Export(ctx, src, &buf); err != nil {
		t.Fatal(err)
	}
	dst := openTestStore(t, filepath.Join(t.TempDir(), "dst"))
	defer dst.Close()
	if _, err := classifier.Import(ctx, dst, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if err := dst.WalkDigests(ctx, func(dc classifier.DigestClass) error { got = dc.Features; return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, feats) {
		t.Errorf("features after import: %d bytes, want %d", len(got), len(feats))
	}
	// Line 4 (the digest) made longer than any export writes.
	long := strings.Replace(buf.String(), "d ", "d "+strings.Repeat("A", 4<<20), 1)
	if _, err := classifier.Import(ctx, dst, strings.NewReader(long)); err == nil || !strings.Contains(err.Error(), "line 4:") {
		t.Errorf("over-long line: %v, want an error naming line 4", err)
	}
}

// bogoutil -d ends every line, the last one too, with a newline: a list
// whose last line has none was cut short (an interrupted copy, a full
// disk), and its last counts may be cut too ("bar 1 23" of "bar 1 234
// 20240101" reads as 23 ham and no date). It is refused and changes
// nothing; CRLF line ends, which a transfer in text mode gives, are read.
func TestImportBogoutilTruncatedLastLine(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, dump string
		ok         bool
	}{
		{"cut in the counts", ".MSG_COUNT 1 1 20240101\nfoo 1 0 20240101\nbar 1 23", false},
		{"cut in the date", ".MSG_COUNT 1 1 20240101\nfoo 1 0 20240101\nbar 1 234 2024", false},
		{"cut before the newline", ".MSG_COUNT 1 1 20240101\nfoo 1 0 20240101\nbar 1 234 20240101", false},
		{"whole", ".MSG_COUNT 1 1 20240101\nfoo 1 0 20240101\nbar 1 234 20240101\n", true},
		{"whole, CRLF", ".MSG_COUNT 1 1 20240101\r\nfoo 1 0 20240101\r\nbar 1 234 20240101\r\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := emptyStore(t)
			_, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(tc.dump))
			s, serr := st.Stats(ctx)
			if serr != nil {
				t.Fatal(serr)
			}
			_, c, lerr := st.Lookup(ctx, []string{"bar"})
			if lerr != nil {
				t.Fatal(lerr)
			}
			if tc.ok {
				if err != nil || s.Tokens != 2 || c[0] != (classifier.Counts{Spam: 1, Ham: 234, LastSeen: 20240101}) {
					t.Errorf("error %v, %d tokens, bar %+v", err, s.Tokens, c[0])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "line 3") {
				t.Errorf("error %v, want one naming line 3", err)
			}
			if s.Tokens != 0 || s.Spam != 0 || s.Ham != 0 {
				t.Errorf("a refused import changed the store: %+v", s)
			}
			if d, _ := st.Meta(ctx, classifier.MetaDialect); d != "" {
				t.Errorf("a refused import set the dialect to %q", d)
			}
		})
	}
}

// bogoutil -d of a word list it cannot open writes nothing and fails, so
// "bogoutil -d WRONGPATH > wordlist.txt" leaves an empty file. Importing
// it must not mark the store as bogofilter's (which changes how it is
// tokenised and trained from then on) with nothing in it: an empty or
// blank list is refused, as an empty export is.
func TestImportBogoutilEmpty(t *testing.T) {
	ctx := context.Background()
	for _, dump := range []string{"", "\n", " \n\n"} {
		st, err := classifier.Open(filepath.Join(t.TempDir(), "db"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = classifier.ImportBogoutil(ctx, st, strings.NewReader(dump))
		if err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%q: error %v, want one saying the list is empty", dump, err)
		}
		if d, _ := st.Meta(ctx, classifier.MetaDialect); d != "" {
			t.Errorf("%q: the import set the dialect to %q", dump, d)
		}
		st.Close()
	}
}

// A token longer than a bbolt key can be (32 KiB; sluice's own tokens are
// at most a few dozen bytes) is refused while the input is checked, naming
// its line, and not when its batch is written: the store is left as it
// was, without the mark of an unfinished import that would lock it
// against training and imports.
func TestImportTokenTooLong(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("x", 40000)
	tests := []struct {
		name, text, line string
		bogoutil         bool
	}{
		{"export", exportHeader() + "dialect sluice\ntotals 1 0\nt a 1 0 20240101\nt " + long + " 1 0 20240101\nend 2 0\n", "line 5:", false},
		{"bogoutil", ".MSG_COUNT 1 0 20240101\na 1 0 20240101\n" + long + " 1 0 20240101\n", "line 3:", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := emptyStore(t)
			err := importText(ctx, st, tc.text, tc.bogoutil)
			if err == nil || !strings.Contains(err.Error(), tc.line) {
				msg := fmt.Sprint(err)
				if len(msg) > 200 {
					msg = msg[:200] + "..."
				}
				t.Errorf("error %s, want one naming the line of the long token", msg)
			}
			if m, err := classifier.IncompleteImport(ctx, st); err != nil || m.Began != "" {
				t.Errorf("the store is marked as holding part of an import: %+v, %v", m, err)
			}
			s, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Tokens != 0 || s.Spam != 0 {
				t.Errorf("a refused import changed the store: %+v", s)
			}
		})
	}
}

// A line longer than any line of an export or a word list (a device such
// as /dev/zero, a compressed file named by mistake) is refused saying so,
// not with the scanner's "token too long".
func TestImportLineTooLong(t *testing.T) {
	ctx := context.Background()
	for _, bogoutil := range []bool{false, true} {
		st := emptyStore(t)
		err := importText(ctx, st, strings.Repeat("\x00", 5<<20), bogoutil)
		if err == nil || !strings.Contains(err.Error(), "line 1: longer than") || !strings.Contains(err.Error(), "which no line of") {
			t.Errorf("bogoutil %v: error %v, want one saying line 1 is too long for the format", bogoutil, err)
		}
	}
}

// exportHeader is the first line of a current export.
func exportHeader() string { return "sluice-classifier-export 2\n" }

// A format 1 export has no end line to tell a whole export from a cut
// one, but sluice ended its every line with a newline: a last line
// without one was cut short, and its counts may be too ("t hello 1 2
// 2024" of "t hello 1 2 20240101" reads as a last-seen day of 2024). It
// is refused and changes nothing.
func TestImportFormat1TruncatedLastLine(t *testing.T) {
	head := "sluice-classifier-export 1\ndialect sluice\ntotals 2 3\nt a 1 0 20240101\n"
	for _, last := range []string{"t hello 1 2 2024", "t hello 1 2", "t hello 1 2 20240101"} {
		s, err := importInto(t, head+last)
		if err == nil || !strings.Contains(err.Error(), "line 5") {
			t.Errorf("%q: error %v, want one naming line 5", last, err)
		}
		if s.Tokens != 0 || s.Spam != 0 || s.Ham != 0 {
			t.Errorf("%q: a refused import changed the store: %+v", last, s)
		}
	}
	if s, err := importInto(t, head+"t hello 1 2 20240101\n"); err != nil || s.Tokens != 2 {
		t.Errorf("whole: %+v, %v", s, err)
	}
}

// A word list of a bogofilter run with --unicode=no (".ENCODING 1") keeps
// non-ASCII words as the message's raw bytes ("caf\xe9"), where sluice's
// bogofilter dialect makes UTF-8 ("café"): those tokens would never match,
// silently. Such a list is refused, saying how to convert it, unless all
// its tokens are ASCII; a converted list (bogoutil --unicode=yes -m
// writes ".ENCODING 2 0", without a date) imports.
func TestImportBogoutilRawEncoding(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, dump string
		ok         bool
	}{
		{"raw, non-ASCII", ".ENCODING 1 0 20261206\n.MSG_COUNT 1 0 20261206\nbuy 1 0 20261206\ncaf\xe9 1 0 20261206\n", false},
		{"raw, ASCII only", ".ENCODING 1 0 20261206\n.MSG_COUNT 1 0 20261206\nbuy 1 0 20261206\n", true},
		{"converted", ".ENCODING 2 0\n.MSG_COUNT 1 0 20261206\nbuy 1 0 20261206\ncaf\u00e9 1 0 20261206\n", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := emptyStore(t)
			_, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(tc.dump))
			s, serr := st.Stats(ctx)
			if serr != nil {
				t.Fatal(serr)
			}
			if tc.ok {
				if err != nil || s.Tokens == 0 {
					t.Errorf("error %v, %d tokens", err, s.Tokens)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "--unicode=yes") || !strings.Contains(err.Error(), "line 4") {
				t.Errorf("error %v, want one naming line 4 and the conversion", err)
			}
			if s.Tokens != 0 || s.Spam != 0 {
				t.Errorf("a refused import changed the store: %+v", s)
			}
		})
	}
}

// An export has one totals line, and a bogoutil word list one .MSG_COUNT
// line. A second one (two files run together, an edit) is refused,
// naming its line, and changes nothing: summed into the store while only
// the last was reported, the message counts stored and printed differed.
func TestImportRepeatedTotals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, text, line string
		bogoutil         bool
	}{
		{"export", exportHeader() + "dialect sluice\ntotals 1 2\nt a 1 0 20240101\ntotals 3 4\nend 1 0\n", "line 5:", false},
		{"bogoutil", ".MSG_COUNT 1 2 20240101\na 1 0 20240101\n.MSG_COUNT 3 4 20240101\n", "line 3:", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := emptyStore(t)
			err := importText(ctx, st, tc.text, tc.bogoutil)
			if err == nil || !strings.Contains(err.Error(), tc.line) || !strings.Contains(err.Error(), "second") {
				t.Errorf("error %v, want one naming the second line of counts (%s)", err, tc.line)
			}
			s, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Tokens != 0 || s.Spam != 0 || s.Ham != 0 {
				t.Errorf("a refused import changed the store: %+v", s)
			}
		})
	}
}

// A last-seen day must be a day of the calendar, YYYYMMDD, or 0 (not
// known): "20241399" is refused, naming its line, and changes nothing.
// Every day an export writes imports, the days of years before 1000
// (fewer digits) too.
func TestImportDates(t *testing.T) {
	ctx := context.Background()
	bad := []string{"20241399", "20241301", "20240001", "20240100", "20230229", "20240431", "99", "1231", "4294967295"}
	good := []string{"0", "20240229", "20241231", "10101", "99991231", "5000615"}
	for _, d := range append(bad, good...) {
		ok := !slices.Contains(bad, d)
		for _, bogoutil := range []bool{false, true} {
			st, err := classifier.Open(filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			if bogoutil {
				_, err = classifier.ImportBogoutil(ctx, st, strings.NewReader(".MSG_COUNT 1 0 20240101\na 1 0 20240101\nb 1 0 "+d+"\n"))
			} else {
				_, err = classifier.Import(ctx, st, strings.NewReader(exportHeader()+"dialect sluice\ntotals 1 0\nt a 1 0 20240101\nt b 1 0 "+d+"\nend 2 0\n"))
			}
			s, serr := st.Stats(ctx)
			if serr != nil {
				t.Fatal(serr)
			}
			switch {
			case ok && err != nil:
				t.Errorf("%s (bogoutil %v): %v", d, bogoutil, err)
			case !ok && (err == nil || !strings.Contains(err.Error(), "line 3") && !strings.Contains(err.Error(), "line 5")):
				t.Errorf("%s (bogoutil %v): error %v, want one naming the line", d, bogoutil, err)
			case !ok && s.Tokens != 0:
				t.Errorf("%s (bogoutil %v): a refused import changed the store: %+v", d, bogoutil, s)
			}
			st.Close()
		}
	}
}

// A store that holds a day that is none (imported by a version that did
// not check) exports it as 0, not known, so that its export imports.
func TestExportInvalidDateImports(t *testing.T) {
	ctx := context.Background()
	st, err := classifier.Open(filepath.Join(t.TempDir(), "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Add(ctx, classifier.Batch{Totals: classifier.Totals{Spam: 1}, Records: []classifier.Record{
		{Token: "a", Counts: classifier.Counts{Spam: 1, LastSeen: 20241399}},
		{Token: "b", Counts: classifier.Counts{Spam: 1, LastSeen: 20240101}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := classifier.Export(ctx, st, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\nt a 1 0 0\n") || !strings.Contains(out.String(), "\nt b 1 0 20240101\n") {
		t.Errorf("export:\n%s", out.String())
	}
	if s, err := importInto(t, out.String()); err != nil || s.Tokens != 2 {
		t.Errorf("import of the export: %+v, %v", s, err)
	}
}

// importText imports text into st, as a bogoutil list or as an export,
// and returns the error.
func importText(ctx context.Context, st classifier.Store, text string, bogoutil bool) error {
	var err error
	if bogoutil {
		_, err = classifier.ImportBogoutil(ctx, st, strings.NewReader(text))
	} else {
		_, err = classifier.Import(ctx, st, strings.NewReader(text))
	}
	return err
}
