package classifier

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/unicode/norm"
)

// walker collects the tokens of one message. Tokenizer keeps finished
// walkers in a pool and resets them, so their buffers serve message after
// message; every loop in it is bounded by the size of the (capped) input or
// by the part and depth caps.
type walker struct {
	opts   TokenizerOptions
	set    *tokenSet
	parts  int
	broken int // parts lost to a broken header, in the whole message
	// partFields counts the part header fields handed to go-message so
	// far in the message (see capPartHeaders).
	partFields int
	// params counts the Content-Type and Content-Disposition parameters
	// parsed so far in the message past each field's first few (see
	// capParams).
	params int
	// reread counts the bytes of multipart bodies read again as text
	// (see multipart) in the message.
	reread int
	// decoded counts the bytes of multipart bodies decoded (see
	// encodedMultipart) in the message.
	decoded     int
	truncated   bool
	pastCap     int       // tokens taken past the token cap (see add)
	verpWork    int       // bytes verpLen looked at in the message (see maxVerpWork)
	bogo        bool      // DialectBogofilter
	buf         []byte    // scratch for building one token
	visBuf      []byte    // scratch for a word without its invisible characters
	latinBuf    []byte    // scratch for a word with its look-alikes made Latin
	nfkcBuf     []byte    // scratch for a word in normalization form NFKC
	nfkcIter    norm.Iter // the normaliser of nfkc, its buffers kept
	enclosedBuf []byte    // scratch for a word with its enclosed letters made plain
	names       []byte    // arena of lower-cased header field names
	html        []byte    // scratch for the visible text of an HTML part
	htmlHidden  []byte    // scratch for the text hidden inside an HTML part (see htmlText)
	partBufs    [][]byte
	fieldBufs   [][]field // header fields of the entity at each depth
	pairs       bool      // the current run of words forms pairs (see pair)
	prev        []byte    // the previous word of the run, for pairs
	seen        ngramSeen // scratch for the n-gram features
	toks        []string  // scratch Message.Tokens (see Tokenizer.withMessage)
	hashes      []uint64  // scratch Message.hashes
	counts      []Counts  // scratch Message.counts
	feats       []uint32  // scratch Message.Features
	viewBuf     []byte    // scratch for the bytes of the n-gram features (ngramView)
	pairBuf     []byte    // scratch for building a pair
	linkBuf     []byte    // scratch for the decoded value of an HTML link attribute
	hostBuf     []byte    // scratch for the ASCII form of a non-ASCII host (see asciiHost)
	pctBuf      []byte    // scratch for a host with percent-encodings decoded (see unescapeHost)
}

func newWalker(opts TokenizerOptions) *walker {
	return &walker{opts: opts, set: newTokenSet(), bogo: opts.Dialect == DialectBogofilter}
}

// reset prepares the walker for another message.
func (w *walker) reset() {
	w.set.reset()
	w.parts = 0
	w.broken = 0
	w.partFields = 0
	w.params = 0
	w.reread = 0
	w.decoded = 0
	w.truncated = false
	w.pastCap = 0
	w.verpWork = 0
	w.names = w.names[:0]
	// The scratch slices hold the last message's token strings; keep
	// them only while they are small.
	if cap(w.toks) > maxPooledArena/16 {
		w.toks = nil
	}
	if cap(w.hashes) > maxPooledArena/8 {
		w.hashes = nil
	}
	if cap(w.counts) > maxPooledArena/12 {
		w.counts = nil
	}
	if cap(w.linkBuf) > maxPooledArena {
		w.linkBuf = nil
	}
	if cap(w.feats) > maxPooledArena/4 {
		w.feats = nil
	}
	// One huge message must not pin its memory for the life of the
	// process.
	for i, b := range w.partBufs {
		if cap(b) > maxPooledArena {
			w.partBufs[i] = nil
		}
	}
}

// add records one token, respecting the token cap. Past the cap, the
// tokens of link hosts and of the MIME structure (see afterCap) are still
// taken, up to a tenth of the cap more: filler text of made-up words
// that fills the cap (96 kB of it reach the default) must not hide the
// links and parts that follow it, which are what a spam is for.
func (w *walker) add(tok []byte) {
	if w.set.len() >= w.opts.MaxTokens {
		if w.set.has(tok) {
			return
		}
		if w.pastCap < w.opts.MaxTokens/10 && afterCap(tok) {
			w.pastCap++
			w.set.add(tok)
			return
		}
		w.truncated = true
		return
	}
	w.set.add(tok)
}

// afterCap reports whether tok is taken past the token cap: a link's host
// or address, or the type, encoding, charset, file name or breakage of a
// MIME part.
func afterCap(tok []byte) bool {
	i := bytes.IndexByte(tok, ':')
	if i < 0 {
		return false
	}
	switch string(tok[:i+1]) {
	case "url:", "mailto:", "ctype:", "cte:", "charset:", "mime:", "name:", "ext:":
		return true
	}
	return false
}

// add2 records the token prefix+s. A value longer than maxTokenLen (a
// sender's made-up content type or charset of kilobytes) is the token
// prefix+"long": one learnable token rather than a one-off key of any
// size in the store.
func (w *walker) add2(prefix, s string) {
	if len(s) > maxTokenLen {
		s = "long"
	}
	w.buf = append(append(w.buf[:0], prefix...), s...)
	w.add(w.buf)
}

// field is one header field. value is the raw value: leading and trailing
// white space trimmed, but folded lines still folded (CRLF or LF and the
// white space after), which splits words just as unfolding would; see
// unfold for where the difference matters.
type field struct {
	name    []byte // lower-cased
	rawName []byte // as written, for the bogofilter dialect
	value   []byte
	// folded1st is set when the value starts on a continuation line,
	// the line of the name holding nothing else (bogofilter's lexer
	// reads such a line as it reads any continuation).
	folded1st bool
}

func (f field) is(name string) bool { return string(f.name) == name }

// message tokenises a message (top level or message/rfc822 part): its header
// fields, then its body as a MIME entity.
func (w *walker) message(raw []byte, depth int, top bool) {
	var fields []field
	var body []byte
	var dropped bool
	fields, body, w.names, dropped = parseHeader(w.fieldsAt(depth), raw, w.names, maxHeaderFields)
	w.truncated = w.truncated || dropped
	w.fieldBufs[depth] = fields
	if w.bogo {
		for _, f := range fields {
			w.bogoHeader(f, false)
		}
	} else if top {
		w.headerTokens(fields)
	} else {
		// Headers of an attached or forwarded message: its subject is
		// content, its trace fields are someone else's path.
		for _, f := range fields {
			if f.is("subject") {
				w.words(decodeHeaderValue(f.value), "")
			}
		}
	}
	w.entity(fields, body, depth)
}

// entity tokenises the body of a MIME entity according to its type.
func (w *walker) entity(fields []field, body []byte, depth int) {
	w.parts++
	if w.parts > w.opts.MaxParts || depth > w.opts.MaxDepth {
		w.truncated = true
		return
	}
	w.capMIMEParams(fields)
	ctype, params := contentType(fields)
	cte := lowerASCII(bytes.TrimSpace(headerGet(fields, "content-transfer-encoding")))
	if !w.bogo {
		w.add2("ctype:", ctype)
		if cte != "" && cte != "7bit" {
			w.add2("cte:", cte)
		}
	}
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		if !w.bogo {
			// bogofilter's MIME parser is followed as it is.
			body = w.encodedMultipart(cte, body, params["boundary"])
		}
		w.multipart(body, params["boundary"], depth)
	case ctype == "message/rfc822" || ctype == "message/global":
		w.message(decodeTransfer(cte, body), depth+1, false)
	case strings.HasPrefix(ctype, "text/"):
		// Some mailers quote the name in single quotes, or leave
		// blanks inside the double quotes; mail clients read the
		// name all the same.
		cs := strings.ToLower(strings.Trim(params["charset"], " \t'\""))
		if cs != "" && cs != "us-ascii" && cs != "utf-8" && !w.bogo {
			w.add2("charset:", cs)
		}
		text := toUTF8(decodeTransfer(cte, body), cs)
		switch {
		case w.bogo && ctype == "text/html":
			w.bogoHTML(text)
		case ctype == "text/html":
			w.htmlText(text)
		default:
			w.text(text)
		}
	case w.bogo:
		// bogofilter reads only the part header of binary content.
	default:
		// Binary content: its bytes say nothing a word count can use,
		// but its type and file name do (".scr", "invoice.zip").
		w.attachmentName(fields, params)
	}
}

