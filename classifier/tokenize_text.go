package classifier

import (
	"bytes"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Token length bounds, in bytes. Shorter words are mostly noise ("a", "of");
// longer runs are base64 blobs, hashes or glued-together junk whose exact
// value never repeats, so they only grow the store.
const (
	minTokenLen = 2
	maxTokenLen = 40
)

// headerPrefix returns the prefix of the tokens of a header field, and
// false for fields whose values are not tokenised. A word in a Subject says
// something else than the same word in a body, so the two are kept apart.
// Fields not listed contribute only their name (as "hdr:"): the set of
// fields a mailer writes is a fingerprint of the mailer.
func headerPrefix(name string) (string, bool) {
	switch name {
	case "subject":
		return "subj:", true
	case "from", "sender":
		return "from:", true
	case "reply-to":
		return "rply:", true
	case "to", "cc":
		return "to:", true
	case "return-path":
		return "rtrn:", true
	case "received":
		return "rcvd:", true
	case "message-id":
		return "mid:", true
	case "x-mailer", "user-agent", "x-mimeole":
		return "mua:", true
	case "list-id", "list-unsubscribe":
		return "list:", true
	case "precedence":
		return "prec:", true
	case "x-priority", "x-msmail-priority", "importance":
		return "prio:", true
	case "organization":
		return "org:", true
	}
	return "", false
}

// skipHeader reports whether a field must not be tokenised at all (nor
// counted in the digest): verdicts of spam filters (our own and others',
// which would teach the classifier to agree with itself when a delivered
// message is retrained) and mailbox bookkeeping added after delivery.
func skipHeader(name string) bool {
	switch name {
	case "x-sluice-bayes", "x-bogosity", "status", "x-status", "x-keywords", "x-uid",
		"content-length", "lines", "x-uidl", "delivered-to", "x-original-to":
		return true
	}
	return strings.HasPrefix(name, "x-spam") || strings.HasPrefix(name, "x-sluice")
}

// mailStoreState reports whether a field is state that a mail client or
// IMAP server keeps inside a stored message: Thunderbird's in its mbox
// folders (X-Mozilla-*, X-Account-Key), Evolution's in its (X-Evolution:
// the message's number and flags), Dovecot's and UW-IMAP's in theirs
// (X-IMAPbase, X-IMAP). It changes when the user reads or tags a message,
// or when mail arrives after it, so it is left out of the digest: the
// message must stay the one learned, and the one the daemon saw. It is
// still tokenised. Such fields never reach the daemon, so their tokens do
// not bear on its verdicts; leaving them out of the tokens too changed
// the cross-validated choice of cutoffs on the benchmark corpus, some of
// whose messages carry them (fewer spam caught at no false positive).
func mailStoreState(name string) bool {
	switch name {
	case "x-mozilla-status", "x-mozilla-status2", "x-mozilla-keys", "x-account-key",
		"x-evolution", "x-imapbase", "x-imap":
		return true
	}
	return false
}

// isExtraSkip reports whether a field name (lower-cased) is one of extra,
// the lower-cased TokenizerOptions.SkipFields: a short list, usually empty,
// so a plain loop per field is cheaper than any map.
func isExtraSkip(name []byte, extra []string) bool {
	for _, s := range extra {
		if string(name) == s {
			return true
		}
	}
	return false
}

// headerTokens tokenises the top-level header fields but those left out
// (skipHeader, TokenizerOptions.SkipFields), and adds the tokens of the
// header's shape (see shapeTokens).
func (w *walker) headerTokens(fields []field) {
	for _, f := range fields {
		name := string(f.name)
		if skipHeader(name) || isExtraSkip(f.name, w.opts.SkipFields) {
			continue
		}
		if name == "content-type" || name == "content-transfer-encoding" {
			// MIME fields are tokenised by the entity walk.
			continue
		}
		prefix, ok := headerPrefix(name)
		if !ok {
			if len(f.name) <= maxTokenLen {
				w.buf = append(append(w.buf[:0], "hdr:"...), f.name...)
				w.add(w.buf)
			}
			continue
		}
		v := decodeHeaderValue(f.value)
		if name == "message-id" {
			// The local part is unique to the message and would only
			// grow the store; the domain names the sending system.
			if i := bytes.LastIndexByte(v, '@'); i >= 0 {
				w.words(v[i+1:], prefix)
			}
			continue
		}
		w.words(v, prefix)
		w.urls(v)
	}
	w.shapeTokens(fields)
}

// text tokenises plain text: its words and the hosts of the URLs in it.
func (w *walker) text(s []byte) {
	if w.bogo {
		w.bogoText(s)
		return
	}
	w.words(s, "")
	w.urls(s)
}

// ASCII byte classes for the word scanner.
const (
	classSep  = iota // separates words
	classWord        // part of a word
	classHigh        // first byte of a multi-byte UTF-8 sequence (or junk)
)

// asciiClass is the class of every byte value. It is built once and only
// read.
var asciiClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = classHigh
		case isWordRune(rune(c)):
			t[c] = classWord
		}
	}
	return t
}()

