package classifier

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "classifier", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTokenizeFixtures(t *testing.T) {
	tests := []struct {
		file   string
		want   []string // must be among the tokens
		absent []string // must not be
	}{
		{"qp.eml", []string{"célèbre", "coupee", "superlongwordjoined", "subj:quoted", "subj:printable", "cte:quoted-printable"},
			[]string{"c=c3", "coup", "superlongw"}},
		{"base64.eml", []string{"unmistakable", "payload", "cte:base64"}, []string{"vghpcybib2r5"}},
		{"latin1.eml", []string{"grüße", "münchen", "straße", "charset:iso-8859-1"}, nil},
		{"koi8r.eml", []string{"привет", "мир", "кодировки", "charset:koi8-r"}, nil},
		{"sjis.eml", []string{"日本", "本語", "メー", "charset:shift_jis"}, nil},
		{"html.eml", []string{"cheap", "viagra", "save", "click", "url:click.spammer-host.example", "url:spammer-host.example",
			"url:images.cdn-host.example", "url:cdn-host.example", "mailto:orders@shop.example", "ctype:text/html"},
			[]string{"trackingsecret", "hidden", "break", "amp", "href", "iagra"}},
		{"nested.eml", []string{"alternativeplainword", "alternativehtmlword", "forwardedplainword", "forwardedhtmlword",
			"forwarded", "ctype:application/pdf", "ext:pdf", "name:invoice-2024.pdf", "ctype:message/rfc822", "ctype:multipart/alternative"},
			[]string{"preamble", "binarystuffnotokens", "from:carol", "from:inner.example"}},
		{"broken-noboundary.eml", []string{"boundarylessword", "survives", "mime:noboundary"}, nil},
		{"broken-base64.eml", []string{"truncated", "readablewords", "before"}, nil},
		{"broken-headers.eml", []string{"rcvd:mail.relay.example", "rcvd:192.0.2.7", "from:müller", "subj:café", "subj:nulbyte",
			"colon", "bodyword", "nul"}, []string{"hdr:x-ignored"}},
		{"bare-cr.eml", []string{"from:cr@oldmac.example", "subj:carriage", "classicmacword"}, nil},
		{"rfc2047.eml", []string{"from:jürgen", "subj:grüße", "subj:angebote", "plain"},
			[]string{"hdr:x-spam-status", "hdr:x-sluice-bayes", "spamicity=1.000000", "yes"}},
		{"unknown-charset.eml", []string{"déjà", "naïve", "façade"}, nil},
		{"bad-encoding.eml", []string{"rawencodedword", "readable", "cte:x-uuencode-weird"}, nil},
		{"mbox-from.eml", []string{"mboxbodyword", "from:alice@sender.example", "from:sender.example"}, []string{"sender@mbox.example", "mbox.example"}},
	}
	tk := NewTokenizer(TokenizerOptions{})
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := tk.Tokenize(bytes.NewReader(readFixture(t, tc.file)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSorted(m.Tokens) {
				t.Error("tokens not sorted")
			}
			set := map[string]bool{}
			for _, tok := range m.Tokens {
				if set[tok] {
					t.Errorf("token %q twice", tok)
				}
				set[tok] = true
			}
			for _, w := range tc.want {
				if !set[w] {
					t.Errorf("missing token %q; got %q", w, m.Tokens)
				}
			}
			for _, a := range tc.absent {
				if set[a] {
					t.Errorf("unexpected token %q", a)
				}
			}
		})
	}
}

func TestTokenizeBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString("Subject: many words\n\n")
	for i := range 5000 {
		b.WriteString("word")
		b.WriteString(strings.Repeat("x", i%30))
		b.WriteString(string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + " ")
	}
	raw := []byte(b.String())

	m := NewTokenizer(TokenizerOptions{MaxTokens: 100}).TokenizeBytes(raw)
	if len(m.Tokens) != 100 || !m.Truncated {
		t.Errorf("MaxTokens 100: %d tokens, truncated %v", len(m.Tokens), m.Truncated)
	}
	m, err := NewTokenizer(TokenizerOptions{MaxBytes: 64}).Tokenize(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	// 64 bytes hold a subject and a few words: at most a dozen words and
	// their pairs.
	if !m.Truncated || len(m.Tokens) > 24 {
		t.Errorf("MaxBytes 64: %d tokens, truncated %v", len(m.Tokens), m.Truncated)
	}
	m = NewTokenizer(TokenizerOptions{}).TokenizeBytes(raw)
	if m.Truncated {
		t.Error("default bounds truncated a 100 KB message")
	}

	// Deep nesting stops at MaxDepth instead of recursing on.
	var nest strings.Builder
	depth := 50
	for i := range depth {
		nest.WriteString("Content-Type: multipart/mixed; boundary=\"b" + string(rune('A'+i%26)) + string(rune('a'+i/26)) + "\"\n\n")
		nest.WriteString("--b" + string(rune('A'+i%26)) + string(rune('a'+i/26)) + "\n")
	}
	nest.WriteString("Content-Type: text/plain\n\ndeepestword\n")
	m = NewTokenizer(TokenizerOptions{MaxDepth: 5}).TokenizeBytes([]byte(nest.String()))
	if !m.Truncated || slices.Contains(m.Tokens, "deepestword") {
		t.Errorf("MaxDepth 5 on depth %d: truncated %v, tokens %q", depth, m.Truncated, m.Tokens)
	}
	m = NewTokenizer(TokenizerOptions{MaxDepth: 60, MaxParts: 100}).TokenizeBytes([]byte(nest.String()))
	if !slices.Contains(m.Tokens, "deepestword") {
		t.Errorf("MaxDepth 60 on depth %d: deepest word missing: %q", depth, m.Tokens)
	}
}

