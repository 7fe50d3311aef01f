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
