package senders

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/filters"
)

// LineError is a line of a rules file that cannot be used.
type LineError struct {
	File   string
	Line   int
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

// ParseError lists the malformed lines of the rules files, up to
// maxLineErrors of them.
type ParseError struct {
	Lines []*LineError
	// More counts the malformed lines beyond those listed.
	More int
}

// maxLineErrors bounds the errors reported at once: enough to fix a
// typo or two in one go, few enough for one log line.
const maxLineErrors = 20

func (e *ParseError) Error() string {
	parts := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		parts[i] = l.Error()
	}
	s := strings.Join(parts, "; ")
	if e.More > 0 {
		s += fmt.Sprintf("; and %d more malformed lines", e.More)
	}
	return s
}

// Note is a line that is read but not used: a Sendmail entry for another
// purpose, an entry hidden by an earlier one with the same key, or a rule
// that can never match.
type Note struct {
	File string
	Line int
	Text string
	// NoEffect marks a rule written to act that never does (hidden, or
	// never compared): the filter warns of it. Other notes are lines
	// skipped on purpose, such as Sendmail's To: entries.
	NoEffect bool
}

func (n Note) String() string { return fmt.Sprintf("%s:%d: %s", n.File, n.Line, n.Text) }

// Source is the text of one rules file.
type Source struct {
	// Name is the file name used in messages.
	Name string
	Data []byte
	// Scope is the subjects of the file's untagged rules.
	Scope Scope
}

// tagScopes are the tags sluice uses: Sendmail's From: and Connect: and
// its own.
var tagScopes = map[string]Scope{
	"from":       ScopeOf(MailFrom),
	"connect":    ScopeOf(ClientName),
	"headerfrom": ScopeOf(HeaderFrom),
	"helo":       ScopeOf(Helo),
}

// foreignTags are tags of Sendmail's access database that concern other
// checks than the sender's (recipients, TLS, rates, AUTH...); their lines
// are skipped, so that an existing access file can be used as it is.
var foreignTags = map[string]bool{
	"to": true, "spam": true, "greetpause": true, "clientrate": true, "clientconn": true,
	"authinfo": true, "tls_srv": true, "tls_clt": true, "tls_rcpt": true, "try_tls": true,
	"srv_features": true, "clt_features": true, "tls_srv_features": true, "tls_clt_features": true,
	"certissuer": true, "certsubject": true, "qgrp": true, "bcc": true, "compat": true,
	"ipv6": true, "mta-sts": true, "dane": true,
}

// cutTag splits "Tag:rest" into the tag and the rest; a tag is a letter
// followed by letters, digits, '_' and '-'.
func cutTag(key string) (tag, rest string, ok bool) {
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '-'):
		case i > 0 && c == ':':
			return key[:i], key[i+1:], true
		default:
			return "", key, false
		}
	}
	return "", key, false
}

// maxLine bounds a line of a rules file.
const maxLine = 64 << 10

