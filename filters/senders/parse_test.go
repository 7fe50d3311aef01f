package senders

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const accessFile = "../../testdata/senders/access"

func loadAccess(t *testing.T) *Rules {
	t.Helper()
	rs, err := Load([]File{{Path: accessFile, Scope: DefaultScope}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// ruleAt returns the rule written on the given line of the access file.
func ruleAt(t *testing.T, rs *Rules, line int) *Rule {
	t.Helper()
	for i := range rs.rules {
		if rs.rules[i].Line == line {
			return &rs.rules[i]
		}
	}
	t.Fatalf("no rule from line %d", line)
	return nil
}

// The sample access file is written as administrators write them:
// comments, blank lines, tabs and spaces, quotes, Sendmail entries for
// other purposes, and every action.
func TestParseAccessFile(t *testing.T) {
	rs := loadAccess(t)
	mf := ScopeOf(MailFrom)
	tests := []struct {
		line   int
		key    string
		action Action
		reply  string // "" for none
		scope  Scope
		tagged bool
	}{
		{6, "Connect:localhost.localdomain", OK, "", ScopeOf(ClientName), true},
		{7, "Connect:localhost", OK, "", ScopeOf(ClientName), true},
		{16, "linkedinmail.com", Discard, "", DefaultScope, false},
		{17, "linkedin-mail.com", Reject, "550 Sender banned. Please use legitimate domain to send email.", DefaultScope, false},
		{18, "adpmail.com", Reject, "550 5.7.1 Sender banned", DefaultScope, false},
		{19, "From:linkedin.biz", Reject, "", mf, true},
		{20, "spam.example", Reject, "", DefaultScope, false},
		{21, "ok.spam.example", OK, "", DefaultScope, false},
		{22, ".subs.example", Reject, "", DefaultScope, false},
		{23, "Slow.Example.", Tempfail, "451 4.7.1 Greylisted, try again later", DefaultScope, false},
		{24, "hold.example", Quarantine, "", DefaultScope, false},
		{25, "relay.example", OK, "", DefaultScope, false},
		{26, "skip.example", Skip, "", DefaultScope, false},
		{29, `"john doe"@quoted.example`, Reject, "", DefaultScope, false},
		{30, "ceo@partner.example", OK, "", DefaultScope, false},
		{32, "newsletter+*@shop.example", Discard, "", DefaultScope, false},
		{33, "abuse@", OK, "", DefaultScope, false},
		{34, "From:<>", Reject, "550 5.7.1 We send no mail, so we take no bounces", mf, true},
		{37, "emalsrv.*", Watch, "", DefaultScope, false},
		{39, "*.linkedinmail.*", Reject, "", DefaultScope, false},
		{41, `/^(emalsrv|complains)\./`, Reject, "550 5.7.1 Phishing campaign", DefaultScope, false},
		{42, "HeaderFrom:paypa1.example", Reject, "", ScopeOf(HeaderFrom), true},
		{43, "Helo:friend.example", OK, "", ScopeOf(Helo), true},
		{46, "bücher.test", Reject, "", DefaultScope, false},
	}
	for _, tt := range tests {
		r := ruleAt(t, rs, tt.line)
		reply := ""
		if r.Reply != nil {
			reply = r.Reply.String()
		}
		if r.Key != tt.key || r.Action != tt.action || reply != tt.reply || r.Scope != tt.scope || r.Tagged != tt.tagged {
			t.Errorf("line %d: got key %q action %s reply %q scope %s tagged %v, want %q %s %q %s %v",
				tt.line, r.Key, r.Action, reply, r.Scope, r.Tagged, tt.key, tt.action, tt.reply, tt.scope, tt.tagged)
		}
		if r.File != accessFile {
			t.Errorf("line %d: file %q", tt.line, r.File)
		}
	}
	if got := ruleAt(t, rs, 24).Reason; got != "needs a look" {
		t.Errorf("QUARANTINE reason %q", got)
	}
	if got := ruleAt(t, rs, 23).norm; got != "slow.example" {
		t.Errorf("Slow.Example. compared as %q", got)
	}
	if got := ruleAt(t, rs, 46).norm; got != "xn--bcher-kva.test" {
		t.Errorf("bücher.test compared as %q, want punycode", got)
	}
	if got := ruleAt(t, rs, 29).local; got != "john doe" {
		t.Errorf("quoted local part compared as %q", got)
	}

	// Lines for other Sendmail checks are skipped, each noted.
	skipped := map[int]string{8: "IP address", 9: "GreetPause", 10: "ClientRate", 11: "To:", 12: "IP address", 13: "IPv6"}
	notes := map[int]string{}
	for _, n := range rs.Notes() {
		if n.File != accessFile {
			t.Errorf("note %v: wrong file", n)
		}
		notes[n.Line] = n.Text
	}
	for line, want := range skipped {
		if !strings.Contains(notes[line], want) {
			t.Errorf("line %d: note %q, want one mentioning %q", line, notes[line], want)
		}
	}
	if len(notes) != len(skipped) {
		t.Errorf("notes %v, want exactly lines %v", notes, skipped)
	}
	if rs.Len() != 29 {
		t.Errorf("%d rules, want 29 (46 lines less 7 comments, 4 blank and 6 skipped)", rs.Len())
	}
}

func TestParseLineForms(t *testing.T) {
	tests := []struct {
		line   string
		key    string
		action Action
		reply  string
	}{
		{"example.com REJECT", "example.com", Reject, ""},
		{"example.com\treject", "example.com", Reject, ""},
		{"example.com   DISCARD   # trailing comment", "example.com", Discard, ""},
		{`example.com ERROR:"550 Go away"`, "example.com", Reject, "550 Go away"},
		{`example.com ERROR:"550 Go away" # why`, "example.com", Reject, "550 Go away"},
		{`example.com ERROR:550 Go away # this is text, not a comment`, "example.com", Reject, "550 Go away # this is text, not a comment"},
		{"example.com ERROR:5.7.1:550 Go away", "example.com", Reject, "550 5.7.1 Go away"},
		{`example.com ERROR:"5.7.1:550 Go away"`, "example.com", Reject, "550 5.7.1 Go away"},
		{`example.com ERROR:"550 5.7.1 Go away"`, "example.com", Reject, "550 5.7.1 Go away"},
		{`example.com ERROR:"421 4.7.0 Later"`, "example.com", Tempfail, "421 4.7.0 Later"},
		{`example.com ERROR:4.7.1:451 Later`, "example.com", Tempfail, "451 4.7.1 Later"},
		{`example.com ERROR:"550 say \"hi\""`, "example.com", Reject, `550 say "hi"`},
		// Sendmail's older form of ERROR:, without the prefix: deprecated
		// there, still in access files and in the comments of
		// distributions' sendmail.mc.
		{"FREE.STEALTH.MAILER@ 550 Spam not accepted", "FREE.STEALTH.MAILER@", Reject, "550 Spam not accepted"},
		{`example.com "550 We don't accept mail from spammers"`, "example.com", Reject, "550 We don't accept mail from spammers"},
		{"example.com	451 4.7.1 Try later", "example.com", Tempfail, "451 4.7.1 Try later"},
		{"example.com QUARANTINE:look at it", "example.com", Quarantine, ""},
		{"example.com OK", "example.com", OK, ""},
		{"example.com Relay", "example.com", OK, ""},
		{"example.com SKIP", "example.com", Skip, ""},
		{"example.com WATCH", "example.com", Watch, ""},
		{`"a b\"c"@example.com REJECT`, `"a b\"c"@example.com`, Reject, ""},
		{`/a"b/ REJECT`, `/a"b/`, Reject, ""},
		{"From:/^x\\./ REJECT", "From:/^x\\./", Reject, ""},
		{"\xef\xbb\xbfexample.com REJECT", "example.com", Reject, ""}, // a byte order mark
		{"example.com REJECT\r", "example.com", Reject, ""},           // CRLF line ends
	}
	for _, tt := range tests {
		rs, err := Compile(Source{Name: "f", Data: []byte(tt.line + "\n"), Scope: DefaultScope})
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if rs.Len() != 1 {
			t.Errorf("%q: %d rules", tt.line, rs.Len())
			continue
		}
		r := rs.rules[0]
		reply := ""
		if r.Reply != nil {
			reply = r.Reply.String()
		}
		if r.Key != tt.key || r.Action != tt.action || reply != tt.reply || r.Line != 1 {
			t.Errorf("%q: got key %q action %s reply %q line %d, want %q %s %q", tt.line, r.Key, r.Action, reply, r.Line, tt.key, tt.action, tt.reply)
		}
	}
}

// Every malformed line is reported with its file, its line and why.
func TestParseMalformedLines(t *testing.T) {
	tests := []struct {
		line, reason string
	}{
		{"example.com", "missing action"},
		{"example.com   ", "missing action"},
		{"example.com   # REJECT", "missing action"},
		{"example.com REJEKT", `unknown action "REJEKT"`},
		// Actions are ASCII words: a dotless i is no i.
		{"example.com D\u0131SCARD", "unknown action \"D\u0131SCARD\""},
		{"example.com QUARANT\u0131NE:x", "unknown action \"QUARANT\u0131NE:x\""},
		{"example.com REJECT please", `unexpected text "please" after REJECT`},
		{"example.com ERROR:", "want a reply code and text"},
		{`example.com ERROR:"550`, "unterminated quote"},
		{`example.com ERROR:"550 x" y`, `unexpected text "y"`},
		{`example.com ERROR:"250 fine"`, "must be 4xx or 5xx"},
		{`example.com ERROR:"550"`, "reply text is empty"},
		{`example.com ERROR:"55 x"`, "want a reply code"},
		{`example.com ERROR:4.7.1:550 x`, "class 4 does not match"},
		{"example.com ERROR:\"550 caf\xc3\xa9\"", "non-ASCII"},
		{"example.com QUARANTINE:", "needs a reason"},
		{"Form:example.com REJECT", `unknown tag "Form:"`},
		{"From: REJECT", "missing key"},
		{"exa..mple.com REJECT", "empty label"},
		{".example.com. . REJECT", `unknown action "."`},
		{"exa mple.com REJECT", `unknown action "mple.com"`},
		{"ex!ample.com REJECT", "not allowed in a domain name"},
		{"/unclosed REJECT", "must end with /"},
		{"/a(b/ REJECT", "bad regular expression /a(b/: error parsing regexp: missing closing ): `a(b`"},
		{"// REJECT", "empty regular expression"},
		{"*..example REJECT", "empty label"},
		{"*.exa$mple REJECT", "not allowed"},
		{"b*cher.tëst? REJECT", "mixes a wildcard with non-ASCII"},
		{"*@example.com REJECT", "patterns match domain names only"},
		{"@example.com REJECT", "no local part"},
		{`"unterminated@example.com REJECT`, "unterminated quote"},
		{`"a"b@example.com REJECT`, "bad address"},
		{"Helo:<> REJECT", "null envelope sender"},
		{"<> WATCH", "<> WATCH never reports anything: WATCH reports new domains, and the null sender has none"},
		{"From:<> watch # bounces", "<> WATCH never reports anything"},
		{"xn--a.example REJECT", "bad domain"},
		{strings.Repeat("a", 250) + ".example REJECT", "longer than 253"},
		// Mistakes whose plain reason would puzzle: a blank that is not
		// a space or a tab (pasted from a web page or a word
		// processor), a blank in a regular expression, a blank after
		// the tag.
		{"example.com\u00a0REJECT", "missing action after the key (the line holds U+00A0, a blank that is not a space or a tab)"},
		{"example.com\u3000REJECT", "(the line holds U+3000, a blank that is not a space or a tab)"},
		{"example.com REJECT\u200b", `unknown action "REJECT\u200b" (want OK, RELAY, SKIP, REJECT, DISCARD, ERROR:"5xx text", QUARANTINE:reason or WATCH) (the line holds U+200B, a blank that is not a space or a tab)`},
		{"/spam example/ REJECT", `regular expression "/spam" must end with / (a blank ends the key: write \s for one)`},
		{"From: example.com REJECT", "missing key after the tag (write it without a blank: From:example.com)"},
		{"From:\texample.com REJECT", "missing key after the tag (write it without a blank: From:example.com)"},
	}
	for _, tt := range tests {
		data := "# first line\n\n" + tt.line + "\n"
		_, err := Compile(Source{Name: "/etc/mail/access", Data: []byte(data), Scope: DefaultScope})
		var pe *ParseError
		if !errors.As(err, &pe) || len(pe.Lines) != 1 {
			t.Errorf("%q: error %v, want one malformed line", tt.line, err)
			continue
		}
		l := pe.Lines[0]
		if l.File != "/etc/mail/access" || l.Line != 3 || !strings.Contains(l.Reason, tt.reason) {
			t.Errorf("%q: %v, want /etc/mail/access:3 and %q", tt.line, l, tt.reason)
		}
		if want := "/etc/mail/access:3: "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: message %q does not start with %q", tt.line, err, want)
		}
	}
}

// All malformed lines of all files are reported at once, so that one
// round of fixes is enough, up to a bound.
func TestParseErrorListsEveryLine(t *testing.T) {
	a := "ok.example OK\nbad1\nok2.example REJECT\nbad2.example NOPE\n"
	b := "\n\nfine.example DISCARD\n/x( REJECT\n"
	_, err := Compile(Source{Name: "a", Data: []byte(a), Scope: DefaultScope}, Source{Name: "b", Data: []byte(b), Scope: DefaultScope})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v", err)
	}
	var got []string
	for _, l := range pe.Lines {
		got = append(got, fmt.Sprintf("%s:%d", l.File, l.Line))
	}
	if strings.Join(got, " ") != "a:2 a:4 b:4" {
		t.Errorf("reported %v, want a:2 a:4 b:4", got)
	}

	var many strings.Builder
	for i := 0; i < maxLineErrors+5; i++ {
		many.WriteString("broken\n")
	}
	_, err = Compile(Source{Name: "m", Data: []byte(many.String()), Scope: DefaultScope})
	if !errors.As(err, &pe) || len(pe.Lines) != maxLineErrors || pe.More != 5 || !strings.HasSuffix(err.Error(), "and 5 more malformed lines") {
		t.Errorf("with %d bad lines: %v", maxLineErrors+5, err)
	}
}

// A binary file, such as the access.db makemap builds from the access
// file, is refused as a whole with one clear reason, not line by line
// with reasons about the bytes of a hash table.
func TestParseBinaryFile(t *testing.T) {
	data := make([]byte, 4096)
	copy(data, "spam.example REJECT\n")
	copy(data[2000:], "fine.example\x00OK\nmore\x00\x01 x\n")
	_, err := Compile(Source{Name: "/etc/mail/access.db", Data: data, Scope: DefaultScope})
	want := "/etc/mail/access.db:2: a NUL byte: a binary file, not a rules file (for Sendmail's access.db give the text file makemap reads, such as /etc/mail/access)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// A rules file saved as UTF-16 (Windows Notepad's "Unicode", the output
// of PowerShell 5's ">") is text to whoever wrote it: the error says
// what it is and what to do, instead of calling it a binary file such as
// access.db.
func TestParseUTF16File(t *testing.T) {
	text := "spam.example REJECT\r\n"
	le := []byte{0xff, 0xfe}
	be := []byte{0xfe, 0xff}
	for _, c := range text {
		le = append(le, byte(c), 0)
		be = append(be, 0, byte(c))
	}
	for name, data := range map[string][]byte{"le": le, "be": be, "le-no-bom": le[2:], "be-no-bom": be[2:]} {
		_, err := Compile(Source{Name: "/etc/sluice/senders", Data: data, Scope: DefaultScope})
		want := "/etc/sluice/senders:1: UTF-16 text, not UTF-8: save the file as UTF-8 (in PowerShell: Out-File -Encoding utf8)"
		if err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
}

// A rules file kept in Latin-1, not UTF-8, is read as windows-1252, as
// mail in 8-bit text is: the key "m\xfcller.example" is müller.example,
// and its text as written is kept as UTF-8. Kept as the raw bytes, the
// key of a WATCH rule became the pattern label of its counter, and the
// Prometheus client panics on a label that is not UTF-8: the daemon died
// loading the file.
func TestParseLatin1File(t *testing.T) {
	data := "m\xfcller.example WATCH\n*.b\xfccher.example WATCH\nj\xf6rg@x.example QUARANTINE:f\xfcr J\xf6rg\n"
	rs, err := Compile(Source{Name: "f", Data: []byte(data), Scope: DefaultScope})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rs.WatchKeys(), []string{"müller.example", "*.bücher.example"}; !slices.Equal(got, want) {
		t.Errorf("WATCH keys %q, want %q", got, want)
	}
	if r := ruleAt(t, rs, 3); r.Key != "jörg@x.example" || r.Reason != "für Jörg" {
		t.Errorf("line 3: key %q, reason %q, want jörg@x.example, für Jörg", r.Key, r.Reason)
	}
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@mx.müller.example", 0, []int{1}},
		{MailFrom, "x@mx.xn--bcher-kva.example", 0, []int{2}},
		{MailFrom, "jörg@x.example", 3, nil},
		{MailFrom, "j\xe9rg@x.example", 0, nil},
	})
}

func TestParseLongLine(t *testing.T) {
	data := "a.example REJECT\n" + strings.Repeat("x", maxLine+10) + " REJECT\n"
	_, err := Compile(Source{Name: "f", Data: []byte(data), Scope: DefaultScope})
	if err == nil || !strings.Contains(err.Error(), "f:2: line longer than") {
		t.Errorf("error %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope")
	_, err := Load([]File{{Path: path, Scope: DefaultScope}})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want one naming %s", err, path)
	}
}

// A rules file above the bound is refused before it is held whole: a
// device named by mistake (/dev/zero) took all memory at start or reload.
// A sparse file: no disk is written.
func TestLoadRefusesHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.rules")
	if err := os.WriteFile(path, []byte("spam.example REJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, maxRulesFile+1); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]File{{Path: path, Scope: DefaultScope}})
	if err == nil || !strings.Contains(err.Error(), path+": larger than 64 MiB") {
		t.Errorf("error %.200v, want one saying the file is too large", err)
	}
	// At the bound, it is read (and fails on its NUL bytes instead).
	if err := os.Truncate(path, maxRulesFile); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]File{{Path: path, Scope: DefaultScope}}); err == nil || strings.Contains(err.Error(), "larger than") {
		t.Errorf("a file at the bound: error %.200v, want a parse error", err)
	}
}

