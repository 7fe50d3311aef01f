package archive

import (
	"bufio"
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/filters"
)

// quoteAll runs text through a lineWriter in chunks of the given sizes
// (cycled), so that CRs and line starts fall on chunk boundaries.
func quoteAll(t *testing.T, text string, quote bool, chunks []int) string {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	lw := newLineWriter(bw, quote)
	p := []byte(text)
	for i := 0; len(p) > 0; i++ {
		n := min(chunks[i%len(chunks)], len(p))
		if _, err := lw.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := lw.finish(); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	if lw.n != int64(out.Len()) {
		t.Errorf("counted %d bytes, wrote %d", lw.n, out.Len())
	}
	return out.String()
}

func TestLineWriter(t *testing.T) {
	tests := []struct {
		in, quoted, plain string
	}{
		{"a\r\nb\r\n", "a\nb\n", "a\nb\n"},
		{"no final line end", "no final line end\n", "no final line end\n"},
		{"", "", ""},
		{"From me\r\n", ">From me\n", "From me\n"},
		{"x\r\nFrom here\r\n>From there\r\n>>From everywhere\r\n", "x\n>From here\n>>From there\n>>>From everywhere\n", "x\nFrom here\n>From there\n>>From everywhere\n"},
		// Not "From " lines: no space, lower case, not at the start, a
		// '>' with text between.
		{"From\r\nfrom x\r\n From x\r\nFromage\r\n> From x\r\n>x>From y\r\n", "From\nfrom x\n From x\nFromage\n> From x\n>x>From y\n", ""},
		// A bare CR stays, also before LF-less text and at the very end;
		// CR CR LF is a CR then a line end.
		{"a\rb\r\r\nc\r", "a\rb\r\nc\r\n", "a\rb\r\nc\r\n"},
		// A bare LF ends a line too, and a "From " after it is quoted.
		{"a\nFrom x\n", "a\n>From x\n", "a\nFrom x\n"},
		{"From ", ">From \n", "From \n"},
		{">>Fr", ">>Fr\n", ">>Fr\n"},
		{"\r\n\r\nFrom x", "\n\n>From x\n", "\n\nFrom x\n"},
	}
	chunkings := [][]int{{1 << 20}, {1}, {2}, {3}, {5, 1, 7}}
	for _, tc := range tests {
		for _, ch := range chunkings {
			if got := quoteAll(t, tc.in, true, ch); got != tc.quoted {
				t.Errorf("quote %q in chunks %v: %q, want %q", tc.in, ch, got, tc.quoted)
			}
			if tc.plain == "" && tc.in != "" {
				continue
			}
			if got := quoteAll(t, tc.in, false, ch); got != tc.plain {
				t.Errorf("plain %q in chunks %v: %q, want %q", tc.in, ch, got, tc.plain)
			}
		}
	}
}

// Quoting then unquoting gives back the text with LF line ends, whatever
// the text: random lines built from the pieces that matter.
func TestQuoteRoundTrip(t *testing.T) {
	pieces := []string{"From ", ">", ">>", "From", "F", "x", " ", "\r", "\r\n", "\n", ">From ", "rom "}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		var b strings.Builder
		for j := rng.IntN(30); j >= 0; j-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		in := b.String() + "\r\n"
		want := strings.ReplaceAll(in, "\r\n", "\n")
		quoted := quoteAll(t, in, true, []int{1 + rng.IntN(7)})
		for _, line := range strings.SplitAfter(quoted, "\n") {
			if strings.HasPrefix(line, "From ") {
				t.Fatalf("%q quoted to %q: an unquoted From line remains", in, quoted)
			}
		}
		if got := string(unquote([]byte("From x\n" + quoted))); got != want {
			t.Fatalf("round trip of %q: %q, want %q", in, got, want)
		}
	}
}

func TestPathSafe(t *testing.T) {
	tests := map[string]string{
		"bob@lab.example":             "bob@lab.example",
		"Bob.Smith+tag@Lab.EXAMPLE":   "bob.smith+tag@lab.example",
		"../../etc/passwd":            "_._.._etc_passwd",
		"..":                          "_.",
		".":                           "_",
		".hidden":                     "_hidden",
		"":                            "_",
		"a/b":                         "a_b",
		"a\r\nb\x00c\x7f":             "a__b_c_",
		"\"john doe\"@x":              "_john_doe_@x",
		"ü@x":                         "ü@x", // SMTPUTF8 local parts keep their letters
		"Ü@x":                         "ü@x",
		"u\u0308@x":                   "ü@x", // NFC: one name for ü however it is written
		"山田@x":                        "山田@x",
		"a\u200eb\u00a0c\u2215d":      "a___b__c___d",          // bidi mark, no-break space, division slash
		"a\xfcb":                      "a_b",                   // not UTF-8
		strings.Repeat("ü", 60):       strings.Repeat("ü", 50), // cut between characters
		strings.Repeat("a", 99) + "ü": strings.Repeat("a", 99),
		strings.Repeat("a", 300):      strings.Repeat("a", maxComponent),
	}
	for in, want := range tests {
		got := pathSafe(in)
		if got != want {
			t.Errorf("pathSafe(%q) = %q, want %q", in, got, want)
		}
		if got == "." || got == ".." || strings.ContainsAny(got, "/\x00\r\n") || len(got) > maxComponent {
			t.Errorf("pathSafe(%q) = %q is not a safe component", in, got)
		}
	}
}

