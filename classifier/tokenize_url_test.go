package classifier

import (
	"runtime"
	"slices"
	"strings"
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

// TestURLUnicodeHost checks that a link host written in Unicode (an
// internationalised domain name, RFC 5890) gives the same url: tokens as
// the same host written in its ASCII form ("xn--" labels), wherever a
// link is read: an href, an image source, a network-path reference, a
// <meta> refresh, plain text. Before, the host ended at its first
// non-ASCII letter, so "http://bücher.example/" gave no url: token at all
// and a sender could hide every link host by writing it in Unicode. In
// text, a host still ends where Chinese text goes on after it without a
// space.
func TestURLUnicodeHost(t *testing.T) {
	body := "Content-Type: text/html; charset=utf-8\n\n" +
		`<a href="http://bücher.example/x">x</a>` +
		`<a href="http://XN--BCHER-KVA.example/y">y</a>` +
		`<a href="https://BÜCHER.Example/z">z</a>` +
		`<img src="//münchen.example/p.gif">` +
		`<meta http-equiv="refresh" content="0; url=http://пример.рф/go">` +
		`<a href="http://bänk.example@evil-ünicode.example/login">bank</a>` +
		`<a href="http://ｅｘａｍｐｌｅ.com/">fullwidth</a>` +
		`<a href="http://Aא.Example/">mixed direction</a>` +
		`<a href="http://AB--C.bücher.example/">hyphens</a>` +
		"<a href=\"http://\u0301abc.example/\">a leading mark</a>" +
		"<p>visit http://www.例え.jp/page or https://fuß.example.\n" +
		"请访问http://www.plain-cjk.example获取更多信息，请看www.cjk-dot.example.去查询</p>" +
		`<a href="http://shop.中国/">a top-level domain in Chinese</a>`
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(body))
	for _, w := range []string{
		"url:xn--bcher-kva.example",
		"url:xn--mnchen-3ya.example",
		"url:xn--e1afmkfd.xn--p1ai",
		"url:xn--evil-nicode-xhb.example",
		"url:example.com",
		"url:www.xn--r8jz45g.jp", "url:xn--r8jz45g.jp",
		"url:xn--fu-hia.example",
		// As browsers, and as for ASCII hosts, "--" in a label is
		// allowed.
		"url:ab--c.xn--bcher-kva.example",
		// A host the IDNA rules refuse (a Hebrew letter in a Latin
		// label breaks the bidi rule; a label must not start with a
		// combining mark) is still a link: its text, lower-cased.
		"url:aא.example", "url:\u0301abc.example",
		// Text that goes on right after a host, without a space, as
		// Chinese does, is not taken for part of its top-level
		// domain.
		"url:www.plain-cjk.example", "url:plain-cjk.example",
		"url:www.cjk-dot.example", "url:cjk-dot.example",
		// In a link target, nothing runs on after the host.
		"url:shop.xn--fiqs8s",
	} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, tok := range m.Tokens {
		// The Unicode forms, the user name before the "@", and a host
		// cut at its first non-ASCII letter ("url:b", "url:m" are too
		// short to be tokens; "url:bänk..." is the user name).
		if strings.HasPrefix(tok, "url:") && (strings.ContainsAny(tok, "üäßпр例ｅ") || strings.Contains(tok, "bnk") ||
			strings.Contains(tok, "example.xn--")) {
			t.Errorf("unexpected %q", tok)
		}
	}
}

// TestURLUnicodeHostBounded checks that a hostile "host" of a megabyte
// of non-ASCII letters gives no url: token (no DNS name is that long)
// and costs no conversion: the allocations of the message stay those of
// an ASCII host of the same size.
func TestURLUnicodeHostBounded(t *testing.T) {
	long := []byte("Subject: x\n\nhttp://" + strings.Repeat("ü", 500_000) + ".example/ and http://" + strings.Repeat("ü", 300) + "/\n")
	ascii := []byte("Subject: x\n\nhttp://" + strings.Repeat("uu", 500_000) + ".example/ and http://" + strings.Repeat("uu", 300) + "/\n")
	checkHostBounded(t, "a long Unicode host", long, ascii)
}

// checkHostBounded checks that the message long, whose URL hosts are too
// long to be names, gives no url: token, and that tokenising it allocates
// about as many bytes as ascii, a message with ASCII hosts of its size:
// converting or decoding its hosts would allocate about their size
// again, a megabyte or more. Bytes, not allocations, are compared: the
// runtime counts those of every goroutine, and other tests' background
// goroutines (store pollers, Redis clients) add some, under -race a few
// dozen, but no megabyte.
func checkHostBounded(t *testing.T, what string, long, ascii []byte) {
	t.Helper()
	tk := NewTokenizer(TokenizerOptions{})
	for _, tok := range tk.TokenizeBytes(long).Tokens {
		if strings.HasPrefix(tok, "url:") {
			t.Errorf("%s: unexpected %q", what, tok)
		}
	}
	tk.TokenizeBytes(ascii)
	allocated := func(m []byte) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 3 {
			tk.TokenizeBytes(m)
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / 3
	}
	a, b := allocated(long), allocated(ascii)
	if a > b+uint64(len(long)/4) {
		t.Errorf("%d bytes allocated for %s, %d for an ASCII one", a, what, b)
	}
}