// isWordRune reports whether r can be part of a word. Besides letters and
// digits, a few punctuation marks join words: apostrophes (don't), hyphens
// (e-mail), dots (hosts, numbers), @ (addresses), $ (prices) and _.
// Combining marks belong to the letter before them, spacing ones (Mc)
// too: most vowel signs of the Indic scripts are such, and a word split
// at each ("भारत" as "भ" and "रत") gives fragments that match nothing.
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '\'' || r == '-' || r == '.' || r == '@' || r == '$' || r == '_'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || enclosedLetter(r) != 0
}

// enclosedLetter returns the Latin letter (lower case) that r writes in
// a circle or a square, plain or negative ("ⓥ", "🅵"), 0 for any other
// rune. Unicode files them as symbols, not letters, so a word written in
// them was no word; spam writes subjects and sender names so. Regional
// indicators, which flags are made of, are not among them.
func enclosedLetter(r rune) byte {
	switch {
	case r < 0x24b6:
		return 0
	case r <= 0x24cf: // circled capital letters
		return byte('a' + r - 0x24b6)
	case r <= 0x24e9: // circled small letters
		return byte('a' + r - 0x24d0)
	case r >= 0x1f130 && r <= 0x1f149: // squared capital letters
		return byte('a' + r - 0x1f130)
	case r >= 0x1f150 && r <= 0x1f169: // negative circled capital letters
		return byte('a' + r - 0x1f150)
	case r >= 0x1f170 && r <= 0x1f189: // negative squared capital letters
		return byte('a' + r - 0x1f170)
	}
	return 0
}

// isCJK reports whether r belongs to a CJK script, written without spaces
// between words; such runs are tokenised as overlapping character pairs.
func isCJK(r rune) bool {
	if r < 0x2e80 {
		// Below the CJK radicals block: Latin, Greek, Cyrillic, Arabic ...
		return false
	}
	if r >= 0x3040 && r <= 0x30ff {
		// Hiragana and Katakana blocks, with the prolonged sound mark
		// U+30FC, which Unicode puts in no script of its own.
		return true
	}
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hangul, r)
}

// isUnspaced reports whether r is a letter, digit or combining mark of a
// script of South-East Asia written without spaces between words: Thai,
// Lao, Myanmar, Khmer, Tai Le, New Tai Lue, Tai Tham, Tai Viet (the living
// scripts of line-break class SA, UAX #14). Read as words, the text from
// one space to the next would be one "word", most often longer than
// maxTokenLen and dropped; its runs are tokenised as overlapping pairs of
// clusters instead (see clusterPairs). Tibetan is not among them: its
// tsheg separates syllables as a space would.
func isUnspaced(r rune) bool {
	if r < 0x0e00 {
		// Latin, Greek, Cyrillic, Arabic, Hebrew, the Indic scripts ...
		return false
	}
	switch {
	case r <= 0x0eff: // Thai, Lao
	case r >= 0x1000 && r <= 0x109f: // Myanmar
	case r >= 0x1780 && r <= 0x17ff: // Khmer
	case r >= 0x1950 && r <= 0x19ff: // Tai Le, New Tai Lue, Khmer Symbols
	case r >= 0x1a20 && r <= 0x1aaf: // Tai Tham
	case r >= 0xa9e0 && r <= 0xa9ff: // Myanmar Extended-B
	case r >= 0xaa60 && r <= 0xaadf: // Myanmar Extended-A, Tai Viet
	default:
		return false
	}
	// Punctuation and symbols of these blocks (Thai ฯ and ๚, Khmer ។,
	// Myanmar ။, currency signs) separate, as elsewhere.
	return unicode.IsLetter(r) || unicode.IsDigit(r) || isClusterMark(r)
}

// isClusterMark reports whether r belongs to the cluster of the character
// before it: a combining mark (Mn, Mc: the vowel signs and tone marks of
// these scripts), or Thai or Lao vowel sign AM, which Unicode classes as
// a letter but UAX #29 as a spacing mark.
func isClusterMark(r rune) bool {
	return r == 0x0e33 || r == 0x0eb3 || unicode.In(r, unicode.Mn, unicode.Mc)
}

// isStacker reports whether r writes the consonant after it below the one
// before it: Khmer coeng, Myanmar virama (the stacking one; U+103A asat is
// a visible mark) and Tai Tham sakot. The consonant so written belongs to
// the cluster before it.
func isStacker(r rune) bool {
	return r == 0x17d2 || r == 0x1039 || r == 0x1a60
}

