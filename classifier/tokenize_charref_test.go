package classifier

import (
	"slices"
	"testing"
)

// TestHTMLNumericReferenceEnd checks that a numeric character reference
// without its ";" ends where its digits end, as browsers read it: spam
// writes "V&#105agra" for a reader to see "Viagra", and the letters after
// the digits were taken into the reference, which then decoded to
// nothing and left the words "105agra" and "x65vitra".
func TestHTMLNumericReferenceEnd(t *testing.T) {
	raw := "Content-Type: text/html\n\n" +
		"<p>V&#105agra, L&#x65vitra, fr&#101e99, C&#105;alis, S&#X61;le &#38 &#xyz &#;</p>\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"viagra", "levitra", "free99", "cialis", "sale", "xyz"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, w := range []string{"105agra", "x65vitra", "101e99"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("unexpected %q", w)
		}
	}
}