// An earlier rule with the same key counts; the hidden one is noted.
// A tagged rule beats an untagged one with the same key, in either order.
func TestDuplicateKeys(t *testing.T) {
	data := "dup.example REJECT\ndup.example OK\nFrom:dup.example DISCARD\ntag.example DISCARD\nFrom:tag.example OK\nFrom:tag.example REJECT\n"
	rs, err := Compile(Source{Name: "f", Data: []byte(data), Scope: DefaultScope})
	if err != nil {
		t.Fatal(err)
	}
	var hidden []string
	for _, n := range rs.Notes() {
		hidden = append(hidden, n.String())
	}
	want := []string{
		"f:2: dup.example is hidden by f:1, which has the same key; the first one counts",
		"f:6: From:tag.example is hidden by f:5, which has the same key; the first one counts",
	}
	if strings.Join(hidden, "\n") != strings.Join(want, "\n") {
		t.Errorf("notes:\n%s\nwant:\n%s", strings.Join(hidden, "\n"), strings.Join(want, "\n"))
	}
	check := func(subj Subject, addr string, line int) {
		t.Helper()
		m := rs.Match(subj, addr)
		if m.Rule == nil || m.Rule.Line != line {
			t.Errorf("%s %s: rule %v, want line %d", subj, addr, m.Rule, line)
		}
	}
	check(MailFrom, "a@dup.example", 3)   // tagged beats untagged
	check(HeaderFrom, "a@dup.example", 1) // From: is the envelope only
	check(MailFrom, "a@tag.example", 5)
	check(HeaderFrom, "a@tag.example", 4)
}