// multipart walks the parts of a multipart body. If the boundary is missing
// or no part can be read, the body is tokenised as plain text so a broken
// message still yields its words.
func (w *walker) multipart(body []byte, boundary string, depth int) {
	if boundary == "" {
		if !w.bogo {
			w.add2("mime:", "noboundary")
		}
		w.text(toUTF8(body, ""))
		return
	}
	body = w.capPartHeaders(body, boundary)
	if !w.bogo {
		// bogofilter has a MIME parser of its own, which the bogofilter
		// dialect follows as it is.
		body, boundary = rebound(body, boundary)
	}
	rd := bytes.NewReader(body)
	mr := textproto.NewMultipartReader(rd, boundary)
	n, broken := 0, 0
	lastErr := ""
	for {
		if w.parts >= w.opts.MaxParts {
			w.truncated = true
			return
		}
		p, err := mr.NextPart()
		if err != nil {
			if err == io.EOF {
				break
			}
			if !w.bogo {
				w.add2("mime:", "broken")
			}
			// The body ends without its closing boundary (a message cut
			// short): every part was read, and the reader says so again
			// at each call.
			// Broken parts are bounded per message, not per multipart:
			// a few hundred multiparts of a few hundred broken parts
			// each would otherwise all be read.
			if strings.HasSuffix(err.Error(), "NextPart: EOF") || err.Error() == lastErr || w.broken >= w.opts.MaxParts {
				break
			}
			// A part whose header go-message cannot parse (a line
			// without a colon, no header at all, an 8-bit field name)
			// must not hide the parts after it: read on from the next
			// boundary.
			broken++
			w.broken++
			lastErr = err.Error()
			continue
		}
		lastErr = ""
		// The whole message is already capped in memory, so reading a
		// part fully is bounded by that cap. Each nesting depth has its
		// own buffer: the part is done with before the next is read.
		pb := w.readPart(p, depth, rd)
		n++
		var pf []field
		pf, w.names = headerFields(w.fieldsAt(depth+1), p.Header, w.names)
		w.fieldBufs[depth+1] = pf
		if w.bogo {
			for _, f := range pf {
				w.bogoHeader(f, true)
			}
		}
		w.entity(pf, pb, depth+1)
	}
	if n == 0 || broken > 0 {
		// Nothing parsed, or a part lost to its broken header: what it
		// said is somewhere in the body, read as text (tokens count
		// once, so the parts that were read add nothing twice).
		w.rereadText(body)
		return
	}
	if w.bogo {
		// bogofilter's lexer reads the preamble and the epilogue as
		// body text (observed with bogolexer 1.2.5); Mailman puts its
		// list footer after the closing boundary of a signed message.
		pre, epi := outsideParts(body, boundary)
		w.text(toUTF8(pre, ""))
		w.text(toUTF8(epi, ""))
	}
}

// encodedMultipart returns the body of a multipart entity decoded when
// it declares the transfer encoding cte as base64 or quoted-printable,
// which RFC 2045 section 6.4 does not allow for a multipart, and that
// encoding hides its parts: no delimiter line of the boundary is in the
// body as it stands, and one is once it is decoded. Spam encodes its
// multipart so to keep its text from filters that split the body as it
// is, and some mail clients decode it. The decoding is marked with the
// token "mime:encoded". A body whose parts can be read as they stand (a
// mailer that declared an encoding it did not apply) is returned as it
// is: decoding that as quoted-printable would join a base64 part's
// padded last line to the delimiter line after it, and lose the parts
// after it.
//
// The decoded body is no larger than the body, and is walked under the
// same part, depth and token caps. All the bodies decoded in one message
// together are at most MaxBytes (multiparts encoded inside encoded
// multiparts are each decoded again at each level): past that, a body
// is read as it stands, and the message is marked truncated.
func (w *walker) encodedMultipart(cte string, body []byte, boundary string) []byte {
	if cte != "base64" && cte != "quoted-printable" || boundary == "" || hasDelimiterLine(body, boundary) {
		return body
	}
	if w.decoded+len(body) > w.opts.MaxBytes {
		w.truncated = true
		return body
	}
	w.decoded += len(body)
	dec := decodeTransfer(cte, body)
	if !hasDelimiterLine(dec, boundary) {
		return body
	}
	w.add2("mime:", "encoded")
	return dec
}

// hasDelimiterLine reports whether body holds a delimiter line of the
// boundary (see isDelimiterRest).
func hasDelimiterLine(body []byte, boundary string) bool {
	dash := []byte("--" + boundary)
	for pos := 0; pos < len(body); {
		i := bytes.Index(body[pos:], dash)
		if i < 0 {
			return false
		}
		i += pos
		pos = i + len(dash)
		if (i == 0 || body[i-1] == '\n') && isDelimiterRest(body[pos:]) {
			return true
		}
	}
	return false
}

// rebound returns body and boundary as they are, unless a line of body
// starts with "--" and the boundary but is no delimiter line (RFC 2046
// section 5.1: "--", the boundary, optional blanks, the line end; the
// close delimiter has "--" after the boundary), such as "--abc-inner"
// where the boundary is "abc" and a nested multipart's is "abc-inner".
// go-message takes "--" and the boundary followed by "-" or a blank for
// the end of a part, and then fails on the line as no delimiter: every
// part after it was lost, and the body read as text. In that case the
// delimiter lines are rewritten with a boundary that occurs nowhere in
// body, which is returned with the new body.
func rebound(body []byte, boundary string) ([]byte, string) {
	dash := []byte("--" + boundary)
	misread := false
	eachDashLine(body, dash, func(i int, delim bool) {
		rest := body[i+len(dash):]
		if !delim && len(rest) > 0 && (rest[0] == '-' || rest[0] == ' ' || rest[0] == '\t') {
			misread = true
		}
	})
	if !misread {
		return body, boundary
	}
	// The hash of the body under the process's seed, which no sender
	// knows, makes a boundary that a body cannot hold but by chance;
	// one that does is read as before.
	nb := boundary + "=" + strconv.FormatUint(tokenHash(body), 36)
	if bytes.Contains(body, []byte("--"+nb)) {
		return body, boundary
	}
	var out []byte
	copied := 0
	eachDashLine(body, dash, func(i int, delim bool) {
		if delim {
			out = append(out, body[copied:i]...)
			out = append(append(out, "--"...), nb...)
			copied = i + len(dash)
		}
	})
	return append(out, body[copied:]...), nb
}

// eachDashLine calls fn with the index of each line of body that starts
// with dash ("--" and a boundary), and whether it is a delimiter line.
func eachDashLine(body, dash []byte, fn func(i int, delim bool)) {
	for pos := 0; pos < len(body); {
		i := bytes.Index(body[pos:], dash)
		if i < 0 {
			return
		}
		i += pos
		pos = i + len(dash)
		if i > 0 && body[i-1] != '\n' {
			continue
		}
		fn(i, isDelimiterRest(body[pos:]))
	}
}

