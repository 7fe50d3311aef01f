package classifier

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// hostileSize is the size of the messages of BenchmarkTokenizeHostile:
// the default MaxBytes, where a cost that grows faster than the input
// shows most.
const hostileSize = DefaultMaxBytes

// plainWords returns about size bytes of text: words of 2 to 10 letters,
// sentences, lines of about 70 bytes.
func plainWords(size int) string {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for b.Len() < size {
		for range 2 + r.IntN(9) {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		if r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// repeatTo repeats s to about size bytes.
func repeatTo(s string, size int) string { return strings.Repeat(s, max(size/len(s), 1)) }

// hostileMessages are messages built to cost the tokenizer more than
// their size says, each next to "normal", plain text of the same size.
// A case stays here once fixed, so that the benchmark shows its cost
// against the normal message's.
func hostileMessages() []struct{ name, raw string } {
	head := "From: a@example.com\nTo: b@example.net\nSubject: hello there\nMessage-ID: <x@example.com>\n"
	multipart := head + "Content-Type: multipart/mixed; boundary=b\n\n"
	return []struct{ name, raw string }{
		{"normal", head + "\n" + plainWords(hostileSize)},
		// A part header of 350,000 tiny fields: go-message parses
		// (and allocates for) every one.
		{"part-header-fields", multipart + "--b\n" + repeatTo("a:\n", hostileSize) + "\nx\n--b--\n"},
		// Multiparts nested MaxDepth deep, each with a broken part, so
		// that each is read again as text, the text at the bottom.
		{"nested-broken", func() string {
			var b strings.Builder
			b.WriteString(head)
			for i := range DefaultMaxDepth {
				fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\nno colon\n\nx\n--b%d\n", i, i, i)
			}
			b.WriteString("Content-Type: text/plain\n\n")
			return b.String() + plainWords(hostileSize-b.Len())
		}()},
		// A subject of 65,000 encoded words.
		{"encoded-words", "Subject: " + repeatTo("=?koi8-r?q?ab?= ", hostileSize) + "\n\nx\n"},
		// Links to hosts in Unicode, each converted to its ASCII form.
		{"unicode-hosts", head + "\n" + repeatTo("see http://bücher.example/ and http://пример.рф/x\n", hostileSize)},
		// One "host" of a megabyte of letters, too long to convert.
		{"unicode-host-long", head + "\nhttp://" + repeatTo("ü", hostileSize) + "\n"},
		// Quoted-printable multiparts nested MaxDepth deep, each hiding
		// the delimiter lines of the next: each level is decoded
		// before it is split (see encodedMultipart).
		{"encoded-nested", func() string {
			level := "Content-Type: text/plain\n\n" + plainWords(hostileSize*9/10)
			for i := range DefaultMaxDepth - 1 {
				level = encodedMultipart("quoted-printable", fmt.Sprint("b", i), level)
				level = level[strings.Index(level, "Content-Type:"):]
			}
			return head + level
		}()},
		// Words not in NFKC, each normalised.
		{"unnormalized-words", head + "\n" + repeatTo("\u00aa \ufb01 ", hostileSize)},
		// A Content-Type of RFC 2231 parameters, each a map in
		// mime.ParseMediaType.
		{"media-type-params", func() string {
			var b strings.Builder
			b.WriteString(head + "Content-Type: text/plain")
			for i := 0; b.Len() < hostileSize; i++ {
				fmt.Fprintf(&b, ";\n p%d*0=x", i)
			}
			return b.String() + "\n\nx\n"
		}()},
		// Multiparts nested past MaxDepth: each level copies the part
		// it holds.
		{"nested-deep", func() string {
			var b strings.Builder
			b.WriteString(head)
			for i := 0; b.Len() < hostileSize; i++ {
				fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
			}
			return b.String()
		}()},
	}
}

// BenchmarkTokenizeHostile tokenises messages built to be slow (see
// hostileMessages); compare each with "normal":
//
//	go test ./classifier -run '^$' -bench TokenizeHostile -benchmem -benchtime 10x
func BenchmarkTokenizeHostile(b *testing.B) {
	for _, m := range hostileMessages() {
		raw := []byte(m.raw)
		b.Run(m.name, func(b *testing.B) {
			tk := NewTokenizer(TokenizerOptions{MaxBytes: len(raw)})
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				tk.TokenizeBytes(raw)
			}
		})
	}
}

// countFields returns the number of header fields (lines that do not
// start with a blank, up to an empty line) after each line "--b" of body.
func countFields(body []byte) int {
	n := 0
	for _, part := range bytes.Split(body, []byte("--b\n"))[1:] {
		hdr, _, _ := bytes.Cut(part, []byte("\n\n"))
		for _, l := range bytes.Split(hdr, []byte("\n")) {
			if len(l) > 0 && l[0] != ' ' && l[0] != '\t' {
				n++
			}
		}
	}
	return n
}

// The part headers of a message together hand go-message at most
// maxHeaderFields fields, plus a few MIME fields per part past them:
// each parsed field costs some 500 bytes, and a megabyte of tiny fields
// cost 180 MB and a quarter of a second. The MIME fields after the junk
// still say how to read the part.
func TestPartHeaderFieldsBounded(t *testing.T) {
	junk := strings.Repeat("a:\n", 300_000)
	raw := "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n" +
		"--b\n" + junk + "X-Folded: one\n two\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" +
		"aGlkZGVuYmFzZTY0d29yZCBoZXJl\n--b--\n"
	tk := NewTokenizer(TokenizerOptions{})
	m := tk.TokenizeBytes([]byte(raw))
	if !m.Truncated || !slices.Contains(m.Tokens, "hiddenbase64word") {
		t.Errorf("truncated %v, tokens %q", m.Truncated, m.Tokens)
	}
	// About 3 allocations per field parsed; 1,000 fields and the rest of
	// the message need a few thousand, 300,000 fields a million.
	if a := testing.AllocsPerRun(3, func() { tk.TokenizeBytes([]byte(raw)) }); a > 10_000 {
		t.Errorf("%.0f allocations", a)
	}

	// The budget is for the whole message: many parts of many fields
	// each are cut too, and each part keeps its first MIME fields.
	var b strings.Builder
	for range 200 {
		b.WriteString("--b\n" + strings.Repeat("x-a: b\n", 20) + "Content-Type: text/plain\n x\n\nbody\n")
	}
	body := []byte(b.String() + "--b--\n")
	w := newWalker(TokenizerOptions{}.withDefaults())
	out := w.capPartHeaders(body, "b")
	if got := countFields(out); got != maxHeaderFields+(200-maxHeaderFields/21) {
		t.Errorf("%d fields kept of %d", got, countFields(body))
	}
	if got := bytes.Count(out, []byte("Content-Type: text/plain\n x\n\nbody\n")); got != 200 {
		t.Errorf("%d parts kept their Content-Type", got)
	}
	if !w.truncated {
		t.Error("not marked truncated")
	}

	// Up to the budget, a body is left as it is (not even copied), with
	// CRLF or LF line ends, blanks after the boundary, and lines that
	// only look like boundaries.
	body = []byte("preamble\r\n--b \r\n" + strings.Repeat("X-A: b\r\n", maxHeaderFields-2) + "\r\n--bx\r\n--b\nA: b\n")
	w = newWalker(TokenizerOptions{}.withDefaults())
	if out := w.capPartHeaders(body, "b"); &out[0] != &body[0] || len(out) != len(body) || w.truncated {
		t.Errorf("body changed at the bound: %d bytes of %d, truncated %v", len(out), len(body), w.truncated)
	}
	if out := w.capPartHeaders([]byte("--b\nA: b\nB: c\n\n"), "b"); countFields(out) != 1 {
		t.Errorf("past the bound: %q", out)
	}
}

// Parts lost to a broken header count against MaxParts for the whole
// message, not per multipart: otherwise 256 multiparts of 256 broken
// parts each would all be read.
func TestBrokenPartsBoundedPerMessage(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=top\n\n")
	for i := range 20 {
		fmt.Fprintf(&b, "--top\nContent-Type: multipart/mixed; boundary=in%d\n\n", i)
		for range 50 {
			fmt.Fprintf(&b, "--in%d\nno colon here\n\nx\n", i)
		}
		fmt.Fprintf(&b, "--in%d--\n", i)
	}
	b.WriteString("--top--\n")
	w := newWalker(TokenizerOptions{MaxParts: 100}.withDefaults())
	w.message([]byte(b.String()), 0, true)
	if w.broken > 100 {
		t.Errorf("%d broken parts read, MaxParts 100", w.broken)
	}
}

// Broken multiparts nested in broken multiparts are read again as text
// at each level; all of it together is bounded by MaxBytes, which one
// level never reaches.
func TestRereadBounded(t *testing.T) {
	raw := "Subject: x\n"
	for i := range 6 {
		raw += fmt.Sprintf("Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\nno colon\n\nx\n--b%d\n", i, i, i)
	}
	raw += "Content-Type: text/plain\n\n" + strings.Repeat("deepword and more words\n", 1000)
	tk := NewTokenizer(TokenizerOptions{})
	m := tk.TokenizeBytes([]byte(raw))
	if m.Truncated || !slices.Contains(m.Tokens, "deepword") || !slices.Contains(m.Tokens, "mime:broken") {
		t.Errorf("within MaxBytes: truncated %v, tokens %q", m.Truncated, m.Tokens)
	}
	// With MaxBytes just above the message, the levels read again
	// stop at it instead of reading it six times.
	w := newWalker(TokenizerOptions{MaxBytes: len(raw) + 10}.withDefaults())
	w.message([]byte(raw), 0, true)
	if w.reread > len(raw)+10 || !w.truncated {
		t.Errorf("%d bytes read again (MaxBytes %d), truncated %v", w.reread, len(raw)+10, w.truncated)
	}
}

// Each level of nested multiparts copies its part once, not into a
// buffer grown by doubling from nothing, which allocated four times the
// part at every level; parts at one depth share the buffer.
func TestNestedPartsMemory(t *testing.T) {
	// Few distinct words: the token set stays small, so the copies
	// are most of what is allocated.
	text := repeatTo("the quick brown fox jumps over the lazy dog\n", 512<<10)
	raw := "Subject: x\n"
	for i := range DefaultMaxDepth {
		raw += fmt.Sprintf("Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
	}
	raw += "Content-Type: text/plain\n\n" + text
	// Three big parts side by side share one buffer.
	wide := "Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n" +
		strings.Repeat("--b\nContent-Type: text/plain\n\n"+text[:len(text)/3]+"\n", 3) + "--b--\n"
	for _, tc := range []struct {
		name   string
		raw    string
		copies int // parts of about the message's size copied
	}{{"nested", raw, DefaultMaxDepth}, {"wide", wide, 1}} {
		// Warm the walker's buffers and reset it, as the pool does
		// between messages. The walker is used directly: under the race
		// detector the pool drops walkers at random, and a new one
		// grows every buffer from nothing.
		w := newWalker(TokenizerOptions{}.withDefaults())
		w.message([]byte(tc.raw), 0, true)
		w.reset()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		w.message([]byte(tc.raw), 0, true)
		toks := w.set.sorted()
		runtime.ReadMemStats(&after)
		// Besides the copies: the buffers outgrown on the way to them,
		// the conversion of the message to bytes, the token set.
		// Growing by doubling, nested took 33 times its size.
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64((tc.copies+6)*len(tc.raw)); got > limit {
			t.Errorf("%s: %d-byte message allocated %d bytes, want at most %d", tc.name, len(tc.raw), got, limit)
		}
		if !slices.Contains(toks, "lazy") {
			t.Errorf("%s: %d tokens", tc.name, len(toks))
		}
	}
}

// TestTokenCapKeepsLinks checks that filler text that fills the token cap
// does not hide what comes after it: a 96 KB text part of 12,000
// distinct made-up words, then an HTML part with the spammer's link. The
// cap stops the words, but the link's hosts and the later part's type
// still count, up to a tenth of the cap more, and no further.
func TestTokenCapKeepsLinks(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@b.example\nSubject: hi\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/alternative; boundary=BB\n\n--BB\nContent-Type: text/plain\n\n")
	for i := range 12000 {
		fmt.Fprintf(&b, "w%dq ", i*7919%100003)
		if i%12 == 0 {
			b.WriteString("\n")
		}
	}
	b.WriteString("\n--BB\nContent-Type: text/html; charset=iso-8859-1\n\n" +
		"<p>more filler words</p><a href=\"http://spam-site.example/buy\">buy</a>\n")
	// Then more hosts than the reserve holds.
	for i := range 3000 {
		fmt.Fprintf(&b, "<img src=\"http://h%d.example/x.gif\">\n", i)
	}
	b.WriteString("--BB--\n")
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(b.String()))
	if !m.Truncated {
		t.Error("not truncated")
	}
	for _, w := range []string{"url:spam-site.example", "ctype:text/html", "charset:iso-8859-1", "url:h0.example"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q after the cap", w)
		}
	}
	for _, w := range []string{"filler", "more filler", "buy"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("%q: a word past the cap was taken", w)
		}
	}
	if want := DefaultMaxTokens + DefaultMaxTokens/10; len(m.Tokens) != want {
		t.Errorf("%d tokens, want the cap and its reserve, %d", len(m.Tokens), want)
	}
}

