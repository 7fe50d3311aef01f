package classifier

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// walkerAllocs returns the allocations of tokenising raw with a warmed
// walker, as the pool hands one out between messages. The walker is
// used directly: under the race detector the pool drops walkers at
// random, and a new one grows every buffer from nothing.
func walkerAllocs(opts TokenizerOptions, raw []byte) float64 {
	w := newWalker(opts.withDefaults())
	w.message(raw, 0, true)
	w.reset()
	return testing.AllocsPerRun(3, func() {
		w.message(raw, 0, true)
		w.reset()
	})
}

// Words that are not in NFKC (a ligature, full-width letters, a
// compatibility letter such as "ª", a letter and a combining accent, the
// Arabic presentation forms that UTF-7 "++++" decodes to) are
// normalised without an allocation each: norm.NFKC.IsNormal and
// norm.NFKC.Append put a reorder buffer of some 600 bytes on the heap
// per call, and a megabyte of "ª " (350,000 words) allocated 400 MB in
// 700,000 allocations where the same megabyte of "é " allocates
// nothing per word.
func TestUnnormalizedWordsBounded(t *testing.T) {
	const words = 20_000
	for _, tc := range []struct {
		name, body, want string
	}{
		{"ordinal", strings.Repeat("\u00aax ", words), "ax"},
		{"ligature", strings.Repeat("\ufb01 ", words), "fi"},
		{"full-width", strings.Repeat("\uff41\uff42 ", words), "ab"},
		{"decomposed", strings.Repeat("caf\u0065\u0301 ", words), "café"},
		{"utf-7", "Content-Type: text/plain; charset=utf-7\n\n" + strings.Repeat("+", 4*words), ""},
	} {
		body := tc.body
		if !strings.HasPrefix(body, "Content-Type") {
			body = "\n" + body
		}
		raw := []byte("Subject: x" + "\n" + body)
		if tc.want != "" {
			m := NewTokenizer(TokenizerOptions{}).TokenizeBytes(raw)
			if !slices.Contains(m.Tokens, tc.want) {
				t.Errorf("%s: missing %q in %q", tc.name, tc.want, m.Tokens)
			}
		}
		// A few dozen for the message; one per word was 20,000.
		if a := walkerAllocs(TokenizerOptions{}, raw); a > 200 {
			t.Errorf("%s: %.0f allocations for %d words", tc.name, a, words)
		}
	}
}

// The NFKC form of a word (walker.nfkc) is what norm.NFKC.Bytes gives,
// for every letter, digit and mark alone, doubled and next to a Latin
// letter, and for runs of combining marks: the walker's normaliser,
// which reuses its buffers, must not change a token.
func TestWordNFKCMatchesNorm(t *testing.T) {
	samples := []string{"e\u0301\u0323", "\u1100\u1161\u11a8", "\u0d4a\u0d57", "ｶﾞ", "\u00aa\ufb01\uff41",
		"a" + strings.Repeat("\u0301", 20), "a" + strings.Repeat("\u0323\u0301", 20)}
	for r := rune(0x80); r < 0x30000; r++ {
		if isWordRune(r) {
			s := string(r)
			samples = append(samples, s, s+"a", "a"+s, s+s)
		}
	}
	w := newWalker(TokenizerOptions{}.withDefaults())
	for _, s := range samples {
		if got, want := string(w.nfkc([]byte(s))), norm.NFKC.String(s); got != want {
			t.Errorf("%+q: %+q, want %+q", s, got, want)
		}
	}
}

// starParams returns n parameters of RFC 2231 form, each of another
// name: "; p0*0=x; p1*0=x ...".
func starParams(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, ";\n p%d*0=x", i)
	}
	return b.String()
}

// The parameters of the Content-Type and Content-Disposition fields of
// a message are parsed up to a budget for the whole message, past a few
// of each field: mime.ParseMediaType allocates a map of some 550 bytes
// for every parameter of RFC 2231 form, and a Content-Type of a megabyte
// of them cost 85 MB and 850,000 allocations. Real fields have a handful
// of parameters, a long file name split in RFC 2231 pieces a few dozen,
// which are still read whole; the boundary and charset after the junk
// still say how to read the body.
func TestMediaTypeParamsBounded(t *testing.T) {
	raw := []byte("Subject: x\nContent-Type: multipart/mixed" + starParams(100_000) + ";\n boundary=bb\n\n" +
		"--bb\nContent-Type: text/plain" + starParams(100_000) + ";\n charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4 hiddenword\n--bb--\n")
	m := NewTokenizer(TokenizerOptions{MaxBytes: len(raw)}).TokenizeBytes(raw)
	for _, tok := range []string{"ctype:multipart/mixed", "ctype:text/plain", "charset:koi8-r", "привет", "hiddenword"} {
		if !slices.Contains(m.Tokens, tok) {
			t.Errorf("missing %q; tokens %q", tok, m.Tokens)
		}
	}
	if !m.Truncated {
		t.Error("not marked truncated")
	}
	// Some 6 allocations per parameter parsed: 200,000 were 1.7 million.
	if a := walkerAllocs(TokenizerOptions{MaxBytes: len(raw)}, raw); a > 20_000 {
		t.Errorf("two fields of 100,000 parameters: %.0f allocations", a)
	}

	// The budget is for the message: many parts of many parameters
	// each are cut too.
	var b strings.Builder
	b.WriteString("Subject: x\nContent-Type: multipart/mixed; boundary=bb\n\n")
	for range 250 {
		b.WriteString("--bb\nContent-Type: application/octet-stream\nContent-Disposition: attachment" + starParams(400) + "\n\nx\n")
	}
	b.WriteString("--bb--\n")
	raw = []byte(b.String())
	// Each keeps its first maxParamsFree, the message maxParams more:
	// 5,000 parameters of some 10 allocations each; 100,000 were 700,000.
	if a := walkerAllocs(TokenizerOptions{MaxBytes: len(raw)}, raw); a > 100_000 {
		t.Errorf("250 fields of 400 parameters: %.0f allocations", a)
	}

	// A file name in 40 RFC 2231 pieces is read whole, in each of 20
	// parts.
	b.Reset()
	b.WriteString("Subject: x\nContent-Type: multipart/mixed; boundary=bb\n\n")
	for range 20 {
		b.WriteString("--bb\nContent-Type: application/octet-stream\nContent-Disposition: attachment;\n filename*0*=iso-8859-1''caf%E9")
		for i := 1; i < 40; i++ {
			fmt.Fprintf(&b, ";\n filename*%d*=%%20w%d", i, i)
		}
		b.WriteString(";\n filename*40*=.zip\n\nx\n")
	}
	b.WriteString("--bb--\n")
	m = NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(b.String()))
	for _, tok := range []string{"name:caf\u00e9", "name:w20", "name:w39.zip", "ext:zip"} {
		if !slices.Contains(m.Tokens, tok) {
			t.Errorf("missing %q; tokens %q", tok, m.Tokens)
		}
	}
	if m.Truncated {
		t.Error("marked truncated")
	}

	// Empty parameters, which a spam of the corpus repeats by the
	// hundred ("text/html ; ; ; ..."), are no parameters: the message is
	// read as it was, not marked truncated.
	raw = []byte("Subject: x\nContent-Type: text/html" + strings.Repeat(" ;", 5000) + "\n\n<p>hello there</p>\n")
	m = NewTokenizer(TokenizerOptions{}).TokenizeBytes(raw)
	if m.Truncated || !slices.Contains(m.Tokens, "hello") {
		t.Errorf("a Content-Type of empty parameters: truncated %v, tokens %q", m.Truncated, m.Tokens)
	}
}