// isDelimiterRest reports whether rest, what follows "--" and the
// boundary at the start of a line, makes the line a delimiter line:
// optionally "--" (the close delimiter), blanks, then CRLF, LF or the
// end of the body.
func isDelimiterRest(rest []byte) bool {
	rest = bytes.TrimPrefix(rest, []byte("--"))
	rest = bytes.TrimLeft(rest, " \t")
	return len(rest) == 0 || rest[0] == '\n' || len(rest) >= 2 && rest[0] == '\r' && rest[1] == '\n'
}

// outsideParts returns the preamble of a multipart body, before its first
// delimiter line, and its epilogue, after the line of its close
// delimiter; nil when there is none. Delimiter lines are recognised as
// in capPartHeaders (RFC 2046 section 5.1), the close delimiter being
// "--", the boundary and "--".
func outsideParts(body []byte, boundary string) (pre, epi []byte) {
	dash := []byte("--" + boundary)
	first := -1
	for pos := 0; pos < len(body); pos = lineAfter(body, pos) {
		if !bytes.HasPrefix(body[pos:], dash) {
			continue
		}
		j := pos + len(dash)
		closing := bytes.HasPrefix(body[j:], []byte("--"))
		if closing {
			j += 2
		}
		for j < len(body) && (body[j] == ' ' || body[j] == '\t') {
			j++
		}
		if j < len(body) && body[j] == '\r' {
			j++
		}
		if j < len(body) && body[j] != '\n' {
			continue
		}
		if first < 0 {
			first = pos
		}
		if closing {
			return body[:first], body[lineAfter(body, pos):]
		}
	}
	if first < 0 {
		return nil, nil
	}
	return body[:first], nil
}

// rereadText tokenises the body of a broken multipart as text. A
// multipart nested in a broken one is part of its body, so each level
// of broken multiparts would read the same bytes again, up to MaxDepth
// times: all the bodies read again in one message together are capped
// at MaxBytes, which a single one (part of the message) never exceeds.
func (w *walker) rereadText(body []byte) {
	if left := w.opts.MaxBytes - w.reread; len(body) > left {
		// Cut after a whole line: a cut inside a UTF-8 sequence would
		// make the text invalid and read as windows-1252.
		body = body[:bytes.LastIndexByte(body[:max(left, 0)], '\n')+1]
		w.truncated = true
	}
	w.reread += len(body)
	w.text(toUTF8(body, ""))
}

// fieldsAt returns the (emptied) buffer for the header fields of an
// entity at the given depth. One entity per depth is being walked at any
// time, so each depth needs one buffer; the caller stores the buffer back
// after appending to it.
func (w *walker) fieldsAt(depth int) []field {
	for len(w.fieldBufs) <= depth {
		w.fieldBufs = append(w.fieldBufs, nil)
	}
	return w.fieldBufs[depth][:0]
}

// readPart reads a part into the buffer kept for its depth. The buffer
// stays for the rest of the message (reset drops it if it grew past
// maxPooledArena), so parts at one depth share one buffer.
//
// It grows by doubling up to bigPart; past that, at once to the most the
// part can still hold: what rd, the reader of the body the part is cut
// from, has left, and what go-message's reader may have buffered of it.
// Each level of nested multiparts copies its part, and growing a
// megabyte by doubling from nothing allocated four times the part at
// every level.
func (w *walker) readPart(r io.Reader, depth int, rd *bytes.Reader) []byte {
	for len(w.partBufs) <= depth {
		w.partBufs = append(w.partBufs, nil)
	}
	buf := w.partBufs[depth][:0]
	for {
		if len(buf) == cap(buf) {
			more := max(cap(buf), 512)
			if cap(buf) >= bigPart {
				more = rd.Len() + partReadAhead
			}
			// A new slice and a copy rather than slices.Grow: built with
			// the race detector, Grow also allocates a temporary of the
			// size it grows by.
			grown := make([]byte, len(buf), len(buf)+more)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break // io.EOF, or a read error that ends the part; what was read is kept
		}
	}
	w.partBufs[depth] = buf
	return buf
}

// bigPart is the size past which readPart stops doubling its buffer, and
// partReadAhead how much of the body go-message reads ahead of a part
// (the buffer of its multipart reader; were it larger, readPart would
// only grow its buffer once more).
const (
	bigPart       = 64 << 10
	partReadAhead = 4096
)

// attachmentName adds the tokens of a non-text part's file name.
func (w *walker) attachmentName(fields []field, ctParams map[string]string) {
	name := ctParams["name"]
	if v, ok := rfc2231Charset(headerGet(fields, "content-type"), "name"); ok {
		name = v
	}
	if d := headerGet(fields, "content-disposition"); d != nil {
		if _, p, err := mime.ParseMediaType(string(unfold(d))); err == nil && p["filename"] != "" {
			name = p["filename"]
		}
		if v, ok := rfc2231Charset(d, "filename"); ok {
			name = v
		}
	}
	if name == "" {
		return
	}
	nb := decodeHeaderValue([]byte(name))
	w.words(nb, "name:")
	// Windows drops blanks and dots at the end of a file name:
	// "invoice.exe " and "doc.pdf.scr." are run as programs.
	nb = bytes.TrimRight(nb, " \t.")
	if i := bytes.LastIndexByte(nb, '.'); i >= 0 && len(nb)-i <= 8 {
		w.add2("ext:", strings.ToLower(string(nb[i+1:])))
	}
}

// rfc2231Charset returns the value of the parameter key of a header
// field value written in RFC 2231 form (key*=charset'lang'value, or
// continuations key*0*=, key*1*=, key*2= ...) in a charset other than
// UTF-8 or ASCII, or with the charset left blank, converted to UTF-8;
// ok is false for any other value. mime.ParseMediaType decodes only UTF-8 and ASCII and drops the encoded
// parts of any other, so of "caf%E9.zip" in ISO-8859-1 only ".zip" was
// left. Parameters are split at ";" outside double quotes; the work is
// linear in the length of v.
func rfc2231Charset(v []byte, key string) (_ string, ok bool) {
	if !bytes.Contains(v, []byte("*")) {
		return "", false
	}
	var single []byte         // key*=
	parts := map[int][]byte{} // key*N= and key*N*=, the latter marked by a leading '*'
	for p := range splitParams(unfold(v)) {
		k, val, found := bytes.Cut(p, []byte("="))
		if !found {
			continue
		}
		k = bytes.TrimSpace(k)
		if len(k) <= len(key) || !strings.EqualFold(string(k[:len(key)]), key) || k[len(key)] != '*' {
			continue
		}
		val = bytes.Trim(bytes.TrimSpace(val), `"`)
		rest := k[len(key)+1:]
		if len(rest) == 0 {
			single = val
			continue
		}
		encoded := rest[len(rest)-1] == '*'
		n, err := strconv.Atoi(string(bytes.TrimSuffix(rest, []byte("*"))))
		if err != nil || n < 0 || n > len(v) {
			continue
		}
		if encoded {
			val = append([]byte{'*'}, val...)
		}
		if _, dup := parts[n]; !dup {
			parts[n] = val
		}
	}
	first := single
	if first == nil {
		if p := parts[0]; len(p) > 0 && p[0] == '*' {
			first = p[1:]
		}
	}
	cs, rest, found := bytes.Cut(first, []byte("'"))
	if !found {
		return "", false
	}
	_, first, found = bytes.Cut(rest, []byte("'"))
	charset := strings.ToLower(string(cs))
	// A blank charset is allowed (RFC 2231 section 4) but dropped by
	// mime.ParseMediaType with the parameter: it gets toUTF8's best
	// effort, as unlabelled text does.
	if !found || charset == "utf-8" || charset == "us-ascii" {
		return "", false
	}
	raw := percentDecode(nil, first)
	if single == nil {
		for n := 1; ; n++ {
			p, found := parts[n]
			if !found {
				break
			}
			if len(p) > 0 && p[0] == '*' {
				raw = percentDecode(raw, p[1:])
			} else {
				raw = append(raw, p...)
			}
		}
	}
	return string(toUTF8(raw, charset)), true
}