func TestTokenizeBogofilterDialect(t *testing.T) {
	raw := readFixture(t, "mbox-from.eml")
	m := NewTokenizer(TokenizerOptions{Dialect: DialectBogofilter}).TokenizeBytes(raw)
	want := []string{"head:From", "head:mbox.example", "from:Alice", "from:sender.example", "to:rcpt.example",
		"subj:Mbox", "subj:separator", "head:Date", "head:Message-ID", "head:Content-Type", "head:text", "mboxbodyword"}
	for _, w := range want {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, a := range []string{"head:2024", "head:10", "ctype:text/plain", "from:alice@sender.example"} {
		if slices.Contains(m.Tokens, a) {
			t.Errorf("unexpected %q", a)
		}
	}
	w := newWalker(TokenizerOptions{Dialect: DialectBogofilter}.withDefaults())
	w.bogoWords([]byte("Price $20.50 at 10.0.0.1, x9 ab abc a-b- don't 12345abc"), "")
	got := w.set.sorted()
	if want := []string{"$20.50", "10.0.0.1", "Price", "a-b", "abc", "don't"}; !slices.Equal(got, want) {
		t.Errorf("bogoWords: %q, want %q", got, want)
	}
}

// TestBogoWordsTokenEnd pins where a bogofilter token may end. The
// expected tokens are what bogolexer -p of bogofilter 1.2.5 (Debian 12)
// printed for each text: a token ends in a letter, digit, other
// non-punctuation byte or '!', so a trailing ', ` or ~ is dropped as . _
// and - are. A word list imported from bogofilter holds "Users" for
// "Users' Group", never "Users'".
func TestBogoWordsTokenEnd(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"Irish Users' Group", "Group Irish Users"},
		{"quote` test~ bar~~ abd' abj!'", "abd abj! bar quote test"},
		{"now! foo!!! ab! a! abn!! abo!- abp-! abk'! abl.!", "ab! abk'! abl.! abn!! abo! abp-! foo!!! now!"},
		{"abe- abf. abg_ it's don't rock'n'roll abq'x abr~x a!b abm!x", "a!b abe abf abg abm!x abq'x abr~x don't it's rock'n'roll"},
	} {
		w := newWalker(TokenizerOptions{Dialect: DialectBogofilter}.withDefaults())
		w.bogoWords([]byte(tc.text), "")
		if got := strings.Join(w.set.sorted(), " "); got != tc.want {
			t.Errorf("bogoWords(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

// TestBogoMultipartOutsideParts checks that the bogofilter dialect reads
// the text before the first boundary and after the closing one, as
// bogolexer -p of bogofilter 1.2.5 does: Mailman puts its list footer
// after the closing boundary of a signed message.
func TestBogoMultipartOutsideParts(t *testing.T) {
	raw := "Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n\n" +
		"preambleword here\n--BBX not a boundary\n--BB\nContent-Type: text/plain\n\npartword\n" +
		"--BB--\n\nepilogueword there\n"
	for _, eol := range []string{"\n", "\r\n"} {
		m := NewTokenizer(TokenizerOptions{Dialect: DialectBogofilter}).TokenizeBytes([]byte(strings.ReplaceAll(raw, "\n", eol)))
		for _, w := range []string{"preambleword", "here", "boundary", "partword", "epilogueword", "there"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("eol %q: missing %q in %q", eol, w, m.Tokens)
			}
		}
	}
}

// TestBogoIDFieldContinuations checks the fields whose value the
// bogofilter dialect skips (dates and message ids): bogolexer -p of
// bogofilter 1.2.5 skips only their first line and makes tokens of
// their continuation lines, such as the second id of a References field
// or an id that starts on the line after the field name.
func TestBogoIDFieldContinuations(t *testing.T) {
	raw := "Date: Wed, 21 Aug 2002\n  11:40:46 -0400 datecont\nMessage-Id: <id@skipped.example>\n <abc.def@msgidcont.example>\n" +
		"References: <first@skipped.example>\n    <9627.1029933001@munnari.OZ.AU>\n" +
		"In-Reply-To: <x@alsoskipped.example>\nResent-Message-Id:\n <rmcont@rm.example>\nSubject: x\n\nbody\n"
	for _, eol := range []string{"\n", "\r\n"} {
		m := NewTokenizer(TokenizerOptions{Dialect: DialectBogofilter}).TokenizeBytes([]byte(strings.ReplaceAll(raw, "\n", eol)))
		for _, w := range []string{"head:Date", "head:datecont", "head:Message-Id", "head:abc.def", "head:msgidcont.example", "head:References", "head:munnari.OZ.AU", "head:In-Reply-To", "head:rmcont", "head:rm.example"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("eol %q: missing %q in %q", eol, w, m.Tokens)
			}
		}
		for _, w := range []string{"head:skipped.example", "head:alsoskipped.example", "head:Wed", "head:Aug"} {
			if slices.Contains(m.Tokens, w) {
				t.Errorf("eol %q: unexpected %q in %q", eol, w, m.Tokens)
			}
		}
	}
}

// TestBogoBoundaryParameter checks that the bogofilter dialect makes no
// token of a boundary parameter in a header, as bogolexer -p of
// bogofilter 1.2.5 does not: "boundary=" (in any case, not inside a
// word) and a quoted value are skipped, and an unquoted value with the
// rest of its line. In the body it is text like any other.
func TestBogoBoundaryParameter(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		want     []string
		unwanted []string
	}{{
		raw: "X-A: foo Boundary=\"aaa qq7\"; x=yyyqq\nX-B: bar BOUNDARY=aaaqq5 trail\n contword\n" +
			"X-C: xboundary=\"aaaqq6\"\nSubject: x\n\nword1 boundary=\"bodybb\"\n",
		want:     []string{"head:foo", "head:yyyqq", "head:bar", "head:contword", "head:xboundary", "head:aaaqq6", "word1", "boundary", "bodybb"},
		unwanted: []string{"head:Boundary", "head:aaa", "head:qq7", "head:BOUNDARY", "head:aaaqq5", "head:trail"},
	}, {
		raw: "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outerbb\"\nSubject: x\n\n" +
			"--outerbb\nContent-Type: multipart/alternative; boundary=\"innerbb\"; zzparam=keepme\n\n" +
			"--innerbb\nContent-Type: text/plain\n\nword1 boundary=\"bodybb\"\n--innerbb--\n--outerbb--\n",
		want:     []string{"head:multipart", "head:mixed", "mime:alternative", "mime:zzparam", "mime:keepme", "word1", "boundary", "bodybb"},
		unwanted: []string{"head:boundary", "head:outerbb", "mime:boundary", "mime:innerbb"},
	}} {
		for _, eol := range []string{"\n", "\r\n"} {
			m := NewTokenizer(TokenizerOptions{Dialect: DialectBogofilter}).TokenizeBytes([]byte(strings.ReplaceAll(tc.raw, "\n", eol)))
			for _, w := range tc.want {
				if !slices.Contains(m.Tokens, w) {
					t.Errorf("eol %q: missing %q in %q", eol, w, m.Tokens)
				}
			}
			for _, w := range tc.unwanted {
				if slices.Contains(m.Tokens, w) {
					t.Errorf("eol %q: unexpected %q in %q", eol, w, m.Tokens)
				}
			}
		}
	}
}

