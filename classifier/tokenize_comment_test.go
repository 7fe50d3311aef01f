package classifier

import (
	"slices"
	"testing"
)

// TestHTMLEmptyComment checks that "<!-->" and "<!--->", which HTML reads
// as whole (empty) comments, hide no text after them: a browser shows the
// text up to the next comment, and the scanner, looking for "-->" after
// "<!--", dropped it all.
func TestHTMLEmptyComment(t *testing.T) {
	raw := "Content-Type: text/html\n\n" +
		"<p>first <!-->shownword <a href=\"http://shown-host.example/\">x</a> <!--->alsoshown <!-- hiddenword --> last</p>\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"first", "shownword", "url:shown-host.example", "alsoshown", "last"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	if slices.Contains(m.Tokens, "hiddenword") {
		t.Errorf("unexpected %q: the text of a comment", "hiddenword")
	}
}