// splitParams yields the parameters of a header field value: the pieces
// between the ";" outside double quotes, after the first.
func splitParams(v []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		quoted, start, first := false, 0, true
		for i := 0; i <= len(v); i++ {
			if i < len(v) && v[i] == '"' {
				quoted = !quoted
			}
			if i < len(v) && (v[i] != ';' || quoted) {
				continue
			}
			if !first && !yield(v[start:i]) {
				return
			}
			first, start = false, i+1
		}
	}
}

// percentDecode appends s to dst with its "%XX" escapes decoded; a "%"
// that starts no escape is kept.
func percentDecode(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0 {
			dst = append(dst, byte(unhex(s[i+1])<<4|unhex(s[i+2])))
			i += 2
			continue
		}
		dst = append(dst, s[i])
	}
	return dst
}

// capPartHeaders returns body with the part headers of this multipart
// cut down to what the message's budget of part header fields allows
// (maxHeaderFields for all part headers of the message together; past
// it, each part keeps at most maxMIMEFieldsPast MIME fields, so that its
// type and transfer encoding are still read). go-message allocates some
// 500 bytes for every field it parses, so a megabyte of "a:" lines in
// part headers would cost 180 MB and 350,000 parsed fields where real
// parts have a handful of fields each. Boundary delimiter lines are
// recognised as go-message recognises them (RFC 2046 section 5.1: at
// the start of a line, "--" and the boundary, optional blanks, then CRLF
// or LF). body is returned as it is unless a field is dropped; then the
// message is marked truncated.
func (w *walker) capPartHeaders(body []byte, boundary string) []byte {
	dash := "--" + boundary
	var out []byte // nil until a field is dropped
	copied := 0    // body[:copied] is accounted for in out
	pos := 0
	for pos < len(body) {
		i := bytes.Index(body[pos:], []byte(dash))
		if i < 0 {
			break
		}
		i += pos
		pos = i + len(dash)
		if i > 0 && body[i-1] != '\n' {
			continue
		}
		j := pos
		for j < len(body) && (body[j] == ' ' || body[j] == '\t') {
			j++
		}
		if j < len(body) && body[j] == '\r' {
			j++
		}
		if j >= len(body) || body[j] != '\n' {
			continue
		}
		// The part header: fields, each with its continuation lines,
		// up to an empty line.
		pos = j + 1
		mimeKept := 0
		for pos < len(body) {
			next := lineAfter(body, pos)
			line := bytes.TrimSuffix(bytes.TrimSuffix(body[pos:next], []byte("\n")), []byte("\r"))
			if len(line) == 0 {
				pos = next
				break
			}
			end := next
			for end < len(body) && (body[end] == ' ' || body[end] == '\t') {
				end = lineAfter(body, end)
			}
			keep := w.partFields < maxHeaderFields
			if !keep && mimeKept < maxMIMEFieldsPast {
				if c := bytes.IndexByte(line, ':'); c > 0 && mimeField(bytes.TrimSpace(line[:c])) {
					keep = true
					mimeKept++
				}
			}
			if keep {
				w.partFields++
			} else {
				if out == nil {
					out = make([]byte, 0, len(body))
				}
				out = append(out, body[copied:pos]...)
				copied = end
				w.truncated = true
			}
			pos = end
		}
	}
	if out == nil {
		return body
	}
	return append(out, body[copied:]...)
}

// capMIMEParams cuts the parameters of the fields of an entity whose
// parameters are parsed, the first Content-Type and Content-Disposition
// (see headerGet), to what the message's budget allows (see capParams).
func (w *walker) capMIMEParams(fields []field) {
	ct, cd := false, false
	for i := range fields {
		f := &fields[i]
		switch {
		case !ct && f.is("content-type"):
			ct = true
		case !cd && f.is("content-disposition"):
			cd = true
		default:
			continue
		}
		f.value = w.capParams(f.value)
	}
}

// capParams returns a Content-Type or Content-Disposition value with its
// parameters cut to what the message's budget allows: each value keeps
// its first maxParamsFree parameters, and more while the message's
// parameters past those number at most maxParams; past that, a value
// keeps at most maxMIMEFieldsPast parameters named boundary, charset,
// name or filename, which say how to read the part. mime.ParseMediaType
// allocates a map of some 550 bytes for each parameter of RFC 2231 form
// ("p*0=x"), and a Content-Type of a megabyte of them cost 85 MB and
// 850,000 allocations; real fields have a handful, a long file name in
// RFC 2231 pieces a few dozen. Parameters are split at ";" outside
// quoted strings (a backslash escapes the byte after it), as
// mime.ParseMediaType splits them. v is returned as it is unless a
// parameter is dropped; then the message is marked truncated.
func (w *walker) capParams(v []byte) []byte {
	var out []byte // nil until a parameter is dropped
	copied := 0    // v[:copied] is accounted for in out
	n, past := 0, 0
	start := -1 // the ";" that starts the current parameter; -1 in the type
	quoted := false
	for i := 0; i <= len(v); i++ {
		if i < len(v) {
			switch c := v[i]; {
			case quoted && c == '\\':
				i++
				continue
			case c == '"':
				quoted = !quoted
				continue
			case c != ';' || quoted:
				continue
			}
		}
		// v[start:i] is a parameter, its ";" included. An empty one
		// ("; ;", which some spam repeats by the hundred) costs the
		// parser nothing and is neither counted nor dropped.
		if start >= 0 && len(bytes.TrimSpace(v[start+1:i])) > 0 {
			keep := n < maxParamsFree
			if !keep && w.params < maxParams {
				keep = true
				w.params++
			}
			if !keep && past < maxMIMEFieldsPast && readingParam(v[start+1:i]) {
				keep = true
				past++
			}
			n++
			if !keep {
				if out == nil {
					out = make([]byte, 0, len(v))
				}
				out = append(out, v[copied:start]...)
				copied = i
				w.truncated = true
			}
		}
		start = i
	}
	if out == nil {
		return v
	}
	return append(out, v[copied:]...)
}

// readingParam reports whether a parameter ("name=value", blanks
// around) is one that says how to read a part: boundary, charset, name
// or filename, in any case, and not in RFC 2231 form.
func readingParam(p []byte) bool {
	name, _, _ := bytes.Cut(p, []byte("="))
	name = bytes.TrimSpace(name)
	for _, s := range []string{"boundary", "charset", "name", "filename"} {
		if bytes.EqualFold(name, []byte(s)) {
			return true
		}
	}
	return false
}

// lineAfter returns the index after the line of b that starts at i (after
// its LF), or len(b).
func lineAfter(b []byte, i int) int {
	if e := bytes.IndexByte(b[i:], '\n'); e >= 0 {
		return i + e + 1
	}
	return len(b)
}

// maxHeaderFields bounds the fields the tokenizer keeps of one header
// block. A megabyte of "a:" lines is 350,000 fields of 72 bytes each
// plus their names; real mail has tens, a long trace a few hundred.
// maxMIMEFieldsPast more are kept past it if they are MIME fields.
const (
	maxHeaderFields   = 1000
	maxMIMEFieldsPast = 16
)

// maxParams bounds the parameters of the Content-Type and
// Content-Disposition fields of a message parsed past the first
// maxParamsFree of each field, all fields together (see capParams).
const (
	maxParams     = 1000
	maxParamsFree = 16
)

