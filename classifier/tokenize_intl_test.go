package classifier

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// Internationalised mail (RFC 6532): raw UTF-8 in Subject and From, the
// UTF-8 address of an SMTPUTF8 sender, a UTF-8 body, with and without a
// MIME charset. Tokens are the UTF-8 words, lower-cased, never
// windows-1252 mojibake or replacement characters.
func TestTokenizeRawUTF8Header(t *testing.T) {
	for _, mime := range []string{
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
		"", // no MIME declaration at all
	} {
		raw := "From: José Müller <jösé@exämple.org>\r\nTo: <ü@lab.example>\r\nSubject: Grüße aus Köln – 日本語のテスト\r\n" +
			mime + "\r\nHallo Jürgen, die Bücher über Köln sind angekommen.\r\n"
		m, err := NewTokenizer(TokenizerOptions{}).Tokenize(bytes.NewReader([]byte(raw)))
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range m.Tokens {
			if !utf8.ValidString(tok) || strings.ContainsRune(tok, utf8.RuneError) || strings.Contains(tok, "Ã") {
				t.Errorf("token %q is not clean UTF-8", tok)
			}
		}
		for _, w := range []string{"subj:grüße", "subj:köln", "subj:日本", "from:josé", "from:müller", "from:jösé@exämple.org", "from:exämple.org", "to:ü@lab.example", "jürgen", "bücher", "über", "köln"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("mime %q: missing token %q", mime, w)
			}
		}
	}
}

// TestTokenizeInvisibleCharacters checks that the invisible format
// characters a reader never sees (zero-width space, zero-width joiner and
// non-joiner, word joiner, soft hyphen, byte order mark, direction marks)
// do not split a word: "vi\u200bagra" reads "viagra", and spam writes it
// so to slip words past filters that split there. Between words they
// change nothing either.
func TestTokenizeInvisibleCharacters(t *testing.T) {
	body := "Subject: cheap vi\u00adagra\nContent-Type: text/html; charset=utf-8\n\n" +
		"<p>buy vi\u200bagra now, \u200bvia\u200cgra\u200d, ci&#8203;al&shy;is and " +
		"le\u2060vi\ufefftra\u200e \u200fpills\u202e\u202c</p>"
	m := checkNormalTokens(t, body, []string{"subj:viagra", "subj:cheap viagra", "viagra", "buy viagra", "viagra now",
		"cialis", "levitra", "levitra pills", "pills"}, "an invisible character", func(r rune) bool {
		return r == '\u200b' || r == '\u00ad' || r == '\ufeff' || r == '\u200d' || r == '\u2060' || r == '\u202e'
	})
	for _, w := range []string{"vi", "agra", "gra", "via", "cial", "tra", "subj:agra"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("%q: a word split at an invisible character", w)
		}
	}
}

// TestTokenizeLookAlikeLetters checks that a Latin word with Cyrillic or
// Greek letters that look like Latin ones written in it ("pаypal" with a
// Cyrillic "а") is read as the Latin word its reader sees: phishing and
// spam write brand names and trigger words so. Words wholly in Cyrillic
// or Greek, or with letters that look like no Latin one, stay as they
// are.
func TestTokenizeLookAlikeLetters(t *testing.T) {
	body := "Subject: Your \u0420\u0430yPal \u0430ccount\nContent-Type: text/plain; charset=utf-8\n\n" +
		"Verify your p\u0430yp\u0430l \u0430ccount: \u041dello fr\u03bfm \u0399nternet b\u0430nking, caf\u0435 na\u00efve " +
		"\u0441\u043e\u0440 \u043f\u0440\u0438\u0432\u0435\u0442 \u03ba\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 iPhone\u0436 " +
		"\u0441\u0430\u0444\u0435\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(body))
	for _, w := range []string{"subj:paypal", "subj:account", "subj:paypal account", "paypal", "account",
		"paypal account", "hello", "from", "internet", "banking", "cafe", "naïve",
		// Wholly Cyrillic or Greek: words of their own languages,
		// even "сор", whose letters all look Latin.
		"\u0441\u043e\u0440", "\u043f\u0440\u0438\u0432\u0435\u0442", "\u03ba\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1",
		"\u0441\u0430\u0444\u0435",
		// A letter that looks like no Latin one: left as written.
		"iphone\u0436",
	} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, w := range []string{"p\u0430yp\u0430l", "\u0430ccount", "\u043dello", "fr\u03bfm", "caf\u0435", "cop", "iphone"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("unexpected %q", w)
		}
	}
}