// parseSource reads the rules of one file, appending them to rules,
// malformed lines to perr and skipped ones to notes.
func parseSource(src Source, rules []Rule, perr *ParseError, notes []Note) ([]Rule, []Note) {
	data := bytes.TrimPrefix(src.Data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if looksUTF16(data) {
		// Text to whoever saved it (Windows Notepad's "Unicode",
		// PowerShell 5's ">"): "a binary file" would send them
		// looking for the wrong mistake.
		perr.add(&LineError{File: src.Name, Line: 1,
			Reason: "UTF-16 text, not UTF-8: save the file as UTF-8 (in PowerShell: Out-File -Encoding utf8)"})
		return rules, notes
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		// No text file holds a NUL; a list of the lines of a hash
		// table, each wrong in its own way, would hide the mistake.
		perr.add(&LineError{File: src.Name, Line: bytes.Count(data[:i], []byte("\n")) + 1,
			Reason: "a NUL byte: a binary file, not a rules file (for Sendmail's access.db give the text file makemap reads, such as /etc/mail/access)"})
		return rules, notes
	}
	if rules == nil {
		rules = make([]Rule, 0, bytes.Count(data, []byte("\n"))+1)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		// A line that is not UTF-8 (an access file kept in Latin-1) is
		// read as windows-1252, as mail is (filters.AsShown): its key
		// then names the domain its writer sees, and no rule carries
		// bytes that are not UTF-8 into the log, the seen file or the
		// pattern label of the WATCH counter, which the Prometheus
		// client refuses with a panic.
		line := filters.AsShown(strings.TrimSpace(sc.Text()))
		if line == "" || line[0] == '#' {
			continue
		}
		r, note, reason := parseLine(line, src.Scope)
		switch {
		case reason != "":
			perr.add(&LineError{File: src.Name, Line: n, Reason: reason})
		case note != "":
			notes = append(notes, Note{File: src.Name, Line: n, Text: note})
		default:
			r.File, r.Line = src.Name, n
			rules = append(rules, r)
		}
	}
	if err := sc.Err(); err != nil {
		perr.add(&LineError{File: src.Name, Line: n + 1, Reason: fmt.Sprintf("line longer than %d bytes", maxLine)})
	}
	return rules, notes
}

// looksUTF16 reports whether data is UTF-16 text: it starts with a
// UTF-16 byte order mark, or its first characters are ASCII with a NUL
// byte before or after each, as UTF-16 writes them. A binary file, such
// as Sendmail's access.db, starts otherwise (a Berkeley DB file with
// pairs of NULs).
func looksUTF16(data []byte) bool {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return true
	}
	n := min(len(data), 64) &^ 1
	if n < 4 {
		return false
	}
	text := func(c byte) bool { return c == '\t' || c == '\n' || c == '\r' || c >= ' ' && c <= '~' }
	le, be := true, true
	for i := 0; i < n; i += 2 {
		le = le && text(data[i]) && data[i+1] == 0
		be = be && data[i] == 0 && text(data[i+1])
	}
	return le || be
}

func (e *ParseError) add(l *LineError) {
	if len(e.Lines) < maxLineErrors {
		e.Lines = append(e.Lines, l)
		return
	}
	e.More++
}

// parseLine parses "KEY VALUE". It returns the rule, or a note saying why
// the line is skipped, or the reason it is malformed.
func parseLine(line string, fileScope Scope) (r Rule, note, reason string) {
	r, note, reason = parseFields(line, fileScope)
	if reason != "" {
		// A line pasted from a web page or a word processor may hold
		// a blank that looks like a space and is none: the reason
		// alone ("missing action") would puzzle.
		if b, ok := oddBlank(line); ok {
			reason += fmt.Sprintf(" (the line holds %U, a blank that is not a space or a tab)", b)
		}
	}
	return r, note, reason
}

// oddBlank returns the first character of line that shows as a blank,
// or as nothing, but is neither a space nor a tab.
func oddBlank(line string) (rune, bool) {
	for _, c := range line {
		if c >= utf8.RuneSelf && (unicode.IsSpace(c) || c == '\u200b' || c == '\u2060' || c == '\ufeff') {
			return c, true
		}
	}
	return 0, false
}

func parseFields(line string, fileScope Scope) (r Rule, note, reason string) {
	key, value, reason := splitLine(line)
	if reason != "" {
		return r, "", reason
	}
	r.Key, r.Value = key, value
	r.Scope = fileScope
	tag, body, tagged := cutTag(key)
	if tagged {
		lt := strings.ToLower(tag)
		switch {
		case foreignTags[lt]:
			return r, fmt.Sprintf("skipped: %s: entries are not about senders", tag), ""
		case tagScopes[lt] != 0:
			r.Scope = tagScopes[lt]
			r.Tagged = true
		default:
			return r, "", fmt.Sprintf("unknown tag %q (sluice knows From:, HeaderFrom:, Helo: and Connect:, and skips Sendmail's To:, Spam:, TLS and rate tags)", tag+":")
		}
	}
	if body == "" {
		if f := strings.Fields(value); len(f) > 1 {
			return r, "", fmt.Sprintf("missing key after the tag (write it without a blank: %s%s)", key, f[0])
		}
		return r, "", "missing key after the tag"
	}
	if isIPKey(body) {
		return r, "skipped: IP address entries are not used (sluice matches names)", ""
	}
	if reason := parseKey(&r, body); reason != "" {
		return r, "", reason
	}
	if reason := parseValue(&r, value); reason != "" {
		return r, "", reason
	}
	if r.kind == keyNull && !r.Scope.Has(MailFrom) {
		return r, "", "<> is the null envelope sender: it needs the From: tag or a file that matches mail_from"
	}
	if r.kind == keyNull && r.Action == Watch {
		// It would be accepted and never heard of again.
		return r, "", "<> WATCH never reports anything: WATCH reports new domains, and the null sender has none"
	}
	return r, "", ""
}