// mimeField reports whether a field name is one that says how to read
// the body: Content-* or MIME-Version.
func mimeField(name []byte) bool {
	return len(name) >= 8 && strings.EqualFold(string(name[:8]), "content-") ||
		strings.EqualFold(string(name), "mime-version")
}

// parseHeader splits raw into header fields, appended to fields, and body,
// appending the fields' lower-cased names to names. It is lenient where
// real mail is broken: LF or CRLF line ends, bare CR line ends when the
// message has no LF at all, 8-bit bytes, and a line that is neither a
// field nor a continuation, which (as Postfix's cleanup does) starts the
// body. Field values are slices of raw. With limit above 0, fields past
// the first limit are not kept (the header is still read to its end) and
// dropped is set.
func parseHeader(fields []field, raw []byte, names []byte, limit int) (_ []field, body []byte, _ []byte, dropped bool) {
	n0 := len(fields)
	if bytes.IndexByte(raw, '\n') < 0 && bytes.IndexByte(raw, '\r') >= 0 {
		raw = bytes.ReplaceAll(raw, []byte("\r"), []byte("\n"))
	}
	start, end := -1, -1 // the current field: raw[start:end], folds included
	flush := func() {
		if start < 0 {
			return
		}
		cur := raw[start:end]
		start = -1
		i := bytes.IndexByte(cur, ':')
		name := bytes.TrimSpace(cur[:i])
		// Past the bound, the fields that say how to read the body are
		// still kept (a few): a thousand junk fields in front of them
		// must not make a base64 body unreadable.
		if kept := len(fields) - n0; limit > 0 && kept >= limit &&
			(kept >= limit+maxMIMEFieldsPast || !mimeField(name)) {
			dropped = true
			return
		}
		nn := len(names)
		names = appendLowerASCII(names, name)
		v := cur[i+1:]
		first := v
		if e := bytes.IndexByte(v, '\n'); e >= 0 {
			first = v[:e]
		}
		fields = append(fields, field{
			name:      names[nn:len(names):len(names)],
			value:     bytes.TrimSpace(v),
			rawName:   name,
			folded1st: len(bytes.TrimSpace(first)) == 0 && len(first) < len(v),
		})
	}
	pos := 0
	for pos < len(raw) {
		lineEnd, next := len(raw), len(raw)
		if i := bytes.IndexByte(raw[pos:], '\n'); i >= 0 {
			lineEnd, next = pos+i, pos+i+1
		}
		line := bytes.TrimSuffix(raw[pos:lineEnd], []byte("\r"))
		if len(line) == 0 {
			flush()
			return fields, raw[next:], names, dropped
		}
		if line[0] == ' ' || line[0] == '\t' {
			if start >= 0 {
				end = pos + len(line)
				pos = next
				continue
			}
			// A continuation with nothing to continue: not a header.
			flush()
			return fields, raw[pos:], names, dropped
		}
		if !IsFieldLine(line) {
			flush()
			return fields, raw[pos:], names, dropped
		}
		flush()
		start, end = pos, pos+len(line)
		pos = next
	}
	flush()
	return fields, nil, names, dropped
}

// unfold joins the lines of a folded field value with single spaces, the
// form MIME parameter parsing and RFC 2047 decoding expect.
func unfold(v []byte) []byte {
	if bytes.IndexByte(v, '\n') < 0 {
		return v
	}
	out := make([]byte, 0, len(v))
	for i := 0; len(v) > 0; i++ {
		line := v
		if j := bytes.IndexByte(v, '\n'); j >= 0 {
			line, v = v[:j], v[j+1:]
		} else {
			v = nil
		}
		if i == 0 {
			out = append(out, bytes.TrimSuffix(line, []byte("\r"))...)
			continue
		}
		out = append(out, ' ')
		out = append(out, bytes.TrimSpace(line)...)
	}
	return bytes.TrimSpace(out)
}

// IsFieldLine reports whether line starts with a field name and a colon
// (RFC 5322 section 2.2: printable ASCII except colon; some mailers put
// spaces before the colon, which is tolerated). The mailbox reader tells
// a message's first field from an mbox separator with it, so that both
// read a message alike.
func IsFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:i], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// headerFields converts a go-message part header to fields, appended to
// out, copying names and values into names.
func headerFields(out []field, h textproto.Header, names []byte) ([]field, []byte) {
	fs := h.Fields()
	for fs.Next() {
		// The name as written, not the canonical form Key returns
		// ("Content-type", "X-MIME-Autoconverted"): the bogofilter
		// dialect's tokens keep its case, as bogofilter does.
		n0 := len(names)
		if line, err := fs.Raw(); err == nil && bytes.IndexByte(line, ':') > 0 {
			names = append(names, bytes.TrimRight(line[:bytes.IndexByte(line, ':')], " \t")...)
		} else {
			names = append(names, fs.Key()...)
		}
		raw := names[n0:len(names):len(names)]
		n1 := len(names)
		names = appendLowerASCII(names, raw)
		lower := names[n1:len(names):len(names)]
		n2 := len(names)
		names = append(names, strings.TrimSpace(fs.Value())...)
		out = append(out, field{name: lower, rawName: raw, value: names[n2:len(names):len(names)]})
	}
	return out, names
}

// headerGet returns the value of the first field called name, or nil.
func headerGet(fields []field, name string) []byte {
	for _, f := range fields {
		if f.is(name) {
			if f.value == nil {
				return []byte{}
			}
			return f.value
		}
	}
	return nil
}

// appendLowerASCII appends b with ASCII letters lower-cased.
func appendLowerASCII(dst, b []byte) []byte {
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// lowerASCII returns b as a string with ASCII letters lower-cased. The
// common values (content transfer encodings) are returned without
// allocating.
func lowerASCII(b []byte) string {
	var tmp [32]byte
	if len(b) <= len(tmp) {
		l := appendLowerASCII(tmp[:0], b)
		switch string(l) {
		case "":
			return ""
		case "7bit":
			return "7bit"
		case "8bit":
			return "8bit"
		case "base64":
			return "base64"
		case "quoted-printable":
			return "quoted-printable"
		case "binary":
			return "binary"
		}
	}
	return string(appendLowerASCII(nil, b))
}

// contentType returns the media type of an entity, lower-cased, and its
// parameters. A missing or unparsable type is text/plain (RFC 2045 section
// 5.2), so a broken header still gets its body read as text.
func contentType(fields []field) (string, map[string]string) {
	raw := headerGet(fields, "content-type")
	if len(raw) == 0 {
		return "text/plain", nil
	}
	v := string(unfold(raw))
	t, params, err := mime.ParseMediaType(v)
	if err != nil {
		// ParseMediaType fails on a bad parameter but we still want the
		// type and, when it is there, the boundary.
		t = strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
		params = looseParams(v)
	}
	if !strings.Contains(t, "/") {
		t = "text/plain"
	}
	return t, params
}

// looseParams extracts name=value parameters from a header value that
// mime.ParseMediaType rejected (duplicate parameters, stray characters).
func looseParams(v string) map[string]string {
	params := map[string]string{}
	for _, p := range strings.Split(v, ";")[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `"`)
		if _, dup := params[k]; !dup && k != "" {
			params[k] = val
		}
	}
	return params
}

// decodeTransfer undoes a Content-Transfer-Encoding. Bad input is decoded as
// far as it goes: a truncated or corrupt base64 body yields its readable
// prefix, a broken quoted-printable escape is kept as it is, an unknown
// encoding is taken as is.
func decodeTransfer(cte string, body []byte) []byte {
	switch cte {
	case "base64":
		return decodeBase64Lenient(body)
	case "quoted-printable":
		return decodeQP(body)
	default:
		return body
	}
}

