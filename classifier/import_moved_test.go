package classifier_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// importRecords returns the store's records of imports: fingerprint key
// and time.
func importRecords(t *testing.T, st classifier.Store) map[string]string {
	t.Helper()
	recs := map[string]string{}
	err := st.WalkMeta(context.Background(), classifier.MetaImportedPrefix, func(k, v string) error {
		recs[k] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// A word list imported into store A, A exported, the export imported
// into a new store B, and the same word list imported into B again:
// B counted the list twice, as nothing in the export said that A had
// imported it (only an export of a store that held nothing but the list
// had the list's own fingerprint). The export now carries A's records of
// its imports, the import of the export records them in B, and B refuses
// the list as A does, and passes the records on in its own exports. A
// is here a store with a word list and other counts: a second list, or
// learned messages. Export, import and export again still give the same
// bytes. A store that imported the list itself refuses the export, which
// would count the list a second time; with --again it takes it, and keeps
// its own time of the list.
func TestImportTwiceRefusedAfterExport(t *testing.T) {
	ctx := context.Background()
	stores := closedStoreKinds(redistest.Start(t), "")
	bogoutil := func(st classifier.Store, text string) error {
		_, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(text))
		return err
	}
	export := func(st classifier.Store, text []byte) error {
		_, err := classifier.Import(ctx, st, bytes.NewReader(text))
		return err
	}
	const otherList = ".MSG_COUNT 2 1 20261202\ncash 2 0 20261202\nlunch 0 1 20261202\n"
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			refused := func(st classifier.Store, what string, imp func() error) {
				t.Helper()
				before := exportBytes(t, st)
				err := imp()
				if !errors.Is(err, classifier.ErrAlreadyImported) || !strings.Contains(err.Error(), "this word list") {
					t.Errorf("%s: %v, want the word list refused as imported already", what, err)
				}
				if after := exportBytes(t, st); !bytes.Equal(after, before) {
					t.Errorf("%s: the refused import changed the store:\n%s\nwas\n%s", what, after, before)
				}
			}
			for _, a := range []struct {
				name string
				fill func(st classifier.Store)
			}{
				{"two lists", func(st classifier.Store) {
					if err := bogoutil(st, otherList); err != nil {
						t.Fatal(err)
					}
				}},
				{"list and learned messages", func(st classifier.Store) { learnRange(t, st, 0, 3) }},
			} {
				t.Run(a.name, func(t *testing.T) {
					src := sc.open(t)
					if err := bogoutil(src, twiceDump); err != nil {
						t.Fatal(err)
					}
					a.fill(src)
					exp := exportBytes(t, src)
					if !bytes.HasPrefix(exp, []byte("sluice-classifier-export 3\n")) || !bytes.Contains(exp, []byte("\nf ")) {
						t.Fatalf("the export has no record of the imports:\n%s", exp)
					}

					moved := sc.open(t)
					if err := export(moved, exp); err != nil {
						t.Fatal(err)
					}
					tot, _, err := moved.Lookup(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					refused(moved, "the list into the store made from the export", func() error { return bogoutil(moved, twiceDump) })
					refused(moved, "the list dumped again", func() error { return bogoutil(moved, twiceDumpAgain) })
					if a.name == "two lists" {
						refused(moved, "the other list", func() error { return bogoutil(moved, otherList) })
					}
					if after, _, err := moved.Lookup(ctx, nil); err != nil || after != tot {
						t.Errorf("totals %+v after the refused imports, want %+v (%v)", after, tot, err)
					}
					// Export, import, export: the same bytes, and the
					// records pass on.
					if again := exportBytes(t, moved); !bytes.Equal(again, exp) {
						t.Errorf("the export of the store made from the export differs:\n%s\nwas\n%s", again, exp)
					}
					further := sc.open(t)
					if err := export(further, exportBytes(t, moved)); err != nil {
						t.Fatal(err)
					}
					refused(further, "the list two moves on", func() error { return bogoutil(further, twiceDump) })

					// A store that imported the list itself refuses the
					// export, which holds the list's counts too, naming
					// the record they share, and is left as it was; with
					// Again it takes the export and keeps its own time of
					// the list.
					own := sc.open(t)
					if err := bogoutil(own, twiceDump); err != nil {
						t.Fatal(err)
					}
					listRecords := importRecords(t, own)
					if len(listRecords) != 1 {
						t.Fatalf("records of one import: %v", listRecords)
					}
					var listFP string
					for k := range listRecords {
						listFP = strings.TrimPrefix(k, classifier.MetaImportedPrefix)
						listRecords[k] = "2001-02-03T04:05:06Z"
						if err := own.SetMeta(ctx, k, listRecords[k]); err != nil {
							t.Fatal(err)
						}
					}
					before := exportBytes(t, own)
					err = export(own, exp)
					if !errors.Is(err, classifier.ErrAlreadyImported) || !strings.Contains(err.Error(), listFP[:16]) || !strings.Contains(err.Error(), "2001-02-03T04:05:06Z") {
						t.Errorf("an export holding a record the store has: %v, want it refused, naming %.16s", err, listFP)
					}
					if after := exportBytes(t, own); !bytes.Equal(after, before) {
						t.Errorf("the refused export changed the store:\n%s\nwas\n%s", after, before)
					}
					in, err := classifier.CheckImport(bytes.NewReader(exp))
					if err != nil {
						t.Fatal(err)
					}
					in.Again = true
					_, err = in.Into(ctx, own)
					in.Close()
					if err != nil {
						t.Errorf("the export with Again: %v, want it imported", err)
					}
					got := importRecords(t, own)
					for k, v := range listRecords {
						if got[k] != v {
							t.Errorf("record %s: %q, want the store's own %q", k, got[k], v)
						}
					}
					if len(got) != len(importRecords(t, further)) {
						t.Errorf("records after the import: %v, want as many as %v", got, importRecords(t, further))
					}
				})
			}
		})
	}
}