// neverMatches says why a rule can never match, "" when it may. Such a
// rule is not refused: Sendmail loads it, and an access file Sendmail
// takes must not stop sluice; the filter warns of it instead.
func neverMatches(r *Rule) string {
	hostNames := ScopeOf(Helo, ClientName)
	switch {
	case r.Scope&^hostNames == 0 && (r.kind == keyAddress || r.kind == keyPlusAddress || r.kind == keyLocal || r.kind == keyPlusLocal):
		// MatchName compares these keys with addresses only.
		return fmt.Sprintf("%s never matches: a key with @ is compared with mail addresses only, and this rule applies to host names only (%s)", r.Key, r.Scope)
	case r.Scope == ScopeOf(ClientName) && r.kind == keyDomain && r.norm == "unknown":
		// Check does not look the client name "unknown" up.
		return fmt.Sprintf(`%s never matches: "unknown" is Postfix's word for a client without a verified reverse name, which sluice does not compare as a name (Postfix's reject_unknown_client_hostname refuses such clients)`, r.Key)
	}
	return ""
}

// splitLine splits a line at the first blank outside a quoted local part.
// A regular expression key ends at the first blank: write \s for one.
func splitLine(line string) (key, value, reason string) {
	_, body, _ := cutTag(line)
	inQuote := false
	regex := strings.HasPrefix(body, "/")
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && inQuote:
			i++
		case c == '"' && !regex:
			inQuote = !inQuote
		case (c == ' ' || c == '\t') && !inQuote:
			value = strings.TrimSpace(line[i:])
			if value == "" || value[0] == '#' {
				return "", "", "missing action after the key"
			}
			return line[:i], value, ""
		}
	}
	if inQuote {
		return "", "", "unterminated quote in the key"
	}
	return "", "", "missing action after the key"
}