func TestPathTemplate(t *testing.T) {
	tp, err := parsePathTemplate("archive/{verdict}/{year}-{month}/{rcpt_domain}/{rcpt_local}.mbox", "/var/lib/sluice")
	if err != nil {
		t.Fatal(err)
	}
	if !tp.perRcpt {
		t.Error("recipient placeholders not noticed")
	}
	got := tp.render(map[string]string{"verdict": "spam", "year": "2026", "month": "01", "rcpt_domain": "..", "rcpt_local": "../../root/x"})
	if want := "/var/lib/sluice/archive/spam/2026-01/_./_._.._root_x.mbox"; got != want {
		t.Errorf("render: %q, want %q", got, want)
	}
	if p, ok := tp.static(); ok {
		t.Errorf("a template with placeholders is static: %q", p)
	}
	// No value can make a path that of another mbox's dot-lock; a
	// template that itself ends in ".lock" is taken as written.
	for _, c := range []struct{ tmpl, local, want string }{
		{"/a/{rcpt_local}", "bob.lock", "/a/bob_lock"},
		{"/a/{rcpt_local}lock", "bob.", "/a/bob_lock"},
		{"/a/{rcpt_local}.lock", "bob", "/a/bob.lock"},
		{"/a/{rcpt_local}", "bob.locks", "/a/bob.locks"},
	} {
		tl, err := parsePathTemplate(c.tmpl, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := tl.render(map[string]string{"rcpt_local": c.local}); got != c.want {
			t.Errorf("%s with rcpt_local %q: %q, want %q", c.tmpl, c.local, got, c.want)
		}
	}
	st, _ := parsePathTemplate("/a/b.mbox", "")
	if p, ok := st.static(); !ok || p != "/a/b.mbox" {
		t.Errorf("static: %q %v", p, ok)
	}
	for _, bad := range []string{"", "/a/{nope}.mbox", "/a/{verdict.mbox", "/a/verdict}.mbox", "/a/}{verdict}", "/a\n/b", "rel.mbox", "/"} {
		if _, err := parsePathTemplate(bad, ""); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	good := Config{Targets: map[string]string{"spam": "/a/spam.mbox", "reject": "/a/r.mbox", "ham": "/a/" + strings.Repeat("h", 195) + ".mbox", "unsure": "/a/{rcpt}" + strings.Repeat("u", 200)}}
	s, err := good.check("")
	if err != nil {
		t.Fatal(err)
	}
	if s.format != FormatMbox || s.verdictHeader != DefaultVerdictHeader || s.lockTimeout != DefaultLockTimeout {
		t.Errorf("defaults: %+v", s)
	}
	for name, c := range map[string]Config{
		"no targets":  {},
		"bad verdict": {Targets: map[string]string{"junk": "/a"}},
		"bad format":  {Format: "mh", Targets: map[string]string{"spam": "/a"}},
		"bad header":  {VerdictHeader: "X Bad", Targets: map[string]string{"spam": "/a"}},
		// MTAs take no field with such a name for a header field:
		// the verdict would never be found, and every message filed
		// as default.
		"non-ASCII header":    {VerdictHeader: "X-Sluice-B\u00e4yes", Targets: map[string]string{"spam": "/a"}},
		"control byte header": {VerdictHeader: "X-Sluice-\x01Bayes", Targets: map[string]string{"spam": "/a"}},
		"DEL in header":       {VerdictHeader: "X-Sluice-Bayes\x7f", Targets: map[string]string{"spam": "/a"}},
		"negative lock":       {LockTimeout: -1, Targets: map[string]string{"spam": "/a"}},
		// Names the file system refuses (NAME_MAX 255, the mbox's
		// lock files adding to it): every copy would fail.
		"long name":              {Targets: map[string]string{"spam": "/a/" + strings.Repeat("s", 240) + ".mbox"}},
		"long name with values":  {Targets: map[string]string{"spam": "/a/{rcpt}" + strings.Repeat("s", 201)}},
		"long directory name":    {Format: FormatMaildir, Targets: map[string]string{"spam": "/a/" + strings.Repeat("d", 256) + "/{rcpt}"}},
		"bad template":           {Targets: map[string]string{"spam": "/a/{x}"}},
		"relative, no state_dir": {Targets: map[string]string{"spam": "a.mbox"}},
	} {
		_, err := c.check("")
		switch {
		case err == nil:
			t.Errorf("%s: accepted", name)
		case c.VerdictHeader != "" && !strings.HasPrefix(err.Error(), "verdict_header: "):
			t.Errorf("%s: error %q, want it to name verdict_header", name, err)
		}
	}
}

// A long reason is cut to maxReason bytes at a character boundary: a cut
// through a multi-byte character would leave invalid UTF-8 in the
// verdict field, which mail readers and Sieve show as garbage.
func TestReasonCutOnRuneBoundary(t *testing.T) {
	for pad := range 4 {
		// "é" and "€" are 2 and 3 bytes; with every padding one of
		// them straddles byte maxReason.
		reason := strings.Repeat("x", pad) + strings.Repeat("é€", maxReason)
		e := envelope{verdict: "reject", decided: filters.Decided{Action: filters.Reject, Filter: "bayes", Reason: reason}}
		var v string
		for _, h := range archiveFields(e) {
			if h.Name == FieldVerdict {
				v = h.Value
			}
		}
		_, quoted, ok := strings.Cut(v, `reason="`)
		if !ok {
			t.Fatalf("pad %d: no reason in %q", pad, v)
		}
		got := strings.TrimSuffix(quoted, `"`)
		if !utf8.ValidString(got) {
			t.Errorf("pad %d: reason %q is not valid UTF-8", pad, got)
		}
		if len(got) > maxReason || len(got) < maxReason-utf8.UTFMax {
			t.Errorf("pad %d: reason of %d bytes, want at most %d and not much less", pad, len(got), maxReason)
		}
		if !strings.HasPrefix(reason, got) {
			t.Errorf("pad %d: reason %q is not a prefix of the original", pad, got)
		}
	}
}

// SMTPUTF8 recipients (RFC 6531) get archive paths of their own: a
// domain in Unicode and in its A-label is one domain, and distinct
// UTF-8 local parts are distinct files.
func TestPathTemplateIntlRecipients(t *testing.T) {
	tp, err := parsePathTemplate("a/{rcpt_domain}/{rcpt_local}.mbox", "/s")
	if err != nil {
		t.Fatal(err)
	}
	path := func(rcpt string) string {
		v := map[string]string{}
		setRcpt(v, rcpt)
		return tp.render(v)
	}
	for rcpt, want := range map[string]string{
		"ü@bücher.example":         "/s/a/xn--bcher-kva.example/ü.mbox",
		"Ü@BÜCHER.example":         "/s/a/xn--bcher-kva.example/ü.mbox",
		"ü@xn--bcher-kva.example":  "/s/a/xn--bcher-kva.example/ü.mbox",
		"ö@bücher.example":         "/s/a/xn--bcher-kva.example/ö.mbox",
		"__@xn--bcher-kva.example": "/s/a/xn--bcher-kva.example/__.mbox",
		"bob@Lab.Example":          "/s/a/lab.example/bob.mbox",
		"bob@-bad-ü.example":       "/s/a/-bad-ü.example/bob.mbox", // not IDNA: as written, made safe
		"bob@[192.0.2.1]":          "/s/a/_192.0.2.1_/bob.mbox",
		"山田@例え.テスト":                "/s/a/xn--r8jz45g.xn--zckzah/山田.mbox",
	} {
		if got := path(rcpt); got != want {
			t.Errorf("%s: path %q, want %q", rcpt, got, want)
		}
	}
	tr, err := parsePathTemplate("{rcpt}.mbox", "/s")
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]string{}
	setRcpt(v, "Jürgen@Bücher.example")
	if got, want := tr.render(v), "/s/jürgen@xn--bcher-kva.example.mbox"; got != want {
		t.Errorf("{rcpt}: %q, want %q", got, want)
	}
}

// A recipient is split as every filter reads an address: one mailbox
// in any of its spellings gets one path, and no spelling takes the path
// of another domain. A final dot, a local part in quotes and a source
// route (RFC 5321 sections 4.1.2 and appendix C) do not change the
// mailbox; a quoted local part may hold "@", and the domain follows the
// last "@" outside the quotes.
func TestPathRecipientSpellings(t *testing.T) {
	tp, err := parsePathTemplate("a/{rcpt_domain}/{rcpt_local}.mbox", "/s")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := parsePathTemplate("{rcpt}.mbox", "/s")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ rcpt, split, whole string }{
		{"bob@lab.example", "/s/a/lab.example/bob.mbox", "/s/bob@lab.example.mbox"},
		{"bob@lab.example.", "/s/a/lab.example/bob.mbox", "/s/bob@lab.example.mbox"},
		{"bob@BÜCHER.example.", "/s/a/xn--bcher-kva.example/bob.mbox", "/s/bob@xn--bcher-kva.example.mbox"},
		{`"bob"@lab.example`, "/s/a/lab.example/bob.mbox", "/s/bob@lab.example.mbox"},
		{"@relay.example:bob@lab.example", "/s/a/lab.example/bob.mbox", "/s/bob@lab.example.mbox"},
		{"@a.example,@[IPv6:2001:db8::1]:bob@lab.example", "/s/a/lab.example/bob.mbox", "/s/bob@lab.example.mbox"},
		{`"x@evil.example"@lab.example`, "/s/a/lab.example/x@evil.example.mbox", "/s/x@evil.example@lab.example.mbox"},
		{"postmaster@[IPv6:2001:DB8::1]", "/s/a/_ipv6_2001_db8__1_/postmaster.mbox", "/s/postmaster@_ipv6_2001_db8__1_.mbox"},
		{"postmaster", "/s/a/_/postmaster.mbox", "/s/postmaster.mbox"},
	} {
		v := map[string]string{}
		setRcpt(v, tc.rcpt)
		if got := tp.render(v); got != tc.split {
			t.Errorf("%s: path %q, want %q", tc.rcpt, got, tc.split)
		}
		if got := tr.render(v); got != tc.whole {
			t.Errorf("%s: {rcpt} path %q, want %q", tc.rcpt, got, tc.whole)
		}
	}
	got := uniqueRcpts([]filters.Address{{Addr: "bob@lab.example"}, {Addr: "bob@lab.example."}, {Addr: `"bob"@LAB.example`}, {Addr: "@relay.example:bob@lab.example"}, {Addr: `"bob@x"@lab.example`}})
	if want := []string{"bob@lab.example", `"bob@x"@lab.example`}; !slices.Equal(got, want) {
		t.Errorf("recipients recorded %q, want %q", got, want)
	}
}