// decodeBase64Lenient decodes base64 ignoring every byte outside the
// alphabet, and drops an incomplete final quantum instead of failing.
//
// Padding ends a piece of data, not always the body: some mailers join
// pieces encoded one by one, each with its own padding, and mail clients
// decode them all. So decoding goes on after a padding when the line on
// which the next data starts is base64 through to its end. Other text
// there (a footer that a mailing list appended) is not decoded: it would
// only yield junk words.
func decodeBase64Lenient(body []byte) []byte {
	out := make([]byte, 0, base64.RawStdEncoding.DecodedLen(len(body)))
	var clean []byte
	checked := 0 // body[:checked] is known to go on with base64
	for pos := 0; pos < len(body); {
		end := bytes.IndexByte(body[pos:], '=')
		if end < 0 {
			end = len(body)
		} else {
			end += pos
		}
		clean = appendBase64Data(clean[:0], body[pos:end])
		// The pieces together decode to no more than the body's
		// alphabet bytes at once would, so out has room.
		n, _ := base64.RawStdEncoding.Decode(out[len(out):cap(out)], clean)
		out = out[:len(out)+n]
		for end < len(body) && body[end] == '=' {
			end++
		}
		pos = nextBase64Data(body, end)
		if pos < checked {
			continue
		}
		eol := bytes.IndexByte(body[pos:], '\n')
		if eol < 0 {
			eol = len(body)
		} else {
			eol += pos
		}
		if !isBase64Line(bytes.TrimRight(body[pos:eol], " \t\r")) {
			break
		}
		// A line is checked once, however many paddings it holds.
		checked = eol
	}
	return out
}

// isBase64Line reports whether line is base64 data and padding only.
func isBase64Line(line []byte) bool {
	if len(line) == 0 {
		return false
	}
	for _, c := range line {
		if c != '=' && !isBase64Byte(c) {
			return false
		}
	}
	return true
}

// nextBase64Data returns where the data after a padding that ends at
// body[i] starts: on the padding's line, or if that holds nothing more,
// on the next line that is not blank.
func nextBase64Data(body []byte, i int) int {
	j := i
	for j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\r') {
		j++
	}
	if j < len(body) && body[j] != '\n' {
		return i
	}
	for j < len(body) && (body[j] == ' ' || body[j] == '\t' || body[j] == '\r' || body[j] == '\n') {
		j++
	}
	return j
}

// decodeQP decodes quoted-printable (RFC 2045 section 6.7) leniently: "="
// and two hex digits (either case) is a byte, "=" at the end of a line
// (white space allowed after it, as some encoders leave) joins the lines,
// and any other "=" is kept as it is rather than ending the text.
func decodeQP(b []byte) []byte {
	i := bytes.IndexByte(b, '=')
	if i < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i >= 0 {
		out = append(out, b[:i]...)
		b = b[i+1:]
		switch {
		case len(b) >= 2 && unhex(b[0]) >= 0 && unhex(b[1]) >= 0:
			out = append(out, byte(unhex(b[0])<<4|unhex(b[1])))
			b = b[2:]
		default:
			j := 0
			for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
				j++
			}
			switch {
			case j < len(b) && b[j] == '\n':
				b = b[j+1:]
			case j+1 < len(b) && b[j] == '\r' && b[j+1] == '\n':
				b = b[j+2:]
			case j == len(b):
				b = nil
			default:
				out = append(out, '=')
			}
		}
		i = bytes.IndexByte(b, '=')
	}
	return append(out, b...)
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	}
	return -1
}

// toUTF8 converts text in the named charset to UTF-8. An unknown or missing
// charset is best effort: valid UTF-8 is kept, anything else is read as
// windows-1252 (a superset of ISO-8859-1's printable range, and what most
// unlabeled 8-bit mail is), so the message is never dropped. Text that is
// pure ASCII in an ASCII-compatible charset is returned as it is, without
// the cost of a decoder.
func toUTF8(b []byte, cs string) []byte {
	if cs == "" || cs == "utf-8" || cs == "utf8" || asciiLabel(cs) {
		// A label of ASCII says nothing of 8-bit bytes under it: read
		// them as in unlabelled text. The ASCII decoder would make each
		// U+FFFD, which splits the word it is in.
		return utf8OrLatin1(b)
	}
	if isASCII(b) && asciiCompatible(cs) {
		return b
	}
	if isUTF7(cs) {
		return decodeUTF7(b)
	}
	enc := charsetEncoding(cs)
	if enc == nil {
		// Unknown: best effort.
		return utf8OrLatin1(b)
	}
	out, err := enc.NewDecoder().Bytes(b)
	if err != nil && len(out) == 0 {
		return latin1(b)
	}
	return out
}

// utf8OrLatin1 returns b if it is UTF-8, and b read as windows-1252
// otherwise. Text that is UTF-8 but for an incomplete last character is
// UTF-8 cut short, not 8-bit text in another charset: base64 or
// quoted-printable cut at max_bytes, or by a sender's mailer, ends so.
// Its last character is dropped, so that its words are not all read as
// windows-1252.
func utf8OrLatin1(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	if head, ok := cutIncompleteRune(b); ok {
		return head
	}
	return latin1(b)
}

// cutIncompleteRune returns b without its last bytes if they begin a
// UTF-8 sequence that b ends before it is complete and the bytes before
// them are valid UTF-8.
func cutIncompleteRune(b []byte) ([]byte, bool) {
	if k := incompleteTail(b); k > 0 && utf8.Valid(b[:len(b)-k]) {
		return b[:len(b)-k], true
	}
	return b, false
}

// asciiLabel reports whether a charset name (in any case) is one of the
// names of US-ASCII (RFC 2046 section 4.1.2 and the IANA charset
// registry), or plain "ascii". glibc calls ASCII "ANSI_X3.4-1968", and
// programs run in the C locale (cron jobs, scripts) label their mail so.
func asciiLabel(cs string) bool {
	for _, n := range []string{"us-ascii", "ascii", "ansi_x3.4-1968", "ansi_x3.4-1986", "iso-ir-6",
		"iso_646.irv:1991", "iso646-us", "us", "ibm367", "cp367", "csascii"} {
		if strings.EqualFold(cs, n) {
			return true
		}
	}
	return false
}

// charsetEncoding finds the decoder of a MIME charset name (lower case)
// as go-message's charset package does: IANA names, their "cs" aliases,
// then the WHATWG names. Unlike it, it refuses WHATWG's "replacement"
// encoding, which the WHATWG maps ISO-2022-KR and ISO-2022-CN to and
// which turns a whole text into one U+FFFD: the caller's best effort
// (the bytes read as ASCII, UTF-8 or Latin-1) keeps at least the ASCII
// words. nil for an unknown charset.
//
// ISO-8859-1, under any of its names, is read as windows-1252, as mail
// clients and browsers read it (the WHATWG encoding standard makes the
// one label the other): in mail labelled ISO-8859-1 the bytes 0x80 to
// 0x9F are Windows's letters and punctuation ("Š", "œ", "’"), never C1
// controls.
//
// x-user-defined is read as the WHATWG encoding standard, browsers and
// Thunderbird read it: ASCII as such, the bytes 0x80 to 0xFF as U+F780
// to U+F7FF, private-use characters, which split words, so those bytes
// yield no words. The older Microsoft programs that wrote the label
// showed such bytes in a local code page that the label does not name;
// no one charset guessed for them would be right for most such mail.
func charsetEncoding(cs string) encoding.Encoding {
	switch cs {
	case "ansi_x3.110-1983":
		return charmap.Windows1252
	case "x-utf_8j":
		return unicode.UTF8
	}
	if name, ok := microsoftLabel(cs); ok {
		cs = name
	}
	if e, err := ianaindex.MIME.Encoding(cs); err == nil && e != nil {
		return latin1AsWindows(e)
	}
	if e, err := ianaindex.MIME.Encoding("cs" + cs); err == nil && e != nil {
		return latin1AsWindows(e)
	}
	if e, err := htmlindex.Get(cs); err == nil && e != nil && e != encoding.Replacement {
		return e
	}
	return nil
}