// TestBogoHTMLInsideRawTextElements checks that the bogofilter dialect
// reads tags inside <iframe>, <textarea> and <noscript> as tags, as
// bogolexer -p of bogofilter 1.2.5 does: an HTML parser takes their
// content as text, which made words of the attributes of a <script> in
// an <iframe>.
func TestBogoHTMLInsideRawTextElements(t *testing.T) {
	raw := "Content-Type: text/html\nSubject: x\n\n<html><iframe src=\"http://zz.example/ifr\">" +
		"<script language=\"JavaScript\" src=\"http://zd.example/include/y\">scriptword</script></iframe> visible " +
		"<textarea>tawords <b>boldword</b></textarea> <noscript>nsword <a href=\"http://ns.example/x\">nslink</a></noscript></html>\n"
	m := NewTokenizer(TokenizerOptions{Dialect: DialectBogofilter}).TokenizeBytes([]byte(raw))
	got := strings.Join(slices.Sorted(slices.Values(m.Tokens)), " ")
	want := "boldword head:Content-Type head:html head:text href http ns.example nslink nsword scriptword tawords visible"
	if got != want {
		t.Errorf("tokens %q, want %q", got, want)
	}
}

func TestMessageDigest(t *testing.T) {
	base := "From: a@example.org\nSubject: hi\n\nbody line\n"
	same := []string{
		"Received: from x by y\nReturn-Path: <a@example.org>\n" + base,
		strings.ReplaceAll(base, "\n", "\r\n"),
		"From a@example.org  Mon Jan  1 00:00:00 2024\n" + base,
		"X-Sluice-Bayes: Spam, spamicity=0.99\nDelivered-To: me@example.net\n" + base + "\n\n",
	}
	d := MessageDigest([]byte(base))
	for _, s := range same {
		if got := MessageDigest([]byte(s)); got != d {
			t.Errorf("digest of %q differs from the plain message's", s)
		}
	}
	for _, s := range []string{strings.Replace(base, "hi", "ho", 1), strings.Replace(base, "body", "Body", 1)} {
		if MessageDigest([]byte(s)) == d {
			t.Errorf("digest of changed message %q equals the original's", s)
		}
	}
	p, err := ParseDigest(d.String())
	if err != nil || p != d {
		t.Errorf("ParseDigest(String()) = %v, %v", p, err)
	}
}

// withoutField returns raw without its header fields called name, their
// continuation lines included: the message as it was before delivery
// added them.
func withoutField(raw, name string) string {
	var b strings.Builder
	lines := strings.SplitAfter(raw, "\n")
	drop := false
	for i, l := range lines {
		if l == "\n" || l == "\r\n" {
			// The end of the header: the body stays as it is.
			b.WriteString(strings.Join(lines[i:], ""))
			break
		}
		if l != "" && l[0] != ' ' && l[0] != '\t' {
			drop = len(l) > len(name) && strings.EqualFold(l[:len(name)+1], name+":")
		}
		if !drop {
			b.WriteString(l)
		}
	}
	return b.String()
}

// A field named in SkipFields (a verdict field of a configured name, added
// on delivery) gives no token, does not change the header order token and
// is not part of the digest: the delivered copy is the message the daemon
// classified and learned. Without the option, and for MessageDigest, it
// counts as before.
func TestSkipFields(t *testing.T) {
	delivered := string(readFixture(t, "junk-verdict.eml"))
	plain := withoutField(delivered, "X-Junk-Verdict")
	if plain == delivered || !strings.Contains(plain, "Status: RO") || !strings.HasSuffix(plain, "allotment afterwards.\n") {
		t.Fatalf("fixture without the field: %q", plain)
	}
	skipping := NewTokenizer(TokenizerOptions{SkipFields: []string{"x-junk-VERDICT"}})
	plainToks := skipping.TokenizeBytes([]byte(plain)).Tokens
	if got := skipping.TokenizeBytes([]byte(delivered)).Tokens; !slices.Equal(got, plainToks) {
		t.Errorf("the skipped field changed the tokens: %q", tokenDiff(got, plainToks))
	}
	if slices.Contains(plainToks, "hdr:x-junk-verdict") || !slices.Contains(plainToks, "subj:seedling") {
		t.Errorf("tokens %q", plainToks)
	}
	if d := skipping.Digest([]byte(delivered)); d != skipping.Digest([]byte(plain)) || d != MessageDigest([]byte(plain)) {
		t.Error("the skipped field changed the digest")
	}
	c := New(nil, Params{Limits: TokenizerOptions{SkipFields: []string{"X-Junk-Verdict"}}})
	op, opPlain := c.PrepareBytes([]byte(delivered), Ham, false), c.PrepareBytes([]byte(plain), Ham, false)
	if op.Digest != opPlain.Digest || !slices.Equal(op.Tokens, opPlain.Tokens) {
		t.Error("a learned message's digest or tokens changed with the skipped field")
	}

	// Not skipped, the field is a token of its own and changes the field
	// order token; MessageDigest, without options, keeps it.
	tk := NewTokenizer(TokenizerOptions{})
	toks := tk.TokenizeBytes([]byte(delivered)).Tokens
	if !slices.Contains(toks, "hdr:x-junk-verdict") {
		t.Errorf("tokens without SkipFields %q", toks)
	}
	if ordOf(toks) == ordOf(plainToks) {
		t.Error("the field order token does not see the field")
	}
	if MessageDigest([]byte(delivered)) == MessageDigest([]byte(plain)) || tk.Digest([]byte(delivered)) == tk.Digest([]byte(plain)) {
		t.Error("digest without SkipFields left the field out")
	}

	// Names the built-in list leaves out already add nothing, so the
	// default configuration tokenises as before; Skips sees both lists.
	if o := (TokenizerOptions{SkipFields: []string{"X-Sluice-Bayes", "x-spam-flag", "X-Junk-Verdict", "x-junk-verdict", ""}}).withDefaults(); !slices.Equal(o.SkipFields, []string{"x-junk-verdict"}) {
		t.Errorf("SkipFields %q", o.SkipFields)
	}
	var none TokenizerOptions
	if !none.Skips("X-Sluice-Bayes") || !none.Skips("X-Spam-Status") || none.Skips("X-Junk-Verdict") || none.Skips("Subject") {
		t.Error("Skips without SkipFields")
	}
	if !(TokenizerOptions{SkipFields: []string{"x-junk-verdict"}}).Skips("X-JUNK-Verdict") {
		t.Error("Skips ignores SkipFields")
	}

	// The bogofilter dialect reads every field, as bogofilter does; its
	// digest leaves the field out as the sluice dialect's does.
	bogo := NewTokenizer(TokenizerOptions{Dialect: DialectBogofilter})
	bogoSkipping := NewTokenizer(TokenizerOptions{Dialect: DialectBogofilter, SkipFields: []string{"X-Junk-Verdict"}})
	if !slices.Equal(bogo.TokenizeBytes([]byte(delivered)).Tokens, bogoSkipping.TokenizeBytes([]byte(delivered)).Tokens) {
		t.Error("SkipFields changed the bogofilter dialect's tokens")
	}
	if bogoSkipping.Digest([]byte(delivered)) != MessageDigest([]byte(plain)) {
		t.Error("the bogofilter dialect's digest kept the skipped field")
	}
}

