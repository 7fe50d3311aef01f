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

// A bogofilter word list as bogoutil -d writes it, and the same list
// dumped again with CR line ends, blank lines, another .ROBX and its
// lines in another order: none of that is kept by the store.
const (
	twiceDump = ".ENCODING 2 0 20261201\n.MSG_COUNT 3 5 20261201\n.ROBX 415000 0 20261201\n" +
		"cash 3 0 20261201\nhello 1 4 20261130\nmeeting 0 5 20261201\n"
	twiceDumpAgain = "hello 1 4 20261130\r\n\r\n.MSG_COUNT 3 5 20261201\r\n.ROBX 398000 0 20261205\r\n" +
		"meeting 0 5 20261201\r\ncash 3 0 20261201\r\n"
	// The same bogofilter after it learned one spam and one ham more.
	twiceLaterDump = ".ENCODING 2 0 20261201\n.MSG_COUNT 4 6 20261203\n" +
		"cash 4 0 20261203\nhello 1 5 20261203\nmeeting 0 6 20261203\n"
)

// A bogofilter word list, or an export of a store that holds only one,
// has no digests of learned messages by which an import could see that
// the store has it already: a migration script run a second time
// imported the list again and every token and message count doubled
// (cash 6 spam of 6 learned), silently. The store now records each
// import's fingerprint with the import, and refuses the same input
// again before anything is written, saying when it was imported; a
// different list (a later dump of a bogofilter that learned more) still
// imports, and --again (ImportInput.Again) imports the same one on
// purpose. A word list and the export of a store that holds only that
// list are the same input. Pruning keeps the record.
func TestImportTwiceRefused(t *testing.T) {
	ctx := context.Background()
	// "walked" stands for a store of another kind, which records the
	// fingerprint and takes the mark away in two steps. Each store this
	// test opens is closed when its subtest ends.
	stores := closedStoreKinds(redistest.Start(t), "")
	bogoutil := func(st classifier.Store, text string, again bool) error {
		in, err := classifier.CheckBogoutil(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		in.Again = again
		_, err = in.Into(ctx, st)
		return err
	}
	export := func(st classifier.Store, text []byte) error {
		_, err := classifier.Import(ctx, st, bytes.NewReader(text))
		return err
	}
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			cash := func(st classifier.Store) (classifier.Totals, classifier.Counts) {
				t.Helper()
				tot, c, err := st.Lookup(ctx, []string{"cash"})
				if err != nil {
					t.Fatal(err)
				}
				return tot, c[0]
			}
			refused := func(st classifier.Store, what string, imp func() error) {
				t.Helper()
				before := exportBytes(t, st)
				err := imp()
				if !errors.Is(err, classifier.ErrAlreadyImported) || !strings.Contains(err.Error(), "was imported into the store already, at 20") {
					t.Errorf("%s: %v, want a refusal saying when it was imported", what, err)
				}
				if err != nil && strings.Contains(err.Error(), "line") {
					t.Errorf("%s: %v, names a line of the input, which none caused", what, err)
				}
				if after := exportBytes(t, st); !bytes.Equal(after, before) {
					t.Errorf("%s: the refused import changed the store:\n%s\nwas\n%s", what, after, before)
				}
				if m, err := classifier.IncompleteImport(ctx, st); err != nil || m.Began != "" {
					t.Errorf("%s: the refused import left the store marked: %+v, %v", what, m, err)
				}
			}

			st := sc.open(t)
			if err := bogoutil(st, twiceDump, false); err != nil {
				t.Fatal(err)
			}
			refused(st, "the same dump again", func() error { return bogoutil(st, twiceDump, false) })
			refused(st, "the same list dumped again", func() error { return bogoutil(st, twiceDumpAgain, false) })
			if tot, c := cash(st); tot != (classifier.Totals{Spam: 3, Ham: 5}) || c.Spam != 3 {
				t.Errorf("after the refused imports: totals %+v, cash %+v, want 3 spam and 5 ham, cash 3", tot, c)
			}

			// The export of a store that holds only that list adds the
			// same counts: refused here, and the list is refused in a
			// store made from the export.
			onlyList := exportBytes(t, st)
			refused(st, "the export of the store", func() error { return export(st, onlyList) })
			moved := sc.open(t)
			if err := export(moved, onlyList); err != nil {
				t.Fatal(err)
			}
			refused(moved, "the export again", func() error { return export(moved, onlyList) })
			refused(moved, "the list into the moved store", func() error { return bogoutil(moved, twiceDump, false) })

			// Pruning all the tokens leaves the list's message totals.
			pruned := sc.open(t)
			if err := bogoutil(pruned, twiceDump, false); err != nil {
				t.Fatal(err)
			}
			if n, err := pruned.Prune(ctx, classifier.PruneOptions{MaxCount: 100}); err != nil || n != 3 {
				t.Fatalf("prune: %d, %v", n, err)
			}
			refused(pruned, "the list after a prune", func() error { return bogoutil(pruned, twiceDump, false) })

			// A later dump is another list, and adds.
			if err := bogoutil(st, twiceLaterDump, false); err != nil {
				t.Fatalf("a later dump: %v", err)
			}
			if tot, c := cash(st); tot != (classifier.Totals{Spam: 7, Ham: 11}) || c.Spam != 7 {
				t.Errorf("after a later dump: totals %+v, cash %+v, want 7 spam and 11 ham, cash 7", tot, c)
			}
			// Again, on purpose.
			if err := bogoutil(st, twiceDump, true); err != nil {
				t.Fatalf("--again: %v", err)
			}
			if tot, c := cash(st); tot != (classifier.Totals{Spam: 10, Ham: 16}) || c.Spam != 10 {
				t.Errorf("after --again: totals %+v, cash %+v, want 10 spam and 16 ham, cash 10", tot, c)
			}
			if m, err := classifier.IncompleteImport(ctx, st); err != nil || m.Began != "" {
				t.Errorf("the store is left marked: %+v, %v", m, err)
			}
		})
	}
}
