package classifier

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/text/encoding/charmap"
)

// walker collects the tokens of one message. It is used once and thrown
// away; every loop in it is bounded by the size of the (capped) input or by
// the part and depth caps.
type walker struct {
	opts      TokenizerOptions
	set       map[string]struct{}
	parts     int
	truncated bool
	buf       []byte // scratch for building a token without allocating
	bogo      bool   // DialectBogofilter
}

// add records one token, respecting the token cap.
func (w *walker) add(tok string) {
	if _, ok := w.set[tok]; ok {
		return
	}
	if len(w.set) >= w.opts.MaxTokens {
		w.truncated = true
		return
	}
	w.set[tok] = struct{}{}
}

// addBuf adds the token held in w.buf. The map lookup with string(w.buf)
// does not allocate; only a new token is copied into a string.
func (w *walker) addBuf() {
	if _, ok := w.set[string(w.buf)]; ok {
		return
	}
	if len(w.set) >= w.opts.MaxTokens {
		w.truncated = true
		return
	}
	w.set[string(w.buf)] = struct{}{}
}

// field is one header field: lower-cased name and unfolded raw value.
type field struct {
	name    string
	value   string
	rawName string // as written, for the bogofilter dialect
}

// message tokenises a message (top level or message/rfc822 part): its header
// fields, then its body as a MIME entity.
func (w *walker) message(raw []byte, depth int, top bool) {
	fields, body := parseHeader(raw)
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
			if f.name == "subject" {
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
	ctype, params := contentType(fields)
	cte := strings.ToLower(strings.TrimSpace(headerGet(fields, "content-transfer-encoding")))
	if !w.bogo {
		w.add("ctype:" + ctype)
		if cte != "" && cte != "7bit" {
			w.add("cte:" + cte)
		}
	}
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		w.multipart(body, params["boundary"], depth)
	case ctype == "message/rfc822" || ctype == "message/global":
		w.message(decodeTransfer(cte, body), depth+1, false)
	case strings.HasPrefix(ctype, "text/"):
		cs := strings.ToLower(params["charset"])
		if cs != "" && cs != "us-ascii" && cs != "utf-8" && !w.bogo {
			w.add("charset:" + cs)
		}
		text := toUTF8(decodeTransfer(cte, body), cs)
		switch {
		case w.bogo && ctype == "text/html":
			w.bogoHTML(text)
		case ctype == "text/html":
			w.html(text)
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
			w.add("mime:noboundary")
		}
		w.text(toUTF8(body, ""))
		return
	}
	mr := textproto.NewMultipartReader(bytes.NewReader(body), boundary)
	n := 0
	for {
		if w.parts >= w.opts.MaxParts {
			w.truncated = true
			return
		}
		p, err := mr.NextPart()
		if err != nil {
			if err != io.EOF && !w.bogo {
				w.add("mime:broken")
			}
			break
		}
		// The whole message is already capped in memory, so reading a
		// part fully is bounded by that cap.
		pb, _ := io.ReadAll(p)
		n++
		pf := headerFields(p.Header)
		if w.bogo {
			for _, f := range pf {
				w.bogoHeader(f, true)
			}
		}
		w.entity(pf, pb, depth+1)
	}
	if n == 0 {
		w.text(toUTF8(body, ""))
	}
}

// attachmentName adds the tokens of a non-text part's file name.
func (w *walker) attachmentName(fields []field, ctParams map[string]string) {
	name := ctParams["name"]
	if d := headerGet(fields, "content-disposition"); d != "" {
		if _, p, err := mime.ParseMediaType(d); err == nil && p["filename"] != "" {
			name = p["filename"]
		}
	}
	if name == "" {
		return
	}
	name = decodeHeaderValue(name)
	w.words(name, "name:")
	if i := strings.LastIndexByte(name, '.'); i >= 0 && len(name)-i <= 8 {
		w.add("ext:" + strings.ToLower(name[i+1:]))
	}
}