// tokenDiff returns the tokens in only one of a and b.
func tokenDiff(a, b []string) []string {
	var d []string
	for _, tok := range a {
		if !slices.Contains(b, tok) {
			d = append(d, tok)
		}
	}
	for _, tok := range b {
		if !slices.Contains(a, tok) {
			d = append(d, tok)
		}
	}
	return d
}

// ordOf returns the field order token among toks.
func ordOf(toks []string) string {
	for _, tok := range toks {
		if strings.HasPrefix(tok, "ord:") {
			return tok
		}
	}
	return ""
}

func FuzzTokenize(f *testing.F) {
	dir := filepath.Join("..", "testdata", "classifier")
	names, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, m := range unspacedMessages {
		f.Add([]byte(m))
	}
	sluice := NewTokenizer(TokenizerOptions{MaxBytes: 1 << 16, MaxTokens: 2000})
	bogo := NewTokenizer(TokenizerOptions{MaxBytes: 1 << 16, MaxTokens: 2000, Dialect: DialectBogofilter})
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, tk := range []*Tokenizer{sluice, bogo} {
			m := tk.TokenizeBytes(raw)
			if len(m.Tokens) > 2000 {
				t.Fatalf("%d tokens, cap 2000", len(m.Tokens))
			}
			for i, tok := range m.Tokens {
				if tok == "" {
					t.Fatal("empty token")
				}
				if i > 0 && m.Tokens[i-1] >= tok {
					t.Fatalf("tokens not sorted and distinct at %d: %q %q", i, m.Tokens[i-1], tok)
				}
			}
		}
		// The features: distinct, in range, the same as NgramFeatures
		// and WordFeatures of the tokens together, the byte sequences'
		// the same without carriage returns, and packed losslessly.
		m := sluice.TokenizeBytes(raw)
		f := slices.Clone(m.Features)
		slices.Sort(f)
		if len(slices.Compact(slices.Clone(f))) != len(f) || (len(f) > 0 && f[len(f)-1] >= 1<<ngramBits) {
			t.Fatalf("features not distinct or out of range: %v", f)
		}
		bytesF := NgramFeatures(raw[:min(len(raw), 1<<16)])
		want := slices.Concat(bytesF, WordFeatures(m.Tokens))
		slices.Sort(want)
		if want = slices.Compact(want); !slices.Equal(f, want) {
			t.Fatalf("tokenizer's features differ from NgramFeatures and WordFeatures: %d vs %d", len(f), len(want))
		}
		if g := NgramFeatures(bytes.ReplaceAll(raw[:min(len(raw), 1<<16)], []byte("\r"), nil)); !slices.Equal(bytesF, g) {
			t.Fatal("carriage returns changed the features")
		}
		if d, err := DecodeFeatures(EncodeFeatures(f)); err != nil || !slices.Equal(d, f) {
			t.Fatalf("features do not survive packing: %v", err)
		}
		MessageDigest(raw)
	})
}

// Words of three bytes or more form pairs with the previous such word of
// the same run; shorter words are skipped without breaking the chain. The
// subject pairs too, the other header fields do not, and a pair never
// spans two runs (two fields, or a subject and a body).
func TestTokenizePairs(t *testing.T) {
	raw := "From: Mail Sender <a@b.example>\nSubject: Cheap Meds Online\nMessage-ID: <x9Ab7.unique@mta.example>\n\n" +
		"Click on the link to remove yourself, 12345678 now!\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"click the", "the link", "link remove", "remove yourself", "yourself now",
		"subj:cheap meds", "subj:meds online", "mid:mta.example"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, a := range []string{"click on", "on the", "link to", "yourself 12345678", "online click",
		"from:mail sender", "mid:x9ab7.unique", "mid:x9ab7.unique@mta.example"} {
		if slices.Contains(m.Tokens, a) {
			t.Errorf("unexpected %q", a)
		}
	}
}