// TestTokenizeCompatibilityForms checks that a word written with the
// compatibility forms of letters (full-width "ｖｉａｇｒａ", the
// mathematical bold and sans-serif letters of "𝐕𝐢𝐚𝐠𝐫𝐚", ligatures
// such as "ﬁ") gives the token of the plain word, as its reader reads
// it (Unicode normalization form NFKC): spam writes subjects and sender
// names so to slip words past filters. A letter with its accent written
// apart ("e" and U+0301) and the same letter precomposed ("é") give one
// token too.
func TestTokenizeCompatibilityForms(t *testing.T) {
	body := "Subject: \U0001d415\U0001d422\U0001d41a\U0001d420\U0001d42b\U0001d41a now\n" +
		"Content-Type: text/plain; charset=utf-8\n\n" +
		"buy \uff56\uff49\uff41\uff47\uff52\uff41 \U0001d5cf\U0001d5ee\U0001d5f9\U0001d5f6\U0001d5f1 \ufb01nance caf\u00e9 cafe\u0301\n"
	checkNormalTokens(t, body, []string{"subj:viagra", "subj:viagra now", "viagra", "buy viagra", "valid", "finance", "caf\u00e9", "caf\u00e9 caf\u00e9"},
		"a compatibility form or a separate accent", func(r rune) bool {
			return r >= 0xff00 && r <= 0xffef || r >= 0x1d400 && r <= 0x1d7ff || r == 0xfb01 || r == 0x0301
		})
}

// TestTokenizeEnclosedLetters checks that a word written in circled or
// squared letters ("ⓥⓘⓐⓖⓡⓐ", "🅵🆁🅴🅴"), which spam uses in subjects
// and sender names, gives the token of the plain word; those letters
// used to be no word runes at all, and the word gave no token. Flags
// (pairs of regional indicator letters) stay emoji, no word.
func TestTokenizeEnclosedLetters(t *testing.T) {
	body := "Subject: \u24e5\u24d8\u24d0\u24d6\u24e1\u24d0 now\nContent-Type: text/plain; charset=utf-8\n\n" +
		"get it \U0001f175\U0001f181\U0001f174\U0001f174 \U0001f13f\U0001f141\U0001f138\U0001f132\U0001f134 " +
		"\U0001f15c\U0001f154\U0001f15d\U0001f162 \u24b6\u24c1\u24c1 \U0001f1e9\U0001f1ea flag\n"
	checkNormalTokens(t, body, []string{"subj:viagra", "subj:viagra now", "free", "get free", "free price", "price", "mens", "all"},
		"an enclosed letter or a regional indicator", func(r rune) bool {
			return r >= 0x2460 && r <= 0x24ff || r >= 0x1f100 && r <= 0x1f1ff
		})
}

// checkNormalTokens tokenises raw and checks that every token of want is
// there and that no token holds a rune that bad reports (what, in the
// message of a failure); it returns the message's tokens.
func checkNormalTokens(t *testing.T, raw string, want []string, what string, bad func(rune) bool) Message {
	t.Helper()
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range want {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, tok := range m.Tokens {
		if strings.ContainsFunc(tok, bad) {
			t.Errorf("%q keeps %s", tok, what)
		}
	}
	return m
}