// parseHeader splits raw into header fields and body. It is lenient where
// real mail is broken: LF or CRLF line ends, bare CR line ends when the
// message has no LF at all, 8-bit bytes, and a line that is neither a field
// nor a continuation, which (as Postfix's cleanup does) starts the body.
func parseHeader(raw []byte) ([]field, []byte) {
	if bytes.IndexByte(raw, '\n') < 0 && bytes.IndexByte(raw, '\r') >= 0 {
		raw = bytes.ReplaceAll(raw, []byte("\r"), []byte("\n"))
	}
	var fields []field
	var cur []byte
	flush := func() {
		if cur == nil {
			return
		}
		i := bytes.IndexByte(cur, ':')
		name := string(bytes.TrimSpace(cur[:i]))
		fields = append(fields, field{
			name:    strings.ToLower(name),
			value:   string(bytes.TrimSpace(cur[i+1:])),
			rawName: name,
		})
		cur = nil
	}
	rest := raw
	for len(rest) > 0 {
		line := rest
		next := []byte(nil)
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, next = rest[:i], rest[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			flush()
			return fields, next
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur != nil {
				cur = append(cur, ' ')
				cur = append(cur, bytes.TrimSpace(line)...)
				rest = next
				continue
			}
			// A continuation with nothing to continue: not a header.
			flush()
			return fields, rest
		}
		if !isFieldLine(line) {
			flush()
			return fields, rest
		}
		flush()
		cur = append([]byte(nil), line...)
		rest = next
	}
	flush()
	return fields, nil
}

// isFieldLine reports whether line starts with a field name and a colon
// (RFC 5322 section 2.2: printable ASCII except colon; some mailers put
// spaces before the colon, which is tolerated).
func isFieldLine(line []byte) bool {
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

// headerFields converts a go-message part header to fields.
func headerFields(h textproto.Header) []field {
	var out []field
	fs := h.Fields()
	for fs.Next() {
		out = append(out, field{name: strings.ToLower(fs.Key()), value: strings.TrimSpace(fs.Value()), rawName: fs.Key()})
	}
	return out
}

func headerGet(fields []field, name string) string {
	for _, f := range fields {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// contentType returns the media type of an entity, lower-cased, and its
// parameters. A missing or unparsable type is text/plain (RFC 2045 section
// 5.2), so a broken header still gets its body read as text.
func contentType(fields []field) (string, map[string]string) {
	v := headerGet(fields, "content-type")
	if v == "" {
		return "text/plain", map[string]string{}
	}
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
// prefix, an unknown encoding is taken as is.
func decodeTransfer(cte string, body []byte) []byte {
	switch cte {
	case "base64":
		return decodeBase64Lenient(body)
	case "quoted-printable":
		out, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if len(out) == 0 && len(body) > 0 {
			return body
		}
		return out
	default:
		return body
	}
}

// decodeBase64Lenient decodes base64 ignoring every byte outside the
// alphabet, and drops an incomplete final quantum instead of failing.
func decodeBase64Lenient(body []byte) []byte {
	clean := make([]byte, 0, len(body))
	for _, c := range body {
		if c == '=' {
			// Padding ends the data; anything after it is junk.
			break
		}
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			clean = append(clean, c)
		}
	}
	// A single trailing character carries less than a byte.
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean)
	return out[:n]
}

// toUTF8 converts text in the named charset to UTF-8. An unknown or missing
// charset is best effort: valid UTF-8 is kept, anything else is read as
// windows-1252 (a superset of ISO-8859-1's printable range, and what most
// unlabeled 8-bit mail is), so the message is never dropped.
func toUTF8(b []byte, cs string) string {
	switch cs {
	case "", "us-ascii", "utf-8", "utf8":
		if utf8.Valid(b) {
			return string(b)
		}
		return latin1(b)
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		if utf8.Valid(b) {
			return string(b)
		}
		return latin1(b)
	}
	out, err := io.ReadAll(r)
	if err != nil && len(out) == 0 {
		return latin1(b)
	}
	return string(out)
}

func latin1(b []byte) string {
	out, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), " ")
	}
	return string(out)
}

// decodeHeaderValue decodes RFC 2047 encoded words and makes raw 8-bit
// header bytes (RFC 6532 UTF-8, or legacy unlabeled 8-bit) valid UTF-8.
func decodeHeaderValue(v string) string {
	if strings.Contains(v, "=?") {
		dec := mime.WordDecoder{CharsetReader: charset.Reader}
		if s, err := dec.DecodeHeader(v); err == nil {
			v = s
		}
	}
	if !utf8.ValidString(v) {
		return latin1([]byte(v))
	}
	return v
}