// checkWithin runs f's end-of-message check of m with a context that ends
// after deadline, and returns its error; it fails the test if the check
// has not returned after wait, which a check that blocks past its
// context does not.
func checkWithin(t *testing.T, f *Filter, m *filters.Message, deadline, wait time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := f.Check(ctx, filters.StageEOM, m)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatalf("the check still runs %v after it began, %v after its deadline", wait, wait-deadline)
		return nil
	}
}

// A line that starts with a long run of '>' is quoted in time linear in
// its length. The run was held back and counted again for every '>' that
// joined it, so a 1 MB run took minutes of CPU inside one write, with the
// mbox's locks held and every other copy to it waiting: any sender could
// put such a line in a message. The copy must be written well within the
// filter's default timeout (10 s) and read back as sent.
func TestLongQuoteRunIsLinear(t *testing.T) {
	run := strings.Repeat(">", 1<<20)
	body := run + "From x\r\n" + run + "x\r\n" + run
	path := filepath.Join(t.TempDir(), "a.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	m := testMessage("RUN", body)
	// Also measured for the Content-Length field, by the same writer.
	m.Headers = append(m.Headers, filters.Header{Name: "Content-Length", Value: "1"})
	if err := checkWithin(t, f, m, 10*time.Second, 30*time.Second); err != nil {
		t.Fatalf("copy with a 1 MB run of '>': %v", err)
	}
	recs := readRecords(t, path)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	_, got, _ := bytes.Cut(recs[0].Message, []byte("\n\n"))
	want := strings.ReplaceAll(body, "\r\n", "\n") + "\n"
	if string(got) != want {
		t.Errorf("body read back differs: %d bytes, want %d", len(got), len(want))
	}
	stored := recs[0].Raw[bytes.Index(recs[0].Raw, []byte("\n\n"))+2:]
	if !bytes.HasPrefix(stored, []byte(">"+run+"From x\n"+run+"x\n"+run+"\n")) {
		t.Error("the stored body is not the quoted body")
	}
	if cl := HeaderValues(recs[0].Message, "Content-Length"); len(cl) != 1 || cl[0] != strconv.Itoa(len(stored)) {
		t.Errorf("Content-Length %v, want %d", cl, len(stored))
	}
}