// decodeQP keeps what it cannot decode instead of cutting the text there.
func TestDecodeQP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"caf=C3=A9", "café"},
		{"lower =c3=a9 case", "lower é case"},
		{"soft=\nbreak, soft=\r\nCRLF, soft=  \nspaces", "softbreak, softCRLF, softspaces"},
		{"bad =ZZ escape and a = sign", "bad =ZZ escape and a = sign"},
		{"end=", "end"},
		{"end=4", "end=4"},
		{"no escapes", "no escapes"},
	}
	for _, tc := range tests {
		if got := string(decodeQP([]byte(tc.in))); got != tc.want {
			t.Errorf("decodeQP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A token set reused over messages of very different sizes, whose table
// starts each message small in the memory of the largest so far (see
// tokenSet.reset), is empty each time: no slot of an earlier message is
// left anywhere in that memory, and each message's tokens are found and
// new ones added as in a fresh set.
func TestTokenSetResetAfterLargeMessage(t *testing.T) {
	s := newTokenSet()
	r := rand.New(rand.NewPCG(3, 9))
	for round, n := range []int{5000, 10, 300, 0, 40, 20000, 7} {
		var want []string
		for range 3 * n {
			b := fmt.Appendf(nil, "t%d", r.IntN(2*n+1))
			if s.add(b) {
				want = append(want, string(b))
			} else if !slices.Contains(want, string(b)) {
				t.Fatalf("round %d: %q found before it was added", round, b)
			}
		}
		if got := s.appendUnsorted(nil); !slices.Equal(got, want) {
			t.Fatalf("round %d: %d tokens, want %d", round, len(got), len(want))
		}
		s.reset()
		if len(s.slots) != minSlots {
			t.Fatalf("round %d: %d slots after reset, want %d", round, len(s.slots), minSlots)
		}
		for i, e := range s.slots[:cap(s.slots)] {
			if e != 0 {
				t.Fatalf("round %d: slot %d of %d left at %d after reset", round, i, cap(s.slots), e)
			}
		}
	}
}

// The packed-key sort of the token set orders tokens exactly as a string
// sort does, also for tokens that share long prefixes, are prefixes of one
// another, or hold NUL bytes, and past 65536 tokens.
func TestTokenSetSorted(t *testing.T) {
	for _, n := range []int{0, 1, 500, 70000} {
		s := newTokenSet()
		var want []string
		r := rand.New(rand.NewPCG(uint64(n), 7))
		for range n {
			var b []byte
			switch r.IntN(4) {
			case 0:
				b = []byte("rcvd:")
			case 1:
				b = []byte("url:www.")
			}
			for range r.IntN(9) {
				b = append(b, "ab\x00z"[r.IntN(4)])
			}
			if s.add(b) {
				want = append(want, string(b))
			}
		}
		slices.Sort(want)
		if got := s.sorted(); !slices.Equal(got, want) {
			t.Errorf("%d tokens: sorted differs from a string sort", n)
		}
		s.reset()
		if s.len() != 0 || len(s.sorted()) != 0 {
			t.Errorf("reset left %d tokens", s.len())
		}
	}
}

// The HTML scanner keeps visible text with its character references
// decoded, tokenises link targets in any quoting, and takes broken markup
// without losing the text around it.
func TestTokenizeHTMLScanner(t *testing.T) {
	body := `<HTML><Style>p { color: red }</STYLE><SCRIPT>document.write("<b>scripted</b>")</SCRIPT>
<p>caf&eacute; &#233;clair &#x65;xtra &amp;&nbsp;more &bogus; 3 < 4 and 5 <6
<A HREF=http://bare.host.example/x>one</a> <img src='https://single.host.example/p.gif'>
<a title="x > y" href = "http://spaced.host.example">two</a><br/>joined<b></b>word
<!-- comment with <a href="http://hidden.example">tags</a> --><!DOCTYPE x><?php x ?>after
<a href="http://unterminated.example`
	raw := "Content-Type: text/html\n\n" + body
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"café", "éclair", "extra", "more", "and", "url:bare.host.example",
		"url:single.host.example", "url:spaced.host.example", "url:unterminated.example", "joinedword", "after", "two",
		"bogus"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, a := range []string{"scripted", "color", "red", "url:hidden.example", "comment", "php", "eacute"} {
		if slices.Contains(m.Tokens, a) {
			t.Errorf("unexpected %q", a)
		}
	}
}

// BenchmarkTokenize tokenises the hand-made fixtures (plain, HTML, MIME,
// charsets) in turn. Reported per message.
func BenchmarkTokenize(b *testing.B) {
	names, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "*", "*", "*.eml"))
	more, _ := filepath.Glob(filepath.Join("..", "testdata", "classifier", "*.eml"))
	var msgs [][]byte
	size := 0
	for _, n := range append(names, more...) {
		msgs = append(msgs, readFixture(b, strings.TrimPrefix(n, filepath.Join("..", "testdata", "classifier")+"/")))
		size += len(msgs[len(msgs)-1])
	}
	tk := NewTokenizer(TokenizerOptions{})
	b.SetBytes(int64(size / len(msgs)))
	for i := 0; b.Loop(); i++ {
		tk.TokenizeBytes(msgs[i%len(msgs)])
	}
}

// Tokens made of header values (content type, transfer encoding, charset)
// are bounded like words: a value of kilobytes is one "long" token.
func TestMIMEValueTokensBounded(t *testing.T) {
	long := strings.Repeat("z", 5000)
	raw := "Content-Type: multipart/mixed; boundary=b\n\n" +
		"--b\nContent-Type: text/plain; charset=\"" + long + "\"\nContent-Transfer-Encoding: " + long + "\n\nhello\n" +
		"--b\nContent-Type: application/" + long + "\n\nx\n--b--\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, tok := range m.Tokens {
		if len(tok) > maxTokenLen+len("charset:") {
			t.Errorf("%d-byte token %.24q...", len(tok), tok)
		}
	}
	for _, want := range []string{"ctype:long", "cte:long", "charset:long", "hello"} {
		if !slices.Contains(m.Tokens, want) {
			t.Errorf("no token %q in %q", want, m.Tokens)
		}
	}
}

// A header block of hundreds of thousands of tiny fields costs memory in
// proportion to what is kept, not to the field count: past
// maxHeaderFields the fields are skipped (and the message marked
// truncated), and the body is still found and read.
func TestHeaderFieldCountBounded(t *testing.T) {
	raw := []byte(strings.Repeat("a:\n", (256<<10)/3) + "Subject: late\n\nbodyword\n")
	tk := NewTokenizer(TokenizerOptions{})
	tk.TokenizeBytes(raw) // warm the pooled buffers
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := tk.TokenizeBytes(raw)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 8*uint64(len(raw)) {
		t.Errorf("%d-byte message allocated %d bytes", len(raw), got)
	}
	if !m.Truncated || !slices.Contains(m.Tokens, "bodyword") {
		t.Errorf("truncated %v, tokens %q", m.Truncated, m.Tokens)
	}
	// The MIME fields after a thousand junk ones still say how to read
	// the body.
	hidden := strings.Repeat("X-A: b\n", maxHeaderFields+5) + "MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" +
		"aGlkZGVuYmFzZTY0d29yZCBoZXJl\n"
	m = tk.TokenizeBytes([]byte(hidden))
	if !m.Truncated || !slices.Contains(m.Tokens, "hiddenbase64word") {
		t.Errorf("MIME fields past the bound: truncated %v, tokens %q", m.Truncated, m.Tokens)
	}
	// Up to the bound, every field counts.
	m = tk.TokenizeBytes([]byte(strings.Repeat("X-A: b\n", maxHeaderFields-1) + "Subject: kept\n\nx\n"))
	if m.Truncated || !slices.Contains(m.Tokens, "subj:kept") {
		t.Errorf("at the bound: truncated %v, tokens %q", m.Truncated, m.Tokens)
	}
}