// isIPKey reports whether a key is an IP address or network, as Sendmail
// writes them: "192.0.2.1", "192.0.2", "10", or an "IPv6:" key.
func isIPKey(s string) bool {
	if strings.HasPrefix(strings.ToLower(s), "ipv6:") {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}

// parseKey classifies a key and puts it in compared form.
func parseKey(r *Rule, k string) string {
	switch {
	case k == "<>":
		r.kind = keyNull
		return ""
	case len(k) >= 2 && k[0] == '/' && k[len(k)-1] == '/':
		if len(k) == 2 {
			return "empty regular expression"
		}
		r.kind = keyRegex
		r.norm = k[1 : len(k)-1]
		re, err := compileRegex(r.norm)
		if err != nil {
			return fmt.Sprintf("bad regular expression %s: %v", k, err)
		}
		r.re = re
		return ""
	case k[0] == '/':
		return fmt.Sprintf("regular expression %q must end with / (a blank ends the key: write \\s for one)", k)
	case strings.ContainsAny(k, "*?") && !strings.Contains(k, "@"):
		g, reason := normGlob(k)
		if reason != "" {
			return reason
		}
		r.kind, r.norm = keyGlob, g
		return ""
	case strings.Contains(k, "@"):
		return parseAddressKey(r, k)
	}
	sub := false
	if k[0] == '.' {
		sub, k = true, k[1:]
	}
	d, reason := normDomainKey(k)
	if reason != "" {
		return reason
	}
	r.kind, r.norm = keyDomain, d
	if sub {
		r.kind = keySubdomains
	}
	return ""
}

// parseAddressKey parses "user@domain", "user+*@domain", "user@" and
// "user+*@".
func parseAddressKey(r *Rule, k string) string {
	local, domain, ok := splitAddress(k)
	if !ok {
		return fmt.Sprintf("bad address %q", k)
	}
	if local == "" {
		return fmt.Sprintf("address %q has no local part (for a whole domain write the domain alone)", k)
	}
	local = localForm(local)
	plus := false
	if strings.HasSuffix(local, "+*") && len(local) > 2 {
		plus, local = true, strings.TrimSuffix(local, "+*")
	}
	if strings.ContainsAny(local, "*?") && !plus {
		return fmt.Sprintf("address %q: patterns match domain names only; an address key is compared exactly (user+*@ is the one wildcard allowed)", k)
	}
	r.local = local
	if domain == "" {
		r.kind = keyLocal
		if plus {
			r.kind = keyPlusLocal
		}
		return ""
	}
	d, reason := normDomainKey(domain)
	if reason != "" {
		return reason
	}
	r.norm = d
	r.kind = keyAddress
	if plus {
		r.kind = keyPlusAddress
	}
	return ""
}

// normDomainKey checks a domain written in a rules file and returns it in
// compared form.
func normDomainKey(d string) (string, string) {
	orig := d
	d = strings.TrimSuffix(d, ".")
	if d == "" || strings.Contains(d, "..") || strings.HasPrefix(d, ".") {
		return "", fmt.Sprintf("bad domain %q: empty label", orig)
	}
	if strings.HasPrefix(d, "[") {
		if !strings.HasSuffix(d, "]") {
			return "", fmt.Sprintf("bad address literal %q", orig)
		}
		return canonicalLiteral(d), ""
	}
	n := parseDomain(d)
	if n.raw {
		_, err := idnaProfile.ToASCII(d)
		return "", fmt.Sprintf("bad domain %q: %v", orig, err)
	}
	if strings.Contains(n.Domain, "xn--") {
		// Punycode written by hand: check that it decodes, or the rule
		// could never match the name it was meant for.
		if _, err := idnaProfile.ToUnicode(n.Domain); err != nil {
			return "", fmt.Sprintf("bad domain %q: %v", orig, err)
		}
	}
	if reason := checkDomainChars(n.Domain, false); reason != "" {
		return "", fmt.Sprintf("bad domain %q: %s", orig, reason)
	}
	return n.Domain, ""
}

// checkDomainChars accepts the characters of host names as found in mail
// (letters, digits, hyphen, underscore, dot), and * and ? in globs.
func checkDomainChars(d string, glob bool) string {
	if len(d) > 253 {
		return "longer than 253 characters"
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		case glob && (c == '*' || c == '?'):
		default:
			return fmt.Sprintf("character %q is not allowed in a domain name", c)
		}
	}
	return ""
}

// normGlob checks a glob and returns it in compared form: lower case,
// labels without wildcard in punycode, runs of * collapsed.
func normGlob(g string) (string, string) {
	orig := g
	g = strings.TrimSuffix(g, ".")
	labels := strings.Split(g, ".")
	for i, l := range labels {
		if l == "" {
			return "", fmt.Sprintf("bad pattern %q: empty label", orig)
		}
		if isASCII(l) {
			labels[i] = lower(l)
			continue
		}
		if strings.ContainsAny(l, "*?") {
			return "", fmt.Sprintf("bad pattern %q: label %q mixes a wildcard with non-ASCII letters; write it in punycode or use a regular expression", orig, l)
		}
		a, err := idnaProfile.ToASCII(l)
		if err != nil {
			return "", fmt.Sprintf("bad pattern %q: %v", orig, err)
		}
		labels[i] = a
	}
	g = strings.Join(labels, ".")
	for strings.Contains(g, "**") {
		g = strings.ReplaceAll(g, "**", "*")
	}
	if reason := checkDomainChars(g, true); reason != "" {
		return "", fmt.Sprintf("bad pattern %q: %s", orig, reason)
	}
	return g, ""
}

