package dnsbl

import (
	"encoding/hex"
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