// Of identical glob or regex keys, as of literal ones, the first that
// applies to a subject decides (a tagged one before an untagged one);
// the others decide nothing: they are noted as having no effect, and do
// not count as the strongest rule that a crowded From field, one with
// more addresses than are read, is judged by.
func TestIdenticalPatternsHidden(t *testing.T) {
	for _, tc := range []struct {
		rules      string
		hidden     int      // line of the rule noted as hidden
		mail, from RuleKind // what the strongest rule of each subject does
	}{
		{"*.spam.example OK\n*.spam.example REJECT\n", 2, "", ""},
		{"/^spam\\./ OK\n/^spam\\./ REJECT\n", 2, "", ""},
		{"*.spam.example REJECT\nHeaderFrom:*.spam.example OK\n", 0, "REJECT", ""},
		{"*.spam.example REJECT\n*.spam.example OK\n", 2, "REJECT", "REJECT"},
	} {
		rs, err := Compile(Source{Name: "t", Data: []byte(tc.rules), Scope: ScopeOf(MailFrom, HeaderFrom)})
		if err != nil {
			t.Fatalf("%q: %v", tc.rules, err)
		}
		var noted []int
		for _, n := range rs.Notes() {
			if strings.Contains(n.Text, "is hidden by") {
				noted = append(noted, n.Line)
			}
		}
		if want := []int{tc.hidden}; tc.hidden == 0 && len(noted) != 0 || tc.hidden != 0 && !slices.Equal(noted, want) {
			t.Errorf("%q: rules noted as hidden at lines %v, want %d", tc.rules, noted, tc.hidden)
		}
		for _, s := range []struct {
			subj Subject
			want RuleKind
		}{{MailFrom, tc.mail}, {HeaderFrom, tc.from}} {
			got := RuleKind("")
			if r := rs.strongest(s.subj); r != nil {
				got = RuleKind(r.Action.String())
			}
			if got != s.want {
				t.Errorf("%q: strongest %s rule %q, want %q", tc.rules, s.subj, got, s.want)
			}
		}
	}
}