// A charset the decoders would turn into nothing (ISO-2022-KR and -CN map
// to WHATWG's "replacement" encoding, one U+FFFD for the whole text) or
// do not know still yields the words that can be read, in a body and in
// encoded words; an unknown charset in one encoded word does not leave
// the others undecoded.
func TestCharsetBestEffort(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"Content-Type: text/plain; charset=iso-2022-kr\n\nbuy cheap pills now\n", "cheap"},
		{"Content-Type: text/plain; charset=ISO-2022-CN\n\nbuy cheap pills now\n", "cheap"},
		{"Subject: =?iso-2022-kr?Q?cheap_pills?=\n\nhello\n", "subj:cheap"},
		{"Subject: =?x-unknown?B?Y2hlYXAgcGlsbHM=?=\n\nhello\n", "subj:cheap"},
		{"Subject: =?utf-8?Q?caf=C3=A9?= and =?x-unknown?Q?pills?=\n\nhello\n", "subj:café"},
		{"Subject: =?koi8-r?B?8NLJ18XU?=\n\nhello\n", "subj:привет"},
	}
	for _, tc := range cases {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(tc.raw))
		if !slices.Contains(m.Tokens, tc.want) {
			t.Errorf("%q: missing %q; got %q", tc.raw, tc.want, m.Tokens)
		}
	}
}

// Encoded words cost in proportion to their size: each used to set up a
// streaming decoder and a 32 KB copy buffer, 2,500 times the message,
// and then a 512-byte read buffer, 40 times; now about 8 times.
func TestEncodedWordsAllocation(t *testing.T) {
	raw := []byte("Subject: " + strings.Repeat("=?koi8-r?q?ab?= ", (32<<10)/16) + "\n\nbody\n")
	tk := NewTokenizer(TokenizerOptions{})
	tk.TokenizeBytes(raw)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tk.TokenizeBytes(raw)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16*uint64(len(raw)) {
		t.Errorf("%d-byte message allocated %d bytes (%dx)", len(raw), got, got/uint64(len(raw)))
	}
}

// A part whose header go-message cannot parse hides neither its own
// words nor the parts after it. A multipart body that only lacks its
// closing boundary (a message cut short) is read part by part, not again
// as text.
func TestBrokenPartHeaderKeepsParts(t *testing.T) {
	for name, bad := range map[string]string{
		"no colon":        "Content-Type: text/plain\nthis line has no colon\n\nsecondpartword\n",
		"no header":       "secondpartword and more text\n",
		"8-bit field key": "Contént-Type: text/plain\n\nsecondpartword\n",
	} {
		raw := "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n" +
			"--b\nContent-Type: text/plain\n\nfirstpartword\n" +
			"--b\n" + bad +
			"--b\nContent-Type: text/html\n\n<p>thirdpartword <a href=\"http://spam-host.example/\">x</a>\n" +
			"--b--\n"
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
		for _, w := range []string{"firstpartword", "secondpartword", "thirdpartword", "url:spam-host.example", "mime:broken"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("%s: missing %q; got %q", name, w, m.Tokens)
			}
		}
	}
	cut := "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\nX-Note: partheaderword\n\nfirstpartword\n" +
		"--b\nContent-Type: text/plain\n\nsecondpartword, and then the message ends\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(cut))
	if !slices.Contains(m.Tokens, "secondpartword") || slices.Contains(m.Tokens, "partheaderword") {
		t.Errorf("cut short: %q", m.Tokens)
	}
}

// A message starting with an mbox separator loses that line; one starting
// with a From field written with a blank before the colon keeps it, in
// its tokens and its digest.
func TestMboxFromLineOrFromField(t *testing.T) {
	tk := NewTokenizer(TokenizerOptions{})
	sep := tk.TokenizeBytes([]byte("From alice@example.org Mon Jan  1 10:00:00 2024\nSubject: hi\n\nbody\n"))
	if slices.Contains(sep.Tokens, "from:alice@example.org") || !slices.Contains(sep.Tokens, "subj:hi") {
		t.Errorf("separator line: %q", sep.Tokens)
	}
	field := "From : alice@example.org\nSubject: hi\n\nbody\n"
	m := tk.TokenizeBytes([]byte(field))
	if !slices.ContainsFunc(m.Tokens, func(s string) bool { return strings.HasPrefix(s, "from:") }) {
		t.Errorf("From field lost: %q", m.Tokens)
	}
	if MessageDigest([]byte(field)) == MessageDigest([]byte("Subject: hi\n\nbody\n")) {
		t.Error("the From field is not part of the digest")
	}
}

// The cap on a message's bytes counts the message, not the mbox From_
// line before it: in a store imported from bogofilter, the command
// classifies a message file with its From_ line (bogofilter reads it), and
// the daemon the same message without one. A message just under the cap
// is read whole by both.
func TestMaxBytesLeavesOutTheFromLine(t *testing.T) {
	const limit = 400
	from := "From alice@example.org Mon Jan  1 10:00:00 2024\n"
	head := "Subject: capped\n\n"
	body := strings.Repeat("filler ", (limit-len(head)-len("x\nlastword\n"))/7)
	msg := head + body + strings.Repeat("x", limit-len(head)-len(body)-len("\nlastword\n")) + "\nlastword\n"
	if len(msg) != limit {
		t.Fatalf("message of %d bytes, want %d", len(msg), limit)
	}
	for _, d := range []Dialect{DialectSluice, DialectBogofilter} {
		tk := NewTokenizer(TokenizerOptions{MaxBytes: limit, Dialect: d})
		daemon := tk.TokenizeBytes([]byte(msg))
		file := tk.TokenizeBytes([]byte(from + msg))
		if daemon.Truncated || !slices.Contains(daemon.Tokens, "lastword") {
			t.Fatalf("%s: the message alone: truncated %v, tokens %q", d, daemon.Truncated, daemon.Tokens)
		}
		if file.Truncated || !slices.Contains(file.Tokens, "lastword") {
			t.Errorf("%s: with its From_ line: truncated %v, tokens %q", d, file.Truncated, file.Tokens)
		}
		over := tk.TokenizeBytes([]byte(from + msg + "overword\n"))
		if !over.Truncated || slices.Contains(over.Tokens, "overword") {
			t.Errorf("%s: a message over the cap, with its From_ line: truncated %v, tokens %q", d, over.Truncated, over.Tokens)
		}
	}
}