// upperASCII upper-cases the ASCII letters of s and leaves every other
// byte as it is. Actions are ASCII words, compared without case as
// Sendmail compares them; strings.ToUpper would also take "dıscard"
// (dotless i) for DISCARD, and change the length of the text before the
// reason of a "QUARANTıNE:" that the reason is then cut from.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// parseValue parses the right-hand side: an action.
func parseValue(r *Rule, v string) string {
	word, rest := v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		word, rest = v[:i], strings.TrimSpace(v[i:])
	}
	upper := upperASCII(word)
	switch {
	case strings.HasPrefix(upperASCII(v), "ERROR:"):
		return parseError(r, v[len("ERROR:"):])
	case bareError(v):
		// Sendmail's older form of ERROR: ("### any text", optionally
		// quoted), deprecated there but still read: an access file
		// that has it must load, and mean what it means to Sendmail.
		return parseError(r, v)
	case strings.HasPrefix(upper, "QUARANTINE:"):
		reason, reason2 := unquoteValue(v[len("QUARANTINE:"):])
		if reason2 != "" {
			return reason2
		}
		if reason == "" {
			return "QUARANTINE: needs a reason, e.g. QUARANTINE:suspicious sender"
		}
		r.Action, r.Reason = Quarantine, reason
		return ""
	}
	var a Action
	switch upper {
	case "OK", "RELAY":
		a = OK
	case "SKIP":
		a = Skip
	case "REJECT":
		a = Reject
	case "DISCARD":
		a = Discard
	case "WATCH":
		a = Watch
	default:
		return fmt.Sprintf("unknown action %q (want OK, RELAY, SKIP, REJECT, DISCARD, ERROR:\"5xx text\", QUARANTINE:reason or WATCH)", word)
	}
	if rest != "" && rest[0] != '#' {
		return fmt.Sprintf("unexpected text %q after %s (a comment starts with #)", rest, upper)
	}
	r.Action = a
	return ""
}

// bareError reports whether a value is a reply without ERROR:, a
// three-digit code and its text ("550 Go away" or "\"550 Go away\"").
func bareError(v string) bool {
	t := strings.TrimPrefix(v, `"`)
	if len(t) < 4 || t[3] != ' ' && t[3] != '\t' {
		return false
	}
	for i := 0; i < 3; i++ {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	return true
}

// unquoteValue returns the text of a value that may be in double quotes;
// after the closing quote only a comment may follow.
func unquoteValue(v string) (string, string) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, `"`) {
		return v, ""
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			i++
			if i < len(v) {
				b.WriteByte(v[i])
			}
		case '"':
			rest := strings.TrimSpace(v[i+1:])
			if rest != "" && rest[0] != '#' {
				return "", fmt.Sprintf("unexpected text %q after the closing quote", rest)
			}
			return b.String(), ""
		default:
			b.WriteByte(c)
		}
	}
	return "", "unterminated quote"
}

// parseError parses what follows ERROR: in Sendmail's forms
// `"550 text"`, `550 text`, `5.7.1:550 text` and `"5.7.1:550 text"`; the
// text may also start with an enhanced status code ("550 5.7.1 text").
func parseError(r *Rule, v string) string {
	text, reason := unquoteValue(v)
	if reason != "" {
		return "ERROR: " + reason
	}
	// Sendmail reads the value as words: a tab between the code and
	// the text, as in a file aligned with tabs, is a blank like a
	// space, and the client gets a space (bareError takes "550<TAB>text"
	// for a reply too).
	text = strings.TrimSpace(strings.ReplaceAll(text, "\t", " "))
	dsn := ""
	if first, rest, ok := strings.Cut(text, ":"); ok && strings.Count(first, ".") == 2 && !strings.ContainsAny(first, " \t") {
		dsn, text = first, rest
	}
	codeStr, msg, _ := strings.Cut(text, " ")
	code, err := strconv.Atoi(codeStr)
	if err != nil || len(codeStr) != 3 {
		return fmt.Sprintf("ERROR:%s: want a reply code and text, e.g. ERROR:\"550 Sender banned\" or ERROR:5.7.1:550 Sender banned", v)
	}
	msg = strings.TrimSpace(msg)
	if dsn != "" {
		msg = dsn + " " + msg
	}
	rep, err := filters.ParseReply(codeStr + " " + msg)
	if err != nil {
		return fmt.Sprintf("ERROR:%s: %v", v, err)
	}
	switch code / 100 {
	case 5:
		r.Action = Reject
	case 4:
		r.Action = Tempfail
	default:
		return fmt.Sprintf("ERROR:%s: reply code %d must be 4xx or 5xx", v, code)
	}
	r.Reply = &rep
	return ""
}