// A record of an import in an export (an f line) that is not one sluice
// writes is refused with its line's number, and the store is left as it
// was: a record in a store that names no fingerprint could never refuse
// anything, and would be passed on in every export after.
func TestImportBadFingerprintLines(t *testing.T) {
	ctx := context.Background()
	fp := strings.Repeat("0123456789abcdef", 4)
	const when = "2026-12-07T03:55:18Z"
	valid := "sluice-classifier-export 3\ndialect bogofilter\ntotals 3 5\nt cash 3 0 20261201\nf " + fp + " " + when + "\nend 1 0 1\n"
	st := emptyStore(t)
	if _, err := classifier.Import(ctx, st, strings.NewReader(valid)); err != nil {
		t.Fatalf("a valid export: %v", err)
	}
	if got := importRecords(t, st)[classifier.MetaImportedPrefix+fp]; got != when {
		t.Errorf("the record imported: %q, want %q", got, when)
	}

	withF := func(f, end string) string {
		return "sluice-classifier-export 3\ndialect bogofilter\ntotals 3 5\nt cash 3 0 20261201\n" + f + "\nend " + end + "\n"
	}
	for _, tc := range []struct{ name, text, want string }{
		{"in format 2", strings.Replace(withF("f "+fp+" "+when, "1 0"), "export 3", "export 2", 1), "line 5: an import fingerprint line in an export of format 2"},
		{"no fields", withF("f", "1 0 1"), "line 5: import fingerprint line: want a fingerprint and the time"},
		{"no time", withF("f "+fp, "1 0 1"), "line 5: import fingerprint line: want a fingerprint and the time"},
		{"a field more", withF("f "+fp+" "+when+" x", "1 0 1"), "line 5: import fingerprint line: want a fingerprint and the time"},
		{"two spaces", withF("f "+fp+"  "+when, "1 0 1"), "line 5: import fingerprint line"},
		{"short", withF("f "+fp[:63]+" "+when, "1 0 1"), "line 5: fingerprint"},
		{"upper case", withF("f "+strings.ToUpper(fp)+" "+when, "1 0 1"), "line 5: fingerprint"},
		{"not hex", withF("f "+fp[:63]+"g "+when, "1 0 1"), "line 5: fingerprint"},
		{"not a time", withF("f "+fp+" yesterday", "1 0 1"), "line 5: fingerprint 0123456789abcdef...: import time \"yesterday\": want an RFC 3339 time"},
		{"time without zone", withF("f "+fp+" 2026-12-07T03:55:18", "1 0 1"), "line 5: fingerprint 0123456789abcdef...: import time"},
		{"twice", withF("f "+fp+" "+when+"\nf "+fp+" "+when, "1 0 2"), "line 6: a second line for fingerprint " + fp + " (the first is line 5)"},
		{"end line counts none", withF("f "+fp+" "+when, "1 0 0"), "line 6: end line says 1 tokens, 0 digests and 0 import fingerprints, the export has 1, 0 and 1"},
		{"end line of format 2", withF("f "+fp+" "+when, "1 0"), "line 6: end line \"1 0\": want 3 numbers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := emptyStore(t)
			_, err := classifier.Import(ctx, st, strings.NewReader(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("import: %v, want an error containing %q", err, tc.want)
			}
			s, serr := st.Stats(ctx)
			if serr != nil {
				t.Fatal(serr)
			}
			if s.Tokens != 0 || s.Spam != 0 || s.Ham != 0 {
				t.Errorf("a refused import changed the store: %+v", s)
			}
			if recs := importRecords(t, st); len(recs) != 0 {
				t.Errorf("a refused import left records: %v", recs)
			}
		})
	}
}

// An export that adds nothing but records of imports (of a store whose
// word list held no token and counted no message) still records them,
// in a store that has a dialect already too.
func TestImportOnlyFingerprints(t *testing.T) {
	ctx := context.Background()
	fp := strings.Repeat("fedcba9876543210", 4)
	text := "sluice-classifier-export 3\ndialect bogofilter\ntotals 0 0\nf " + fp + " 2026-12-07T03:55:18Z\nend 0 0 1\n"
	st := emptyStore(t)
	if err := importText(ctx, st, ".MSG_COUNT 1 1 0\ncash 1 0 0\n", true); err != nil {
		t.Fatal(err)
	}
	if _, err := classifier.Import(ctx, st, strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	if _, ok := importRecords(t, st)[classifier.MetaImportedPrefix+fp]; !ok {
		t.Errorf("records %v, want %s", importRecords(t, st), fp)
	}
	if m, err := classifier.IncompleteImport(ctx, st); err != nil || m.Began != "" {
		t.Errorf("the store is left marked: %+v, %v", m, err)
	}
}