// clusterEnd returns where the cluster whose base character ends at byte
// offset i of s ends: after the marks that follow the base (isClusterMark)
// and the consonants stacked under it (isStacker).
func clusterEnd(s []byte, i int) int {
	for i < len(s) && s[i] >= utf8.RuneSelf {
		r, n := utf8.DecodeRune(s[i:])
		if !isClusterMark(r) {
			break
		}
		i += n
		if isStacker(r) {
			if r2, n2 := utf8.DecodeRune(s[i:]); n2 > 0 && unicode.IsLetter(r2) && isUnspaced(r2) {
				i += n2
			}
		}
	}
	return i
}

// clusterPairs tokenises the run of unspaced text (isUnspaced) that starts
// at byte offset i of s, and returns where it ends. Each cluster, a base
// character with its marks (clusterEnd), forms a pair with the next one,
// the last one of the run stands alone, as CJK characters do (cjkPair):
// with no dictionary of words, pairs of clusters recur where words do, and
// a vowel sign or tone mark is never cut from its consonant. Marks with no
// base before them (at the start of the run) start no token. A pair longer
// than maxTokenLen bytes (a base under a pile of marks) is left out.
func (w *walker) clusterPairs(s []byte, i int, prefix string) int {
	prev, prevEnd := -1, -1
	for i < len(s) {
		r, n := utf8.DecodeRune(s[i:])
		if !isUnspaced(r) {
			break
		}
		if isClusterMark(r) {
			i += n
			continue
		}
		end := clusterEnd(s, i+n)
		if prev >= 0 {
			w.clusterToken(s[prev:end], prefix)
		}
		prev, prevEnd, i = i, end, end
	}
	if prev >= 0 {
		w.clusterToken(s[prev:prevEnd], prefix)
	}
	return i
}

// clusterToken adds tok, one or two clusters, with the prefix.
func (w *walker) clusterToken(tok []byte, prefix string) {
	if len(tok) > maxTokenLen {
		return
	}
	w.buf = append(append(w.buf[:0], prefix...), tok...)
	w.add(w.buf)
}