// BenchmarkTokenizeHostileBogo is BenchmarkTokenizeHostile for the
// bogofilter dialect, whose header text is also searched for VERP
// addresses at every word (see verpLen); compare each with "normal":
//
//	go test ./classifier -run '^$' -bench TokenizeHostileBogo -benchmem -benchtime 10x
func BenchmarkTokenizeHostileBogo(b *testing.B) {
	head := "From: a@example.com\nTo: b@example.net\nSubject: hello there\n"
	for _, m := range []struct{ name, raw string }{
		{"normal", head + "\n" + plainWords(hostileSize)},
		// A field of one-letter words between '#', each the start of
		// a VERP address that never comes.
		{"verp-hashes", head + "X-Junk: " + repeatTo("a#", hostileSize) + "\n\nx\n"},
		// The same before an '=', a long word and '@': each start
		// within reach of the '=' looks at all of it.
		{"verp-long-after", head + "X-Junk: " + repeatTo(strings.Repeat("a#", 127)+"="+strings.Repeat("b", 4000)+"@c ", hostileSize) + "\n\nx\n"},
		// Dashes and digits, so that every start has an id to check.
		{"verp-ids", head + "X-Junk: " + repeatTo(strings.Repeat("a-1-", 60)+"b=c@d ", hostileSize) + "\n\nx\n"},
	} {
		raw := []byte(m.raw)
		b.Run(m.name, func(b *testing.B) {
			tk := NewTokenizer(TokenizerOptions{MaxBytes: len(raw), Dialect: DialectBogofilter})
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				tk.TokenizeBytes(raw)
			}
		})
	}
}
