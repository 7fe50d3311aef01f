package classifier

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Export refuses a store that holds part of an import that has not
// finished, reading the mark in the version of the store it exports: a
// caller's check made before (db export's) leaves a moment in which the
// import can set its mark and write its first batch, and an export of
// that fragment, which carries no mark, would pass for a whole store
// wherever it was imported.
func TestExportRefusesUnfinishedImport(t *testing.T) {
	ctx := context.Background()
	bs, err := OpenBolt(filepath.Join(t.TempDir(), "db"), BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	if _, err := markFirstAdd(ctx, bs, string(DialectSluice)); err != nil {
		t.Fatal(err)
	}
	if err := bs.Add(ctx, Batch{Totals: Totals{Spam: 1}, Records: []Record{{Token: "a", Counts: Counts{Spam: 1}}}}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = Export(ctx, bs, &out)
	if err == nil || !strings.Contains(err.Error(), "has not finished") {
		t.Errorf("error %v, want a refusal naming the unfinished import", err)
	}
	if out.Len() != 0 {
		t.Errorf("the refused export wrote %q", out.String())
	}
}