// words splits s into word tokens with the given prefix. ASCII bytes are
// classified by table; only other bytes are decoded as UTF-8.
func (w *walker) words(s []byte, prefix string) {
	w.prev = w.prev[:0]
	w.pairs = prefix == "" || prefix == "subj:"
	start := -1
	hidden := false // the word holds an invisible character
	for i := 0; i < len(s); {
		switch asciiClass[s[i]] {
		case classWord:
			if start < 0 {
				start = i
			}
			// The rest of an ASCII run of word bytes in a tight loop:
			// most bytes of a message are such.
			i++
			for i < len(s) && asciiClass[s[i]] == classWord {
				i++
			}
			continue
		case classSep:
			if start >= 0 {
				w.endWord(s[start:i], hidden, prefix)
				start, hidden = -1, false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if isInvisible(r) {
			// Shown as nothing: within a word the reader sees the
			// word whole, and it is taken so (see appendVisible).
			hidden = hidden || start >= 0
			i += n
			continue
		}
		cjk := isCJK(r)
		unspaced := !cjk && isUnspaced(r)
		if !cjk && !unspaced && r != utf8.RuneError && isWordRune(r) {
			if start < 0 {
				start = i
			}
			i += n
			continue
		}
		if start >= 0 {
			w.endWord(s[start:i], hidden, prefix)
			start, hidden = -1, false
		}
		if unspaced {
			i = w.clusterPairs(s, i, prefix)
			continue
		}
		if cjk {
			w.cjkPair(s, i, n, prefix)
		}
		i += n
	}
	if start >= 0 {
		w.endWord(s[start:], hidden, prefix)
	}
}

// endWord adds a word that words found, without its invisible characters
// if hidden says it has some.
func (w *walker) endWord(word []byte, hidden bool, prefix string) {
	if hidden {
		w.visBuf = appendVisible(w.visBuf[:0], word)
		word = w.visBuf
	}
	w.word(word, prefix)
}

// hasEnclosedLetter reports whether word holds an enclosed letter (see
// enclosedLetter).
func hasEnclosedLetter(word []byte) bool {
	for _, r := range string(word) {
		if r >= 0x24b6 && enclosedLetter(r) != 0 {
			return true
		}
	}
	return false
}

// appendEnclosedLetters appends word to b with its enclosed letters
// written as the plain letters.
func appendEnclosedLetters(b, word []byte) []byte {
	for len(word) > 0 {
		r, n := utf8.DecodeRune(word)
		if c := enclosedLetter(r); c != 0 {
			b = append(b, c)
		} else {
			b = append(b, word[:n]...)
		}
		word = word[n:]
	}
	return b
}

// latinLookAlike maps the Cyrillic and Greek letters that look like a
// Latin letter, in a sans-serif mail font, to that letter (lower case).
// Letters that look only like a small capital (Cyrillic "н", "т") are
// left out: no reader takes them for Latin.
var latinLookAlike = map[rune]byte{
	// Cyrillic.
	'а': 'a', 'е': 'e', 'і': 'i', 'ј': 'j', 'о': 'o', 'р': 'p', 'с': 'c', 'у': 'y',
	'х': 'x', 'ѕ': 's', 'ԁ': 'd', 'һ': 'h', 'ԛ': 'q', 'ԝ': 'w', 'ӏ': 'l',
	'А': 'a', 'В': 'b', 'Е': 'e', 'І': 'i', 'Ј': 'j', 'К': 'k', 'М': 'm', 'Н': 'h',
	'О': 'o', 'Р': 'p', 'С': 'c', 'Т': 't', 'У': 'y', 'Х': 'x', 'Ѕ': 's', 'Ԁ': 'd',
	'Ԛ': 'q', 'Ԝ': 'w',
	// Greek.
	'ο': 'o', 'ν': 'v', 'ρ': 'p', 'ι': 'i', 'κ': 'k', 'υ': 'u', 'χ': 'x', 'α': 'a',
	'Α': 'a', 'Β': 'b', 'Ε': 'e', 'Ζ': 'z', 'Η': 'h', 'Ι': 'i', 'Κ': 'k', 'Μ': 'm',
	'Ν': 'n', 'Ο': 'o', 'Ρ': 'p', 'Τ': 't', 'Υ': 'y', 'Χ': 'x',
}

// lookAlikeWord reports whether word is a Latin word with Cyrillic or
// Greek look-alikes written into it ("pаypal" with a Cyrillic "а"): it
// has a Latin letter and a look-alike, and no other letter of any other
// script. A word wholly in Cyrillic or Greek is a word of those
// languages, even one whose letters all look Latin (Russian "сор").
func lookAlikeWord(word []byte) bool {
	latin, alike := false, false
	for _, r := range string(word) {
		switch {
		case r < utf8.RuneSelf:
			latin = latin || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		case latinLookAlike[r] != 0:
			alike = true
		case unicode.IsLetter(r) && !unicode.Is(unicode.Latin, r):
			return false
		case unicode.Is(unicode.Latin, r):
			latin = true
		}
	}
	return latin && alike
}

// appendLatinLookAlikes appends word to b with its look-alike letters
// (see latinLookAlike) written as the Latin letters they look like.
func appendLatinLookAlikes(b, word []byte) []byte {
	for len(word) > 0 {
		r, n := utf8.DecodeRune(word)
		if c := latinLookAlike[r]; c != 0 {
			b = append(b, c)
		} else {
			b = append(b, word[:n]...)
		}
		word = word[n:]
	}
	return b
}

// isInvisible reports whether r is a format character that shows as
// nothing and parts no words: the soft hyphen, the zero-width space,
// non-joiner and joiner, the direction marks and embeddings, the word
// joiner and invisible operators, the direction isolates, and the byte
// order mark (the zero-width no-break space). Spam puts them inside
// words ("vi\u200bagra") that readers see whole, so that a filter
// splitting there reads two fragments of no weight.
func isInvisible(r rune) bool {
	switch {
	case r == '\u00ad', r == '\u180e', r == '\ufeff':
		return true
	case r >= '\u200b' && r <= '\u200f', r >= '\u202a' && r <= '\u202e',
		r >= '\u2060' && r <= '\u2064', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// appendVisible appends word to b without its invisible characters.
func appendVisible(b, word []byte) []byte {
	for len(word) > 0 {
		r, n := utf8.DecodeRune(word)
		if !isInvisible(r) {
			b = append(b, word[:n]...)
		}
		word = word[n:]
	}
	return b
}

// cjkPair adds the pair of CJK characters starting at byte offset i of s
// (the first n bytes long), or the single character when the next one is
// not CJK.
func (w *walker) cjkPair(s []byte, i, n int, prefix string) {
	r2, n2 := utf8.DecodeRune(s[i+n:])
	w.buf = append(w.buf[:0], prefix...)
	if n2 > 0 && isCJK(r2) {
		w.buf = append(w.buf, s[i:i+n+n2]...)
	} else {
		w.buf = append(w.buf, s[i:i+n]...)
	}
	w.add(w.buf)
}

// word normalises one candidate word and adds it.
func (w *walker) word(tok []byte, prefix string) {
	tok = trimJoiners(tok)
	if len(tok) < minTokenLen || len(tok) > maxTokenLen {
		return
	}
	if !isASCII(tok) {
		if hasEnclosedLetter(tok) {
			w.enclosedBuf = appendEnclosedLetters(w.enclosedBuf[:0], tok)
			tok = w.enclosedBuf
		}
		// As the reader reads it: full-width and mathematical
		// letters as plain ones, ligatures as their letters, an
		// accent written apart on its letter.
		if tok = w.nfkc(tok); len(tok) > maxTokenLen {
			return
		}
		if lookAlikeWord(tok) {
			w.latinBuf = appendLatinLookAlikes(w.latinBuf[:0], tok)
			tok = w.latinBuf
		}
	}
	if len(tok) > 4 && allDigits(tok) && ipv4Len(tok) != len(tok) {
		// Long numbers are phone numbers, dates, IDs: never seen twice.
		// IPv4 addresses do recur (relays, link targets).
		return
	}
	w.buf = appendLower(append(w.buf[:0], prefix...), tok)
	w.add(w.buf)
	if w.pairs && len(w.buf)-len(prefix) >= minPairWordLen {
		w.pair(prefix, w.buf[len(prefix):])
	}
	// A loop rather than bytes.IndexByte: the word is at most
	// maxTokenLen bytes, most a few, and the call cost more than the
	// search.
	at := -1
	for k, c := range tok {
		if c == '@' {
			at = k
			break
		}
	}
	if at >= 0 && at+1 < len(tok) {
		// The domain of an address recurs where the full address does not.
		w.buf = appendLower(append(w.buf[:0], prefix...), tok[at+1:])
		w.add(w.buf)
	}
}

// nfkc returns word in normalization form NFKC: word itself if it is in
// that form already, else the form in the walker's scratch nfkcBuf.
//
// norm.NFKC.IsNormal and norm.NFKC.Append each put a reorder buffer of
// some 600 bytes on the heap, for every word not in the form: a megabyte
// of "ª " or of ligatures, 350,000 such words, allocated 400 MB. The
// walker's norm.Iter keeps its buffer from word to word, and gives the
// bytes Append gives.
func (w *walker) nfkc(word []byte) []byte {
	if norm.NFKC.QuickSpan(word) == len(word) {
		return word
	}
	it := &w.nfkcIter
	it.Init(norm.NFKC, word)
	out := w.nfkcBuf[:0]
	for !it.Done() {
		out = append(out, it.Next()...)
	}
	w.nfkcBuf = out
	return out
}

// minPairWordLen is the shortest word, in bytes, that forms pairs. Shorter
// words ("a", "of", "to") are left out of pairs without breaking the chain,
// so "click on the link" pairs as "click the", "the link"... and "remove
// me from" as "remove from": cross-validation on the training part of the
// SpamAssassin corpus ranked this above pairs of every word (and above
// pairs of words of 4 bytes or more), with fewer tokens.
const minPairWordLen = 3

// pair adds the pair of the previous word of the run and word (lower-cased,
// without prefix), and makes word the previous one. A pair says more than
// its words apart ("click here", "remove yourself", "dear friend") and
// recurs across a spam run.
func (w *walker) pair(prefix string, word []byte) {
	if len(w.prev) > 0 {
		w.pairBuf = append(append(w.pairBuf[:0], prefix...), w.prev...)
		w.pairBuf = append(append(w.pairBuf, ' '), word...)
		w.add(w.pairBuf)
	}
	w.prev = append(w.prev[:0], word...)
}

// trimJoiners strips the punctuation that joins words ('-.@_) from both
// ends of a word: "e-mail" keeps its hyphen, "--" and "end." lose theirs.
func trimJoiners(s []byte) []byte {
	isJoiner := func(c byte) bool { return c == '\'' || c == '-' || c == '.' || c == '@' || c == '_' }
	i, j := 0, len(s)
	for i < j && isJoiner(s[i]) {
		i++
	}
	for j > i && isJoiner(s[j-1]) {
		j--
	}
	return s[i:j]
}

func allDigits(s []byte) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// appendLower appends s lower-cased to b.
//
// Every word of a message goes through here. b is grown once, and each
// ASCII byte is stored through a table (asciiLower) rather than appended
// after a test for upper case, which in mixed-case text the CPU
// mispredicts often.
func appendLower(b []byte, s []byte) []byte {
	n := len(b)
	b = slices.Grow(b, len(s))[:n+len(s)]
	d := b[n:]
	d = d[:len(s)] // one bounds check for the loop
	for i, c := range s {
		if c >= utf8.RuneSelf {
			return appendLowerUnicode(b[:n+i], s[i:])
		}
		d[i] = asciiLower[c]
	}
	return b
}

// asciiLower maps each byte to itself, but ASCII upper-case letters to
// lower case. It is built once and only read.
var asciiLower = func() (t [256]byte) {
	for c := range 256 {
		t[c] = byte(c)
		if c >= 'A' && c <= 'Z' {
			t[c] += 'a' - 'A'
		}
	}
	return t
}()

// appendLowerUnicode appends s lower-cased rune by rune, as strings.ToLower
// does.
func appendLowerUnicode(b []byte, s []byte) []byte {
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		s = s[n:]
		b = utf8.AppendRune(b, unicode.ToLower(r))
	}
	return b
}

// urls adds a "url:" token for the host of each URL in the text s, and
// one for its last two labels, so links to a spammer's domain count
// whatever the subdomain or path.
func (w *walker) urls(s []byte) { eachURLHost(s, true, w.host) }

// linkURLs adds the tokens of the URLs in a link target (an attribute
// value), as urls does for text.
func (w *walker) linkURLs(s []byte) { eachURLHost(s, false, w.host) }

// eachURLHost calls fn with the host of each URL in s, from left to
// right: the host (see hostEnd; text says whether s is text) after each
// "http://", "https://" (and its userinfo, see afterUserinfo) or "www."
// that indexURL finds, each search starting after the host before.
func eachURLHost(s []byte, text bool, fn func(host []byte)) {
	var f urlFinder
	for pos := 0; ; {
		j := f.next(s, pos)
		if j < 0 {
			return
		}
		p := j
		if k := bytes.Index(s[p:min(len(s), p+8)], []byte("://")); k >= 0 {
			p += k + 3
			p = afterUserinfo(s, p)
		}
		end := hostEnd(s, p, text)
		fn(s[p:end])
		if p == len(s) {
			return
		}
		// Every round consumes at least one byte, so the loop ends.
		pos = max(end, p+1)
	}
}

// afterUserinfo returns where the host of the URL authority that starts
// at s[p] starts: after its last "@" when it has userinfo
// ("http://user:pass@host/", RFC 3986 section 3.2.1), p otherwise. A
// browser goes to the host after the "@"; phishing links put a bank's
// name before it ("http://www.bank.example@evil.example/"), and reading
// that as the host gave the bank's tokens and none of the real host.
// The authority ends at the first byte that can be neither userinfo nor
// host ("/", "?", "#", white space, quotes, angle brackets ...).
func afterUserinfo(s []byte, p int) int {
	host := p
	for k := p; k < len(s) && isAuthorityByte(s[k]); k++ {
		if s[k] == '@' {
			host = k + 1
		}
	}
	return host
}

// isAuthorityByte reports whether c may stand in the authority of a URL:
// a host byte, "@", or a byte userinfo may hold (unreserved, "%" of a
// percent-encoding, sub-delims, ":"), or a byte of a non-ASCII character,
// which a browser takes in a user name (percent-encoding it) as in a host
// ("http://bänk.example@evil.example/" goes to evil.example).
func isAuthorityByte(c byte) bool {
	if isHostByte(c) || c >= utf8.RuneSelf {
		return true
	}
	switch c {
	case '@', ':', '%', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=':
		return true
	}
	return false
}

// indexURL returns the index of the first "http://", "https://" or "www."
// in s (ASCII case-insensitively), or -1. A "www." counts only where no
// host byte precedes it.
func indexURL(s []byte) int {
	var f urlFinder
	return f.next(s, 0)
}

// urlFinder finds the URLs of one text from left to right (see next). It
// keeps where the next "http://" or "https://" is, or that none is left:
// looked for anew from each URL found, a text of many "www." and no "://"
// after them was searched to its end once per "www.", in time quadratic
// in its length (a body of 1 MiB of "www.:" took 10 s).
type urlFinder struct {
	looked bool
	http   int // the next "http://" or "https://" at or after where it was looked for; -1: none
}

// next returns the index in s of the first URL start at or after pos, as
// indexURL(s[pos:]) would give it plus pos (the text before pos is not
// looked at: a "www." at pos counts whatever precedes it), or -1. pos
// must not decrease from one call to the next.
//
// Rather than look at every byte of the text for an h or a w, it finds
// the bytes every match holds at a fixed place, "://" and '.', with
// bytes.Index and bytes.IndexByte, which scan many bytes at a time, and
// checks the bytes before them: the first "://" that ends an "http" or
// "https" gives the first such match (two "://" are at least three bytes
// apart, so a later one cannot start an earlier match), and only the dots
// before it can start an earlier "www.".
func (f *urlFinder) next(s []byte, pos int) int {
	if !f.looked || f.http >= 0 && f.http < pos {
		// None looked for yet, or the one found is behind: no other
		// lies between (it was the first), so look on from pos.
		f.looked, f.http = true, indexHTTP(s, pos)
	}
	// A "www." before it: its dot is at most at http+2.
	end := len(s)
	if f.http >= 0 {
		end = f.http + 3
	}
	for from := pos + 3; from < end; {
		p := bytes.IndexByte(s[from:end], '.')
		if p < 0 {
			break
		}
		p += from
		if i := p - 3; s[i]|0x20 == 'w' && s[i+1]|0x20 == 'w' && s[i+2]|0x20 == 'w' && (i == pos || !isHostByte(s[i-1])) {
			return i
		}
		from = p + 1
	}
	return f.http
}

// indexHTTP returns the index of the first "http://" or "https://" that
// starts at or after pos in s (ASCII case-insensitively), or -1.
func indexHTTP(s []byte, pos int) int {
	for from := pos; ; {
		j := bytes.Index(s[from:], []byte("://"))
		if j < 0 {
			return -1
		}
		j += from
		if j-4 >= pos && s[j-4]|0x20 == 'h' && s[j-3]|0x20 == 't' && s[j-2]|0x20 == 't' && s[j-1]|0x20 == 'p' {
			return j - 4
		}
		if j-5 >= pos && s[j-5]|0x20 == 'h' && s[j-4]|0x20 == 't' && s[j-3]|0x20 == 't' && s[j-2]|0x20 == 'p' && s[j-1]|0x20 == 's' {
			return j - 5
		}
		from = j + 3
	}
}

func isHostByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.'
}

// hostEnd returns the index after the host that starts at s[p]: ASCII
// letters, digits, hyphens and dots, and the letters, digits and marks of
// other scripts, which a browser takes in an internationalised domain
// name (RFC 5890) and looks up in their ASCII form (see asciiHost).
//
// In text (text set; a link target is cut out by its markup already),
// the host must also end where the text goes on without a space, as
// Chinese and Japanese do. Where its last label starts in ASCII and goes
// on in another script ("访问www.example.com获取"), the host ends where
// the ASCII does: no top-level domain mixes the two. A last label in such
// a script after a dot ("www.example.edu.去查询") is the next sentence,
// not a top-level domain (".中国" exists, but is seldom seen in links).
func hostEnd(s []byte, p int, text bool) int {
	end := p
	nonASCII := false
	for end < len(s) {
		c := s[end]
		if isHostByte(c) {
			end++
			continue
		}
		if c == '%' && end+2 < len(s) && unhex(s[end+1]) >= 0 && unhex(s[end+2]) >= 0 {
			// A percent-encoding, which a browser decodes (see
			// unescapeHost).
			end += 3
			continue
		}
		if c < utf8.RuneSelf {
			break
		}
		r, n := utf8.DecodeRune(s[end:])
		if c := hostPunct(r); c != 0 {
			// In text such a stop ends a sentence as often as it
			// parts labels: it is a dot only before a Latin letter or
			// digit ("spamsite。com"), not before the next sentence.
			if c == '.' && text && !latinNext(s[end+n:]) {
				break
			}
		} else if r == utf8.RuneError || !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) {
			break
		}
		nonASCII = true
		end += n
	}
	if !nonASCII || !text {
		return end
	}
	dot, size := lastHostDot(s[p:end])
	if dot < 0 {
		return end
	}
	dot += p
	label := dot + size
	if label == end {
		return end
	}
	if s[label] < utf8.RuneSelf {
		for k := label; k < end; k++ {
			if s[k] >= utf8.RuneSelf {
				return k
			}
		}
		return end
	}
	if r, _ := utf8.DecodeRune(s[label:]); isCJK(r) && dot > p && s[dot-1] < utf8.RuneSelf {
		return dot
	}
	return end
}

// hostPunct returns the ASCII byte a browser reads the non-ASCII
// punctuation r as in a host, 0 if none: the full stops of Chinese and
// Japanese text (U+3002, and the full-width U+FF0E and half-width U+FF61
// forms) are label dots, and the full-width hyphen U+FF0D a hyphen
// (UTS #46 maps them so). "http://spamsite。com/" goes to spamsite.com.
func hostPunct(r rune) byte {
	switch r {
	case '\u3002', '\uff0e', '\uff61':
		return '.'
	case '\uff0d':
		return '-'
	}
	return 0
}

// latinNext reports whether s starts with a Latin letter or digit, ASCII
// or full-width (which a browser reads as ASCII in a host).
func latinNext(s []byte) bool {
	if len(s) > 0 && s[0] < utf8.RuneSelf {
		return isHostByte(s[0]) && s[0] != '.' && s[0] != '-'
	}
	r, _ := utf8.DecodeRune(s)
	return r >= '\uff10' && r <= '\uff19' || r >= '\uff21' && r <= '\uff3a' || r >= '\uff41' && r <= '\uff5a'
}

// lastHostDot returns the index and length in bytes of the last label
// dot of h, ASCII or one of the stops hostPunct reads as a dot; -1 if
// there is none.
func lastHostDot(h []byte) (int, int) {
	for i := len(h); i > 0; {
		r, n := utf8.DecodeLastRune(h[:i])
		i -= n
		if r == '.' || r >= utf8.RuneSelf && hostPunct(r) == '.' {
			return i, n
		}
	}
	return -1, 0
}

// trimHost returns h without the dots and hyphens at its ends, ASCII or
// those hostPunct reads so: a host that ends a sentence ("see
// www.example.com." or "www.example.com。") is the same host.
func trimHost(h []byte) []byte {
	for len(h) > 0 {
		if c := h[0]; c == '.' || c == '-' {
			h = h[1:]
			continue
		}
		r, n := utf8.DecodeRune(h)
		if r < utf8.RuneSelf || hostPunct(r) == 0 {
			break
		}
		h = h[n:]
	}
	for len(h) > 0 {
		if c := h[len(h)-1]; c == '.' || c == '-' {
			h = h[:len(h)-1]
			continue
		}
		r, n := utf8.DecodeLastRune(h)
		if r < utf8.RuneSelf || hostPunct(r) == 0 {
			break
		}
		h = h[:len(h)-n]
	}
	return h
}

// maxUnicodeHost bounds, in bytes, the non-ASCII hosts that asciiHost
// converts: a DNS name is at most 253 bytes in ASCII form, and each
// character takes at least one of them and at most four bytes of UTF-8.
// A longer "host" can be no name, and is dropped as a long ASCII one is,
// without converting a hostile megabyte.
const maxUnicodeHost = 4 * 253

// linkIDNA maps a link host to its ASCII form as browsers do (the WHATWG
// URL standard's "domain to ASCII": UTS #46 nontransitional mapping, the
// bidi and joiner rules, but not the hyphen rules, nor STD3's, which
// ASCII hosts are not held to either: "ab--c.bücher.example" is looked
// up as "ab--c.xn--bcher-kva.example" is).
var linkIDNA = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.CheckJoiners(true),
	idna.CheckHyphens(false), idna.StrictDomainName(false), idna.Transitional(false))

