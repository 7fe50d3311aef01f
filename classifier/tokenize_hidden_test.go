package classifier

import (
	"slices"
	"testing"
)

// TestTokenizeHiddenInlineText checks that text an inline element hides
// (display:none, visibility:hidden, font-size:0, opacity:0, the hidden
// attribute) neither splits nor joins the visible words around it: spam
// and phishing put hidden letters inside words ("pay<span
// style="font-size:0">x</span>pal") so that filters read words the reader
// never sees. The hidden text is still read, as words of its own, since
// a newsletter's hidden preview line is text too.
func TestTokenizeHiddenInlineText(t *testing.T) {
	body := "Content-Type: text/html; charset=utf-8\n\n" +
		`<p>Verify your pay<span style="display:none">zqx</span>pal account at ` +
		`vi<font style="FONT-SIZE: 0px !important">wk</font>agra ` +
		`ci<span style="color:red;visibility:hidden">jjh</span>alis ` +
		`le<b hidden>uuv</b>vitra ` +
		`am<span style="opacity:0">ppr</span>azon ` +
		`re<span style="display:none">out<span>er</span>er</span>fund ` +
		`keep<span style="display:none;display:inline">in</span>line ` +
		`small<span style="font-size:0.8em">print</span> ` +
		`plain<span>join</span>ed ` +
		`http://spam<span style="display:none">x</span>site.example/</p>` +
		`<div style="display:none">preview line text</div>` +
		`<p>before<br style="display:none">after</p>`
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(body))
	for _, w := range []string{
		"paypal", "paypal account", "viagra", "cialis", "levitra", "amazon", "refund",
		// Hidden text is read on its own.
		"zqx", "wk", "jjh", "uuv", "ppr", "outerer",
		// A later declaration overrides an earlier one; a small font is
		// not a hidden one; a plain span joins as it did.
		"keepinline", "smallprint", "plainjoined",
		"url:spamsite.example",
		// Hidden blocks were words of their own already and stay so.
		"preview", "line", "text",
		// A void element ends no hidden run.
		"before", "after",
	} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, w := range []string{"payzqxpal", "pay", "pal", "viwkagra", "cijjhalis", "leuuvvitra", "amppr", "reouterer",
		"url:spamxsite.example"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("unexpected %q: hidden text split or joined a visible word", w)
		}
	}
}