// windowsCharsets maps the names of Windows's font charset constants
// (ANSI_CHARSET, RUSSIAN_CHARSET, ...), which Outlook Express and other
// programs of its time wrote as MIME charset labels, with and without the
// "_charset" suffix, to the code page each stands for. DEFAULT_CHARSET
// (the sender's own code page) and JOHAB_CHARSET (no decoder) are left
// out, and so read as unknown labels.
var windowsCharsets = map[string]string{
	"ansi":        "windows-1252",
	"easteurope":  "windows-1250",
	"russian":     "windows-1251",
	"greek":       "windows-1253",
	"turkish":     "windows-1254",
	"hebrew":      "windows-1255",
	"arabic":      "windows-1256",
	"baltic":      "windows-1257",
	"vietnamese":  "windows-1258",
	"thai":        "windows-874",
	"shiftjis":    "shift_jis",
	"hangeul":     "euc-kr",
	"hangul":      "euc-kr",
	"gb2312":      "gbk",
	"chinesebig5": "big5",
	"mac":         "macintosh",
}

// microsoftLabel returns the registered name for a charset label that
// Microsoft's programs wrote and no registry lists: a Windows font charset
// name (see windowsCharsets), or a code page number with a prefix the
// registries do not know ("win-1251", "win1251", "cp-1251", "cp932",
// "cp949", "cp874"). The WHATWG encoding standard reads the labels of
// EUC-KR and Shift_JIS as code pages 949 and 932, Microsoft's supersets,
// so those are the decoders of "cp949" and "cp932".
func microsoftLabel(cs string) (string, bool) {
	if name, ok := windowsCharsets[strings.TrimSuffix(cs, "_charset")]; ok {
		return name, true
	}
	var num string
	for _, p := range []string{"win-", "win", "cp-", "cp"} {
		if rest, ok := strings.CutPrefix(cs, p); ok {
			num = rest
			break
		}
	}
	switch num {
	case "1250", "1251", "1252", "1253", "1254", "1255", "1256", "1257", "1258", "874":
		return "windows-" + num, true
	case "932":
		return "shift_jis", true
	case "949":
		return "euc-kr", true
	}
	return "", false
}

// latin1AsWindows returns windows-1252 for ISO-8859-1, e otherwise (see
// charsetEncoding).
func latin1AsWindows(e encoding.Encoding) encoding.Encoding {
	if e == charmap.ISO8859_1 {
		return charmap.Windows1252
	}
	return e
}

// c1AsWindows returns s with its C1 controls (U+0080 to U+009F) read as
// the windows-1252 bytes of the same values. mime.WordDecoder decodes
// encoded words in ISO-8859-1 itself, without the CharsetReader, so
// charsetEncoding cannot make them windows-1252 (and no other charset
// of an encoded word yields C1 controls meant as such). s is returned as
// it is when it has none.
func c1AsWindows(s string) string {
	if !strings.ContainsFunc(s, isC1) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		if isC1(r) {
			r = charmap.Windows1252.DecodeByte(byte(r))
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isC1(r rune) bool { return r >= 0x80 && r <= 0x9f }

// wordCharsetReader decodes the text of an RFC 2047 encoded word for
// mime.WordDecoder. It never fails: an encoded word in an unknown charset
// gets toUTF8's best effort rather than leaving the whole field undecoded,
// and the decoding is one call on a few bytes, where charset.Reader set up
// a streaming decoder and io.Copy a 32 KB buffer for each word.
//
// mime hands it the word's bytes in a bytes.Reader, read here into a
// slice of their size: io.ReadAll starts at 512 bytes, 30 times a short
// word, and a subject of encoded words allocated 40 times its size.
func wordCharsetReader(cs string, r io.Reader) (io.Reader, error) {
	var b []byte
	if br, ok := r.(*bytes.Reader); ok {
		b = make([]byte, br.Len())
		br.Read(b) // cannot fail: b holds what is left
	} else {
		var err error
		if b, err = io.ReadAll(r); err != nil {
			return nil, err
		}
	}
	// RFC 2231 section 5 lets an encoded word name a language after
	// its charset: "=?koi8-r*ru?B?...?=".
	cs, _, _ = strings.Cut(cs, "*")
	return bytes.NewReader(toUTF8(b, strings.ToLower(cs))), nil
}

// asciiCompatible reports whether ASCII bytes mean ASCII characters in a
// charset. The exceptions are the 7-bit stateful encodings (ISO-2022-JP,
// UTF-7, HZ), where ASCII bytes encode other characters, and the wide ones.
func asciiCompatible(cs string) bool {
	for _, p := range []string{"iso-2022", "csiso2022", "utf-7", "utf7", "utf-16", "utf-32", "ucs", "hz", "unicode"} {
		if strings.HasPrefix(cs, p) {
			return false
		}
	}
	return true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func latin1(b []byte) []byte {
	out, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return bytes.ToValidUTF8(b, []byte(" "))
	}
	return out
}

// decodeHeaderValue decodes RFC 2047 encoded words and makes raw 8-bit
// header bytes (RFC 6532 UTF-8, or legacy unlabeled 8-bit) valid UTF-8.
// A plain value is returned as it is.
//
// Where the value was valid UTF-8 before decoding, bytes that are not
// UTF-8 afterwards come from an encoded word labelled UTF-8 (or ASCII)
// that is not (a mailer's Latin-1 under the wrong label): only those
// bytes are read as windows-1252, so the other words keep their
// characters. A raw 8-bit value is one legacy charset throughout and is
// read as windows-1252 as a whole.
func decodeHeaderValue(v []byte) []byte {
	rawValid := false // known only where it matters
	if bytes.Contains(v, []byte("=?")) {
		rawValid = utf8.Valid(v)
		dec := mime.WordDecoder{CharsetReader: wordCharsetReader}
		if s, err := dec.DecodeHeader(repairWords(string(unfold(v)))); err == nil {
			v = []byte(c1AsWindows(s))
		}
	}
	if !utf8.Valid(v) {
		if rawValid {
			return invalidAsWindows(v)
		}
		return latin1(v)
	}
	return v
}

// invalidAsWindows returns b with each byte that is not part of a valid
// UTF-8 sequence read as windows-1252.
func invalidAsWindows(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/2)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			r = charmap.Windows1252.DecodeByte(b[0])
		}
		out = utf8.AppendRune(out, r)
		b = b[n:]
	}
	return out
}

