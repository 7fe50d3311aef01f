package classifier_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// An export says the dialect of its tokens before any of them, as export
// writes it: one without a dialect line, or with it after records, was
// cut or edited, and was taken for whatever the store holds, so that
// sluice's tokens went into a store imported from bogofilter (or, with a
// batch written before a late dialect line, part of them before the
// mismatch was seen). It is refused before anything is written.
func TestImportDialectLineFirst(t *testing.T) {
	ctx := context.Background()
	var many strings.Builder
	many.WriteString(exportHeader() + "totals 1 0\n")
	const n = 25000 // more than one import batch before the dialect line
	for i := range n {
		fmt.Fprintf(&many, "t tok%06d 1 0 0\n", i)
	}
	fmt.Fprintf(&many, "dialect sluice\nend %d 0\n", n)
	tests := []struct{ name, text, want string }{
		{"after a batch of tokens", many.String(), "line 2: a totals line before the dialect line"},
		{"none", exportHeader() + "totals 1 0\nt sluicetok 1 0 0\nend 1 0\n", "line 2: a totals line before the dialect line"},
		{"after tokens", exportHeader() + "totals 1 0\nt sluicetok 1 0 0\ndialect sluice\nend 1 0\n", "line 2: a totals line before the dialect line"},
		{"after tokens, no totals", exportHeader() + "t sluicetok 1 0 0\ndialect sluice\ntotals 1 0\nend 1 0\n", "line 2: a t line before the dialect line"},
		{"twice", exportHeader() + "dialect bogofilter\ndialect sluice\ntotals 1 0\nt sluicetok 1 0 0\nend 1 0\n", "line 3: a second dialect line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := emptyStore(t)
			if _, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(".MSG_COUNT 1 1 0\nfoo 1 0 0\n")); err != nil {
				t.Fatal(err)
			}
			_, err := classifier.Import(ctx, st, strings.NewReader(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			s, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s.Tokens != 1 || s.Totals != (classifier.Totals{Spam: 1, Ham: 1}) {
				t.Errorf("the refused import changed the store: %+v", s)
			}
		})
	}
}