// RuleKind names a rule's action in TestIdenticalPatternsHidden.
type RuleKind string

// A tab between the reply code and its text is a blank as a space is:
// Sendmail reads the value of an access entry as words, and an access
// file aligned with tabs ("spam.example<TAB>550<TAB>Go away") must load
// and send the reply it gives, not stop sluice with "want a reply code
// and text".
func TestParseErrorReplyTab(t *testing.T) {
	tests := []struct {
		line   string
		action Action
		reply  string
	}{
		{"example.com\t550\tSpam not accepted", Reject, "550 Spam not accepted"},
		{"example.com\t\"550\tSpam not accepted\"", Reject, "550 Spam not accepted"},
		{"example.com\tERROR:550\tSpam not accepted", Reject, "550 Spam not accepted"},
		{"example.com\tERROR:\"451\t4.7.1\tTry later\"", Tempfail, "451 4.7.1 Try later"},
		{"example.com\tERROR:5.7.1:550\tGo\taway", Reject, "550 5.7.1 Go away"},
	}
	for _, tt := range tests {
		rs, err := Compile(Source{Name: "f", Data: []byte(tt.line + "\n"), Scope: DefaultScope})
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		r := rs.rules[0]
		if r.Action != tt.action || r.Reply == nil || r.Reply.Sent().String() != tt.reply {
			t.Errorf("%q: got action %s reply %v, want %s %q", tt.line, r.Action, r.Reply, tt.action, tt.reply)
		}
	}
}
