package dnsbl

import (
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzSanitize checks the cleaning of a list's TXT record, which anyone
// who runs the list, or spoofs its answers, writes, before it goes into
// an SMTP reply and a header field: the text is printable ASCII with
// single spaces inside only, at most max bytes, cleaned again unchanged,
// and a text already so is kept as it is.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{
		"Listed by example; see https://example.org/lookup?ip=192.0.2.1",
		"  two\r\n  lines\tand\x00 ümlaut  ",
		"550 5.7.1\r\nX-Injected: yes",
		"100%% sure %s",
		strings.Repeat("x ", 300),
		"",
	} {
		f.Add(s, 200)
	}
	f.Add("abc def", 3)
	f.Add("\xff\xfe", 1)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 1 || max > 1000 {
			return
		}
		out := sanitize(s, max)
		if len(out) > max {
			t.Fatalf("%q: %q is longer than %d", s, out, max)
		}
		if !clean(out) {
			t.Fatalf("%q: %q is not clean", s, out)
		}
		if again := sanitize(out, max); again != out {
			t.Fatalf("%q: cleaned again, %q becomes %q", s, out, again)
		}
		if clean(s) && len(s) <= max && out != s {
			t.Fatalf("clean %q became %q", s, out)
		}
	})
}

// FuzzFold checks the folding of the field the filter adds: unfolded, it
// is the value again; it breaks lines only where the value had "; ";
// and a line is longer than maxLine only when one part alone is.
func FuzzFold(f *testing.F) {
	f.Add("X-Sluice-DNSBL", "zen.spamhaus.org=127.0.0.2 (listed); bl.spamcop.net=127.0.0.2 ("+strings.Repeat("why ", 20)+")")
	f.Add("X", "a; b; ; ;;  ; c")
	f.Add("", strings.Repeat("x", 200)+"; y")
	f.Add("X-Long-Name", "")
	f.Fuzz(func(t *testing.T, name, value string) {
		if strings.Contains(value, "\n") {
			return // sanitize keeps line ends out of values
		}
		out := fold(name, value)
		if got := strings.ReplaceAll(out, "\n\t", " "); got != value {
			t.Fatalf("%q folded as %q unfolds to %q", value, out, got)
		}
		if n, m := strings.Count(out, "\n"), strings.Count(value, "; "); n > m {
			t.Fatalf("%q folded at %d places, it has %d separators", value, n, m)
		}
		longest := len(name) + 2
		for _, p := range strings.Split(value, "; ") {
			longest = max(longest, len(p)+8+1)
		}
		for i, line := range strings.Split(name+": "+out, "\n") {
			if len(line) > maxLine && len(line) > longest+len(name)+2 {
				t.Fatalf("%q folded as %q: line %d has %d bytes", value, out, i, len(line))
			}
		}
	})
}