// Encoded words in base64 that mail clients decode although
// base64.StdEncoding refuses them: padding left out, a blank where the
// word was folded, a stray byte after the data. Before, each stayed
// undecoded and yielded its charset name and base64 text as words.
func TestEncodedWordsLenientBase64(t *testing.T) {
	cases := []struct{ subject, want string }{
		{"=?utf-8?b?Y2hlYXAgcGlsbHM?=", "subj:cheap pills"},                    // "cheap pills", padding left out
		{"=?utf-8?B?Y2hlYXAgcGlsbA?=", "subj:cheap pill"},                      // two padding bytes left out
		{"=?utf-8?b?Y2hlYXAg cGlsbHM=?=", "subj:cheap pills"},                  // a blank inside
		{"=?koi8-r?B?8NLJ18XU?= and =?utf-8?b?0L/QuNC70Lg?=", "subj:and пили"}, // a valid and an unpadded word
		{"=?utf-8?b?Y2hlYXAgcGlsbHM=.?=", "subj:cheap pills"},                  // junk after the padding
	}
	tk := NewTokenizer(TokenizerOptions{})
	for _, tc := range cases {
		m := tk.TokenizeBytes([]byte("Subject: " + tc.subject + "\n\nhello\n"))
		if !slices.Contains(m.Tokens, tc.want) {
			t.Errorf("%q: missing %q; got %q", tc.subject, tc.want, m.Tokens)
		}
		for _, tok := range m.Tokens {
			if strings.Contains(tok, "utf-8") || strings.Contains(tok, "y2hl") {
				t.Errorf("%q: undecoded word %q", tc.subject, tok)
			}
		}
	}
}

// An encoded word's charset may carry a language (RFC 2231 section 5:
// "=?koi8-r*ru?B?...?="), which is no part of the charset's name.
func TestEncodedWordLanguage(t *testing.T) {
	for _, subject := range []string{"=?koi8-r*ru?B?8NLJ18XU?=", "=?KOI8-R*RU?Q?=F0=D2=C9=D7=C5=D4?="} {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte("Subject: " + subject + "\n\nhello\n"))
		if !slices.Contains(m.Tokens, "subj:привет") {
			t.Errorf("%q: missing %q; got %q", subject, "subj:привет", m.Tokens)
		}
	}
}

// A charset name in single quotes, or with blanks inside its double
// quotes, names the charset all the same (as mail clients read it).
func TestCharsetNameQuoted(t *testing.T) {
	for _, ct := range []string{`text/plain; charset='koi8-r'`, `text/plain; charset=" KOI8-R "`, `text/plain; charset="'koi8-r'"`} {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte("Content-Type: " + ct + "\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n"))
		for _, w := range []string{"привет", "charset:koi8-r"} {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("%q: missing %q; got %q", ct, w, m.Tokens)
			}
		}
	}
}

// UTF-7 (RFC 2152), which golang.org/x/text does not know, is decoded
// as mail clients decode it; before, its base64 runs were read as words
// ("caf+AOk-" gave "caf" and "aok").
func TestUTF7(t *testing.T) {
	cases := []struct{ raw, want string }{
		{"Content-Type: text/plain; charset=utf-7\n\nHi Mom -+Jjo--! caf+AOk- na+AO8-ve 1+-1\n", "café naïve"},
		{"Content-Type: text/plain; charset=UNICODE-1-1-UTF-7\n\ncaf+AOk-\n", "café"},
		{"Content-Type: text/plain; charset=utf-7\n\n+ZeVnLIqe-\n", "日本"},   // three characters in one run
		{"Content-Type: text/plain; charset=utf-7\n\n+2D3eAA- +AOk\n", "é"}, // a surrogate pair, a run ended by the line end
		{"Subject: =?utf-7?Q?caf+AOk-?=\n\nhello\n", "subj:café"},
	}
	for _, tc := range cases {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(tc.raw))
		if !slices.Contains(m.Tokens, tc.want) {
			t.Errorf("%q: missing %q; got %q", tc.raw, tc.want, m.Tokens)
		}
		for _, tok := range m.Tokens {
			if strings.Contains(tok, "aok") || strings.Contains(tok, "jjo") {
				t.Errorf("%q: base64 run read as word %q", tc.raw, tok)
			}
		}
	}
	// Every input decodes to valid UTF-8, without error.
	for _, in := range []string{"+", "+-", "+A", "+AO", "+2D0-", "+3gA-", "a+/v8-b", "+AOkA6QDp", "\xff+AOk-"} {
		if out := decodeUTF7([]byte(in)); !utf8.Valid(out) {
			t.Errorf("decodeUTF7(%q) = %q, not UTF-8", in, out)
		}
	}
}

// A file name in RFC 2231 form in a charset other than UTF-8 or ASCII,
// whole or in continuations: mime.ParseMediaType drops the encoded parts
// of such a value, so only ".zip" was left of "café.zip".
func TestRFC2231FileNameCharset(t *testing.T) {
	cases := []struct{ head, want string }{
		{"Content-Type: application/octet-stream; name*=iso-8859-1'fr'caf%E9.zip\n", "name:café.zip"},
		{"Content-Type: application/octet-stream; name*0*=ISO-8859-1''caf%E9; name*1=.zip\n", "name:café.zip"},
		{"Content-Type: application/octet-stream\nContent-Disposition: attachment;\n filename*0*=koi8-r''%F0%D2%C9; filename*1*=%D7%C5%D4;\n filename*2=\".exe\"\n", "name:привет.exe"},
		{"Content-Type: application/octet-stream; name*=utf-8''caf%C3%A9.zip\n", "name:café.zip"},
	}
	for _, tc := range cases {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(tc.head + "\nxx\n"))
		if !slices.Contains(m.Tokens, tc.want) {
			t.Errorf("%q: missing %q; got %q", tc.head, tc.want, m.Tokens)
		}
	}
}

