package classifier_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// A word list or export saved by a Windows editor (the .MSG_COUNT line
// docs/training.md has an administrator add to a list without one)
// starts with a UTF-8 byte order mark. It is no part of the first line:
// read as one, it made a token of ".ENCODING" (a list of bogofilter
// --unicode=no imported, its raw bytes unchecked), and of ".MSG_COUNT"
// (refused, as if the line were missing), and refused an export as no
// export. The list with the mark is the list without it: imported after
// it, it is refused as imported already.
func TestImportByteOrderMark(t *testing.T) {
	ctx := context.Background()
	const bom = "\ufeff"
	raw := ".ENCODING 1 0 20261206\n.MSG_COUNT 1 1 20261206\ncaf\xe9 1 0 20261206\nbuy 0 1 20261206\n"
	st := emptyStore(t)
	_, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(bom+raw))
	if err == nil || !strings.Contains(err.Error(), "--unicode=yes") {
		t.Errorf("raw list with a byte order mark: error %v, want the raw encoding refused", err)
	}
	if s, _ := st.Stats(ctx); s.Tokens != 0 {
		t.Errorf("raw list with a byte order mark: the store took %d tokens", s.Tokens)
	}

	list := ".MSG_COUNT 1 1 20261206\ncaf\u00e9 1 0 20261206\nbuy 0 1 20261206\n"
	st = emptyStore(t)
	got, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(bom+strings.ReplaceAll(list, "\n", "\r\n")))
	if err != nil || got.Tokens != 2 || got.Totals != (classifier.Totals{Spam: 1, Ham: 1}) {
		t.Fatalf("list with a byte order mark: %+v, %v; want 2 tokens, 1 spam and 1 ham", got, err)
	}
	if _, err := classifier.ImportBogoutil(ctx, st, strings.NewReader(list)); !errors.Is(err, classifier.ErrAlreadyImported) {
		t.Errorf("the list without the mark, after it: %v, want it refused as imported already", err)
	}

	var exp strings.Builder
	if err := classifier.Export(ctx, st, &exp); err != nil {
		t.Fatal(err)
	}
	other := emptyStore(t)
	if _, err := classifier.Import(ctx, other, strings.NewReader(bom+exp.String())); err != nil {
		t.Errorf("export with a byte order mark: %v", err)
	}
}