// repairWords rewrites the encoded words of s that mime.WordDecoder
// would decode otherwise than mail clients do:
//
// The text of a "B" word that base64.StdEncoding, and so
// mime.WordDecoder, refuses becomes one it takes: the bytes of the
// alphabet up to the first "=", an incomplete last quantum of one byte
// dropped. Mail clients decode such words (padding left out is what some
// mailers write, a blank is left where a long word was folded), and an
// undecoded word yields only its charset name and its base64 text as
// words.
//
// A word labelled us-ascii (or another name of ASCII, see asciiLabel)
// is labelled utf-8: its ASCII is the same, and 8-bit bytes, which
// mime.WordDecoder made U+FFFD each (so "café" lost its letter and split
// the word), are then read as in a word labelled UTF-8 (see
// decodeHeaderValue), as mail clients show them.
// So is a word labelled utf8, which mime.WordDecoder does not know for
// UTF-8 and hands to wordCharsetReader, which reads a word (or run of
// words, see below) with any bad byte as windows-1252 throughout.
//
// Adjacent words in one charset (nothing but white space between them,
// which mime.WordDecoder drops) become one word holding the bytes of
// all, so that a character a mailer split between two words is decoded
// whole, as mail clients decode it. mime.WordDecoder converts each word
// by itself, which got this right only for the label "utf-8", whose
// bytes it copies as they are.
//
// A rewritten word is written in "B" form. Words are found as
// mime.WordDecoder finds them, and a "Q" word it refuses is left as it
// is; s is returned as it is when no word needs a rewrite.
func repairWords(s string) string {
	// A word, or a run of words decoded together: s[start:end], in the
	// charset label (us-ascii and utf8 read as utf-8).
	type word struct {
		start, end int
		label      string
		ok         bool // mime.WordDecoder decodes it, once repaired
		rewrite    bool // it must be written anew
		n          int  // words in a run
	}
	var out []byte      // nil until a word is rewritten
	copied := 0         // s[:copied] is accounted for in out
	var run word        // the current run, if run.n > 0
	var buf, tmp []byte // the decoded bytes of the run (and word); scratch
	flush := func(data []byte) {
		if run.n > 1 || run.rewrite {
			if out == nil {
				out = make([]byte, 0, len(s)+len(s)/2)
			}
			out = append(out, s[copied:run.start]...)
			out = append(append(append(out, "=?"...), run.label...), "?B?"...)
			out = base64.StdEncoding.AppendEncode(out, data)
			out = append(out, "?="...)
			copied = run.end
		}
		run.n = 0
	}
	pos := 0
	for {
		start := strings.Index(s[pos:], "=?")
		if start < 0 {
			break
		}
		label := pos + start + 2 // where the charset starts
		i := strings.IndexByte(s[label:], '?')
		if i < 0 {
			break
		}
		cur := label + i + 1
		if len(s) < cur+len("Q??=") || s[cur+1] != '?' {
			break
		}
		enc := s[cur]
		cur += 2
		j := strings.Index(s[cur:], "?=")
		if j < 0 {
			break
		}
		text := s[cur : cur+j]
		w := word{start: pos + start, end: cur + j + 2, label: s[label : label+i], n: 1}
		pos = w.end
		// Its bytes go after the run's, in buf[m:].
		m := len(buf)
		switch enc {
		case 'b', 'B':
			tmp = appendBase64Data(tmp[:0], text)
			buf = slices.Grow(buf, base64.RawStdEncoding.DecodedLen(len(tmp)))
			n, _ := base64.RawStdEncoding.Decode(buf[m:cap(buf)], tmp)
			buf = buf[:m+n]
			w.ok = true
			w.rewrite = !validBase64(text)
		case 'q', 'Q':
			buf, w.ok = appendQWord(buf, text)
		}
		if w.ok && (asciiLabel(w.label) || strings.EqualFold(w.label, "utf8")) {
			w.label, w.rewrite = "utf-8", true
		}
		if run.n > 0 && run.ok && w.ok && strings.EqualFold(run.label, w.label) &&
			strings.Trim(s[run.end:w.start], " \t\r\n") == "" {
			run.end, run.n = w.end, run.n+1
			continue
		}
		flush(buf[:m])
		buf = buf[:copy(buf, buf[m:])]
		run = w
	}
	flush(buf)
	if out == nil {
		return s
	}
	return string(append(out, s[copied:]...))
}

// appendQWord appends the bytes of the text of a "Q" encoded word to
// dst; ok is false, and dst as it was, where mime.WordDecoder refuses
// the text: an "=" without two hex digits after it, or a byte outside
// printable ASCII, tab, CR and LF.
func appendQWord(dst []byte, text string) (_ []byte, ok bool) {
	n0 := len(dst)
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '_':
			dst = append(dst, ' ')
		case c == '=':
			if i+2 >= len(text) || unhex(text[i+1]) < 0 || unhex(text[i+2]) < 0 {
				return dst[:n0], false
			}
			dst = append(dst, byte(unhex(text[i+1])<<4|unhex(text[i+2])))
			i += 2
		case c >= ' ' && c <= '~' || c == '\t' || c == '\r' || c == '\n':
			dst = append(dst, c)
		default:
			return dst[:n0], false
		}
	}
	return dst, true
}

// validBase64 reports whether base64.StdEncoding decodes text: whole
// quanta of the alphabet, padding only at the end.
func validBase64(text string) bool {
	if len(text)%4 != 0 {
		return false
	}
	for k := 0; k < len(text); k++ {
		c := text[k]
		if c == '=' {
			rest := text[k:]
			return len(rest) <= 2 && strings.Trim(rest, "=") == ""
		}
		if !isBase64Byte(c) {
			return false
		}
	}
	return true
}

// appendBase64Data appends to dst the bytes of s in the base64 alphabet
// up to its first "=" (padding ends the data; anything after it is
// junk), without a lone last character, which carries less than a byte:
// what a lenient decoder, like a mail client, decodes.
func appendBase64Data[T string | []byte](dst []byte, s T) []byte {
	n0 := len(dst)
	for i := 0; i < len(s) && s[i] != '='; i++ {
		if isBase64Byte(s[i]) {
			dst = append(dst, s[i])
		}
	}
	if (len(dst)-n0)%4 == 1 {
		dst = dst[:len(dst)-1]
	}
	return dst
}

func isBase64Byte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// isUTF7 reports whether a charset name (lower case) is UTF-7, under the
// names mail clients know it by. golang.org/x/text has no UTF-7.
func isUTF7(cs string) bool {
	switch cs {
	case "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7", "x-unicode-2-0-utf-7":
		return true
	}
	return false
}

// decodeUTF7 decodes UTF-7 (RFC 2152) as mail clients do: "+" starts a
// run of modified base64 (no padding) holding UTF-16, which ends at the
// first byte outside the base64 alphabet; a "-" that ends a run is
// dropped, and "+-" is "+". A lone surrogate and a byte above ASCII are
// U+FFFD, so the result is valid UTF-8. Linear in len(b).
func decodeUTF7(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/2)
	for i := 0; i < len(b); {
		c := b[i]
		if c >= utf8.RuneSelf {
			out = utf8.AppendRune(out, utf8.RuneError)
			i++
			continue
		}
		if c != '+' {
			out = append(out, c)
			i++
			continue
		}
		i++
		if i < len(b) && b[i] == '-' {
			out = append(out, '+')
			i++
			continue
		}
		var bits uint32 // the decoded bits not yet used, the last n of them
		n := 0
		var high rune // a high surrogate waiting for its low one
		for ; i < len(b) && isBase64Byte(b[i]); i++ {
			bits = bits<<6 | uint32(base64Value(b[i]))
			n += 6
			if n < 16 {
				continue
			}
			n -= 16
			u := rune(bits >> n & 0xffff)
			switch {
			case u >= 0xd800 && u < 0xdc00:
				if high != 0 {
					out = utf8.AppendRune(out, utf8.RuneError)
				}
				high = u
				continue
			case u >= 0xdc00 && u < 0xe000:
				if high == 0 {
					u = utf8.RuneError
				} else {
					u = utf16.DecodeRune(high, u)
				}
			case high != 0:
				out = utf8.AppendRune(out, utf8.RuneError)
			}
			high = 0
			out = utf8.AppendRune(out, u)
		}
		if high != 0 {
			out = utf8.AppendRune(out, utf8.RuneError)
		}
		if i < len(b) && b[i] == '-' {
			i++
		}
	}
	return out
}

// base64Value returns the value of a byte of the base64 alphabet.
func base64Value(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A'
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26
	case c >= '0' && c <= '9':
		return c - '0' + 52
	case c == '+':
		return 62
	}
	return 63
}