// asciiHost returns the ASCII form of a host holding non-ASCII
// characters, as a browser looks it up (see linkIDNA: lower case,
// full-width letters as ASCII, labels in punycode with "xn--"), so that a
// host gives the same tokens whether a link wrote it in Unicode or in
// ASCII. A host the rules refuse (a label that breaks the bidi rule,
// starts with a mark ...) is still a link: its text lower-cased is
// returned. nil for a host too long to be a DNS name. The result is in
// the walker's scratch hostBuf.
func (w *walker) asciiHost(h []byte) []byte {
	if len(h) > maxUnicodeHost {
		return nil
	}
	a, err := linkIDNA.ToASCII(string(h))
	if err != nil {
		w.hostBuf = appendLowerHost(w.hostBuf[:0], h)
	} else {
		w.hostBuf = append(w.hostBuf[:0], a...)
	}
	return bytes.Trim(w.hostBuf, ".-")
}

// appendLowerHost appends host h lower-cased, with the punctuation that
// hostPunct maps written as its ASCII byte: the text of a host that the
// IDNA rules refuse still gives the labels a browser would read.
func appendLowerHost(b []byte, h []byte) []byte {
	for len(h) > 0 {
		r, n := utf8.DecodeRune(h)
		h = h[n:]
		if c := hostPunct(r); c != 0 {
			b = append(b, c)
		} else {
			b = utf8.AppendRune(b, unicode.ToLower(r))
		}
	}
	return b
}