// Text labelled ISO-8859-1 is read as windows-1252, as mail clients and
// browsers read it (the WHATWG encoding standard makes the one label the
// other): the bytes 0x80 to 0x9F are letters and punctuation written by
// Windows mailers, not the C1 controls of ISO-8859-1, which split words.
func TestLatin1IsWindows1252(t *testing.T) {
	cases := []struct{ raw string }{
		{"Content-Type: text/plain; charset=iso-8859-1\n\n\x8akoda \x9cuvre\n"},
		{"Content-Type: text/plain; charset=latin1\nContent-Transfer-Encoding: quoted-printable\n\n=8Akoda =9Cuvre\n"},
		{"Subject: =?iso-8859-1?q?=8Akoda_=9Cuvre?=\n\n\n"},
		{"Subject: =?ISO-8859-1?B?imtvZGEgnHV2cmU=?=\n\n\n"},
	}
	for _, tc := range cases {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(tc.raw))
		prefix := ""
		if strings.HasPrefix(tc.raw, "Subject") {
			prefix = "subj:"
		}
		for _, w := range []string{"škoda", "œuvre"} {
			if !slices.Contains(m.Tokens, prefix+w) {
				t.Errorf("%q: missing %q; got %q", tc.raw, prefix+w, m.Tokens)
			}
		}
	}
}

// One encoded word labelled UTF-8 whose bytes are not (a mailer's
// Latin-1 under the wrong label) is read as windows-1252 by itself; it
// no longer turns the valid UTF-8 of the other words into mojibake
// ("café" was "cafã").
func TestEncodedWordInvalidUTF8(t *testing.T) {
	for _, subject := range []string{
		"=?utf-8?q?caf=C3=A9_?= =?utf-8?q?d=E9j=E0?=",
		"=?utf-8?q?caf=C3=A9_d=E9j=E0?=",
		"café =?utf-8?q?d=E9j=E0?=",
	} {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte("Subject: " + subject + "\n\nhello\n"))
		if !slices.Contains(m.Tokens, "subj:café déjà") {
			t.Errorf("%q: missing %q; got %q", subject, "subj:café déjà", m.Tokens)
		}
	}
}

// A numeric character reference to a C1 control (128 to 159) is the
// windows-1252 character of that byte, as HTML's numeric character
// reference end state makes it: "&#138;koda" is "Škoda".
func TestHTMLReferenceC1(t *testing.T) {
	raw := "Content-Type: text/html\n\n<p>&#138;koda &#x9C;uvre</p>\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"škoda", "œuvre"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q; got %q", w, m.Tokens)
		}
	}
}

// A raw 8-bit field value, one legacy charset throughout, is read as
// windows-1252 as a whole, even where two of its bytes happen to form a
// UTF-8 sequence ("\xda\xb0" is U+06B0).
func TestRawHeaderLatin1Whole(t *testing.T) {
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte("Subject: caf\xe9 \xe0\xda\xb0\xfd\n\nhello\n"))
	for _, w := range []string{"subj:café àú", "subj:ý"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q; got %q", w, m.Tokens)
		}
	}
}

// indexURLByByte is indexURL as it was first written, looking at every
// byte: the reference the faster indexURL must agree with.
func indexURLByByte(s []byte) int {
	for i := 0; i+4 <= len(s); i++ {
		c := s[i] | 0x20
		if c != 'h' && c != 'w' {
			continue
		}
		if c == 'h' && i+7 <= len(s) && s[i+1]|0x20 == 't' && s[i+2]|0x20 == 't' && s[i+3]|0x20 == 'p' {
			r := s[i+4:]
			if r[0] == ':' && r[1] == '/' && r[2] == '/' || len(r) >= 4 && (r[0]|0x20) == 's' && r[1] == ':' && r[2] == '/' && r[3] == '/' {
				return i
			}
		}
		if c == 'w' && s[i+1]|0x20 == 'w' && s[i+2]|0x20 == 'w' && s[i+3] == '.' && (i == 0 || !isHostByte(s[i-1])) {
			return i
		}
	}
	return -1
}

// urlHostsByByte is the hosts eachURLHost gives, found as urls first
// found them: indexURL (by byte) searched afresh in the rest of the text
// after each host.
func urlHostsByByte(s []byte) []string {
	var hosts []string
	for {
		j := indexURLByByte(s)
		if j < 0 {
			return hosts
		}
		s = s[j:]
		if k := bytes.Index(s[:min(len(s), 8)], []byte("://")); k >= 0 {
			s = s[k+3:]
			// Userinfo: the host starts after the last "@" of the
			// authority, which may hold non-ASCII bytes.
			for k := 0; k < len(s) && (isHostByte(s[k]) || s[k] >= 0x80 || strings.IndexByte("@:%_~!$&'()*+,;=", s[k]) >= 0); k++ {
				if s[k] == '@' {
					s, k = s[k+1:], -1
				}
			}
		}
		end := 0
		for end < len(s) && isHostByte(s[end]) {
			end++
		}
		hosts = append(hosts, string(s[:end]))
		if len(s) == 0 {
			return hosts
		}
		s = s[max(end, 1):]
	}
}

// indexURL finds the same first URL as a scan of every byte, on strings
// made of the bytes URLs are recognised by (in both cases) and a few
// others, dense enough that most hold near-misses and several matches.
// And eachURLHost, which keeps where the next "http://" is between URLs
// rather than search the rest of the text for it again after each (in
// time quadratic in the text), finds the same hosts as that search.
func TestIndexURLMatchesByteScan(t *testing.T) {
	const alphabet = "hHtTpPsSwW:/.x-@ \xc3"
	r := rand.New(rand.NewPCG(7, 8))
	var b []byte
	for n := range 300000 {
		b = b[:0]
		for range r.IntN(24) {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		for range n % 4 {
			// Plant matches, so that they are not rare and some are
			// next to each other.
			k := r.IntN(len(b) + 1)
			b = append(b[:k], append([]byte([]string{"http://", "HTTPS://", "www.", "WwW.", "www.a.b "}[r.IntN(5)]), b[k:]...)...)
		}
		if got, want := indexURL(b), indexURLByByte(b); got != want {
			t.Fatalf("indexURL(%q) = %d, want %d", b, got, want)
		}
		var hosts []string
		eachURLHost(b, true, func(h []byte) { hosts = append(hosts, string(h)) })
		if want := urlHostsByByte(b); !slices.Equal(hosts, want) {
			t.Fatalf("hosts of %q: %q, want %q", b, hosts, want)
		}
	}
	for _, s := range []string{"", "www.", "xwww.", "-www.x", "http://", "https://", "http:/", "hxxp://www.a", "a https://b http://c", "www.http://", "-www.https://", "wwww.http://"} {
		if got, want := indexURL([]byte(s)), indexURLByByte([]byte(s)); got != want {
			t.Errorf("indexURL(%q) = %d, want %d", s, got, want)
		}
	}
}