// TestURLPercentEncodedHost checks that a link host written with
// percent-encodings, which browsers decode before they look the host up
// ("http://%65vil.example/" goes to evil.example), gives the tokens of
// the host it stands for. Before, the host ended at its first "%", so a
// sender could hide every link host so. A decoded host with a byte no
// host may hold ("/", "@", a space, a second "%") is no link a browser
// follows, and gives no url: token; nor does a hostile megabyte of
// percent-encodings, which costs no more memory than ASCII.
func TestURLPercentEncodedHost(t *testing.T) {
	body := "Content-Type: text/html; charset=utf-8\n\n" +
		`<a href="http://%65vil.example/x">x</a>` +
		`<a href="https://www.%53%50%41%4D%4d.example/y">y</a>` +
		`<img src="//%62%61%64.example/p.gif">` +
		`<a href="http://b%C3%BCcher.example/">utf-8 encoded</a>` +
		`<a href="http://user%40x@%6fk.example/">userinfo</a>` +
		`<a href="http://bad%2fhost.example/">slash</a>` +
		`<a href="http://double%2565.example/">double</a>` +
		"<p>visit http://%74ext.example/page</p>"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(body))
	for _, w := range []string{
		"url:evil.example",
		"url:www.spamm.example", "url:spamm.example",
		"url:bad.example",
		"url:xn--bcher-kva.example",
		"url:ok.example",
		"url:text.example",
	} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, tok := range m.Tokens {
		if strings.HasPrefix(tok, "url:") && strings.ContainsAny(tok, "%/ ") {
			t.Errorf("unexpected %q", tok)
		}
		if tok == "url:host.example" || tok == "url:double" || strings.HasPrefix(tok, "url:bad/") {
			t.Errorf("unexpected %q", tok)
		}
	}

	long := []byte("Subject: x\n\nhttp://" + strings.Repeat("%41", 300_000) + ".example/\n")
	ascii := []byte("Subject: x\n\nhttp://" + strings.Repeat("aaa", 300_000) + ".example/\n")
	checkHostBounded(t, "a long percent-encoded host", long, ascii)
}

// TestURLIdeographicDots checks that a link host written with the full
// stops of Chinese and Japanese text (U+3002 "。", the full-width U+FF0E
// "．" and the half-width U+FF61 "｡") between its labels gives the tokens
// of the same host written with ASCII dots: a browser maps them to "."
// (UTS #46) and goes to that host, so spam that writes its links so
// hid their hosts, whose url: tokens stopped at the first such dot
// ("url:spamsite" for "http://spamsite。com/"). In text, where Chinese
// ends a sentence with "。", such a stop is a dot only before a Latin
// letter or digit: a host followed by Chinese sentences still ends at
// the first, and an internationalised name with the stop before a
// Chinese label ("例子。中国") is read as such only in a link target.
func TestURLIdeographicDots(t *testing.T) {
	body := "Content-Type: text/html; charset=utf-8\n\n" +
		"<a href=\"http://click\u3002spam-a\u3002example/x\">a</a>" +
		"<a href=\"https://spam-b\uff0eexample/\">b</a>" +
		"<img src=\"//img\uff61spam-c\uff61example/p.gif\">" +
		"<a href=\"http://\uff53\uff50\uff41\uff4d\uff0d\uff44\uff0e\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45/\">d</a>" +
		"<p>visit http://spam-e\u3002example/now or www.spam-f\u3002example\u3002\n" +
		"\u8bf7\u8bbf\u95eehttp://www.spam-g.example\u3002\u8c22\u8c22 " +
		"http://spam-h\u3002example\u3002\u8c22\u8c22 " +
		"\u8bbf\u95eewww.spam-j.example\u3002\u8c22\u8c22\u4f60\u3002\u518d\u89c1 " +
		"www.spam-k.edu.\u53bb\u67e5\u8be2\u3002 end\u3002</p>" +
		"<a href=\"http://\u4f8b\u5b50\u3002\u4e2d\u56fd/\">l</a>" +
		// The IDNA rules refuse it (a Hebrew letter in a Latin label);
		// its text, lower-cased, still has the dots.
		"<a href=\"http://Spam-I\u05d0\u3002Example/\">i</a>"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(body))
	for _, w := range []string{
		"url:click.spam-a.example", "url:spam-a.example",
		"url:spam-b.example",
		"url:img.spam-c.example", "url:spam-c.example",
		"url:spam-d.example",
		"url:spam-e.example",
		"url:www.spam-f.example", "url:spam-f.example",
		"url:www.spam-g.example", "url:spam-g.example",
		"url:spam-h.example",
		"url:www.spam-j.example", "url:spam-j.example",
		"url:www.spam-k.edu", "url:spam-k.edu",
		"url:xn--fsqu00a.xn--fiqs8s",
		"url:spam-i\u05d0.example",
	} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, tok := range m.Tokens {
		// A host cut at the first stop, or one that ran on into the
		// Chinese text after it.
		if strings.HasPrefix(tok, "url:") && (strings.ContainsAny(tok, "\u3002\uff0e\uff61\u8c22\u518d") ||
			strings.Contains(tok, ".xn--") && tok != "url:xn--fsqu00a.xn--fiqs8s" ||
			slices.Contains([]string{"url:click", "url:spam-b", "url:img", "url:spam-e", "url:spam-h"}, tok) ||
			strings.Contains(tok, "example.xn--")) {
			t.Errorf("unexpected %q", tok)
		}
	}
}