// unescapeHost returns a host with percent-encodings (hostEnd takes them
// in a host) decoded, as a browser decodes them before it looks the host
// up: "http://%65vil.example/" goes to evil.example. nil if the decoded
// host holds an ASCII byte no host may ("/", "@", a space, a "%" of a
// second encoding), which makes the URL no link a browser follows, or if
// it is too long to be a name even in UTF-8 (see maxUnicodeHost), which
// keeps a hostile megabyte from being decoded.
func (w *walker) unescapeHost(h []byte) []byte {
	if len(h) > 3*maxUnicodeHost {
		return nil
	}
	out := w.pctBuf[:0]
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c == '%' && i+2 < len(h) && unhex(h[i+1]) >= 0 && unhex(h[i+2]) >= 0 {
			c = byte(unhex(h[i+1])<<4 | unhex(h[i+2]))
			i += 2
			if c < utf8.RuneSelf && !isHostByte(c) {
				return nil
			}
		}
		out = append(out, c)
	}
	w.pctBuf = out
	return out
}

// host adds the tokens of a URL host.
func (w *walker) host(h []byte) {
	if bytes.IndexByte(h, '%') >= 0 {
		if h = w.unescapeHost(h); h == nil {
			return
		}
	}
	h = trimHost(h)
	if !isASCII(h) {
		if h = w.asciiHost(h); h == nil {
			return
		}
	}
	if len(h) < 3 || len(h) > 253 {
		return
	}
	if len(h) <= maxTokenLen {
		w.buf = appendLowerASCII(append(w.buf[:0], "url:"...), h)
		w.add(w.buf)
	}
	// Last two labels: "click.mailer.example.com" -> "example.com".
	if i := bytes.LastIndexByte(h, '.'); i > 0 {
		if j := bytes.LastIndexByte(h[:i], '.'); j >= 0 && len(h)-j-1 <= maxTokenLen {
			w.buf = appendLowerASCII(append(w.buf[:0], "url:"...), h[j+1:])
			w.add(w.buf)
		}
	}
}