// FuzzUnescapeTXT checks that a TXT string as miekg/dns unpacks it, in
// presentation format, is unescaped to the bytes the list sent.
func FuzzUnescapeTXT(f *testing.F) {
	f.Add([]byte(`Listed "here" \ end`))
	f.Add([]byte("\x00\x01\x7f\xff\\123"))
	f.Add([]byte(`\`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 255 {
			raw = raw[:255]
		}
		rr := &dns.RFC3597{
			Hdr:   dns.RR_Header{Name: "2.0.0.127.zen.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Rdata: hex.EncodeToString(append([]byte{byte(len(raw))}, raw...)),
		}
		m := new(dns.Msg)
		m.SetQuestion("2.0.0.127.zen.example.", dns.TypeTXT)
		m.Answer = []dns.RR{rr}
		wire, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var got dns.Msg
		if err := got.Unpack(wire); err != nil {
			t.Fatal(err)
		}
		txt, ok := got.Answer[0].(*dns.TXT)
		if !ok || len(txt.Txt) != 1 {
			t.Fatalf("unpacked as %v", got.Answer[0])
		}
		if u := unescapeTXT(txt.Txt[0]); u != string(raw) {
			t.Fatalf("%q unpacked as %q, unescaped to %q", raw, txt.Txt[0], u)
		}
	})
}

// FuzzParseCode checks the listing codes of the config: a code taken is
// a prefix inside 127.0.0.0/8 that holds no refusal code, and its
// String reads back as the same prefix.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{"127.0.0.2", " 127.0.1.0/24 ", "127.0.0.1", "127.255.255.254", "127.0.0.0/8", "127.255.0.0/16", "10.0.0.2", "::ffff:127.0.0.2", "127.0.0.2/33", "127.000.0.2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseCode(s)
		if err != nil {
			return
		}
		if !p.Addr().Is4() || !loopback8.Contains(p.Addr()) || p.Bits() < 8 || p != p.Masked() {
			t.Fatalf("%q taken as %v", s, p)
		}
		if p.Overlaps(refusalRange) || p.Contains(refusalOne) {
			t.Fatalf("%q taken as %v, which holds a refusal code", s, p)
		}
		if g, err := parseCode(p.String()); err != nil || g != p {
			t.Fatalf("%q: %v reads back as %v, %v", s, p, g, err)
		}
	})
}

// FuzzParseTemplate checks the reply and field templates of the config:
// a template taken is its source again with its placeholders written back
// in braces, each one of those allowed.
func FuzzParseTemplate(f *testing.F) {
	allowed := []string{"zone", "client", "code", "reason"}
	for _, s := range []string{"550 5.7.1 {client} listed at {zone}: {reason}", "{zone", "}{zone}", "{}", "{nope}", "{{zone}}", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := parseTemplate(s, allowed)
		if err != nil {
			return
		}
		var src strings.Builder
		for _, p := range tmpl {
			if p.name == "" {
				src.WriteString(p.lit)
				continue
			}
			if !contains(allowed, p.name) {
				t.Fatalf("%q: placeholder {%s} taken", s, p.name)
			}
			src.WriteString("{" + p.name + "}")
		}
		if src.String() != s {
			t.Fatalf("%q parsed as %+v, which is %q", s, tmpl, src.String())
		}
	})
}

// FuzzClassify checks the reading of a list's A records, which a list or
// a resolver rewriting answers may fill with anything: a listing's codes
// are sorted, distinct, inside 127.0.0.0/8, answered, and within the
// zone's codes if it has any; an answer with a refusal code or an address
// outside 127.0.0.0/8 is an error, never a listing.
func FuzzClassify(f *testing.F) {
	f.Add([]byte{127, 0, 0, 2, 127, 0, 0, 2, 127, 0, 0, 10}, true)
	f.Add([]byte{127, 0, 0, 1}, false)
	f.Add([]byte{127, 255, 255, 254, 127, 0, 0, 2}, false)
	f.Add([]byte{10, 0, 0, 2}, true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, raw []byte, withCodes bool) {
		z := &zone{name: "zen.example"}
		if withCodes {
			z.codes = []codeRule{{prefix: netip.MustParsePrefix("127.0.0.2/32")}, {prefix: netip.MustParsePrefix("127.0.1.0/24")}}
		}
		var ans answer
		for i := 0; i+4 <= len(raw) && i < 4*16; i += 4 {
			ans.addrs = append(ans.addrs, netip.AddrFrom4([4]byte(raw[i:i+4])))
		}
		listed, codes, kind, err := classify(z, ans)
		bad := false
		for _, a := range ans.addrs {
			bad = bad || isRefusal(a) || !loopback8.Contains(a)
		}
		if bad {
			if err == nil || kind == "" || listed {
				t.Fatalf("%v: listed %v, kind %q, err %v", ans.addrs, listed, kind, err)
			}
			return
		}
		if err != nil || listed != (len(codes) > 0) {
			t.Fatalf("%v: listed %v with %v, %v", ans.addrs, listed, codes, err)
		}
		for i, c := range codes {
			if i > 0 && !codes[i-1].Less(c) {
				t.Fatalf("%v: codes %v not sorted and distinct", ans.addrs, codes)
			}
			if !slices.Contains(ans.addrs, c) || (withCodes && z.rule(c) == nil) {
				t.Fatalf("%v: code %v not answered or not the zone's", ans.addrs, c)
			}
		}
	})
}
