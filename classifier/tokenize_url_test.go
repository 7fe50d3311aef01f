package classifier

import (
	"slices"
	"testing"
)

// TestURLUserinfo checks that the host of a URL with userinfo
// ("http://user:pass@host/") is the host after the "@", where a browser
// goes, and not the user name before it: phishing links put a bank's name
// there ("http://www.bank.example@evil.example/") to look like the bank.
func TestURLUserinfo(t *testing.T) {
	body := "Content-Type: text/html\n\n" +
		`<a href="http://www.paypal.example@evil-host.example/login">PayPal</a>` +
		`<img src="https://user:pw@img.spam.example:8080/x.gif">` +
		`<form action="http://a@b@last.example/p"></form>` +
		"\nsee http://login.bank.example@text-host.example/x or http://plain.example:8080/ok\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(body))
	for _, w := range []string{"url:evil-host.example", "url:img.spam.example", "url:spam.example",
		"url:last.example", "url:text-host.example", "url:plain.example"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, w := range []string{"url:www.paypal.example", "url:paypal.example", "url:user", "url:a",
		"url:login.bank.example", "url:bank.example"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("unexpected %q: the user name of a URL taken for its host", w)
		}
	}
}

// TestURLWithoutScheme checks that the link targets a browser follows
// without "http:" give their hosts too: a network-path reference
// ("//host/path", RFC 3986 section 4.2), which takes the scheme of the
// page, and the target of a <meta> refresh, which sends the reader on by
// itself, as redirecting spam does.
func TestURLWithoutScheme(t *testing.T) {
	body := "Content-Type: text/html\n\n" +
		`<a href="//click.tracker.example/r?id=1">offer</a>` +
		`<img src=" //user@img.cdn.example:8080/p.gif ">` +
		`<META HTTP-EQUIV="Refresh" CONTENT="0; URL='https://go.redirect.example/x'">` +
		`<meta http-equiv="refresh" content="3;url=//land.example/">` +
		`<meta name="description" content="see url= nothing.example here">` +
		`<p>a // b and //notalink in text</p>`
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(body))
	for _, w := range []string{"url:click.tracker.example", "url:tracker.example", "url:img.cdn.example",
		"url:go.redirect.example", "url:redirect.example", "url:land.example"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, w := range []string{"url:user", "url:nothing.example", "url:notalink"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("unexpected %q: not a link target", w)
		}
	}
}
