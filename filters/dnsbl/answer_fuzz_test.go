package dnsbl

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fuzzQuery is the name every FuzzInterpret answer is read for.
const fuzzQuery = "2.0.0.127.zen.example"

// FuzzInterpret checks the reading of a DNS answer off the wire, which a
// list, a resolver rewriting answers, or a spoofer writes: whatever the
// message, the answer holds only the distinct addresses of A records (of
// an A query) owned by the name asked or an alias the answer leads it to,
// at most maxAddrs of them, or is a failure; its texts are clean and
// within a reason's length; it is negative exactly when nothing of the
// type asked was found; and it is cached no longer than its records and
// max_ttl allow.
func FuzzInterpret(f *testing.F) {
	for _, m := range fuzzAnswerSeeds() {
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, true)
		f.Add(wire, false)
	}
	const maxTTL = time.Hour
	f.Fuzz(func(t *testing.T, wire []byte, askA bool) {
		var resp dns.Msg
		if err := resp.Unpack(wire); err != nil {
			return // failure() reads these
		}
		qtype := dns.TypeTXT
		if askA {
			qtype = dns.TypeA
		}
		a := interpret(&resp, fuzzQuery, qtype, "192.0.2.53:53", maxTTL)

		if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
			if a.fail == "" || a.err == nil || len(a.addrs) > 0 || len(a.txt) > 0 {
				t.Fatalf("rcode %d read as %+v", resp.Rcode, a)
			}
			return
		}
		if a.fail != "" {
			// The only failure of a readable answer: too many addresses.
			if a.fail != KindBadAnswer || len(fuzzOwnedAddrs(&resp, qtype)) <= maxAddrs {
				t.Fatalf("%v read as the failure %q: %v", &resp, a.fail, a.err)
			}
			return
		}
		if want := fuzzOwnedAddrs(&resp, qtype); !slices.Equal(a.addrs, want) {
			t.Fatalf("addresses %v, want %v, in\n%v", a.addrs, want, &resp)
		}
		if qtype != dns.TypeTXT && len(a.txt) > 0 {
			t.Fatalf("texts %q for an A query", a.txt)
		}
		total := 0
		for _, s := range a.txt {
			if s == "" || !clean(s) {
				t.Fatalf("text %q is not clean", s)
			}
			total += len(s)
		}
		if total > maxReason {
			t.Fatalf("%d bytes of text kept, at most %d", total, maxReason)
		}
		texts := resp.Rcode == dns.RcodeSuccess && qtype == dns.TypeTXT && fuzzOwnsTXT(&resp)
		if a.nx != (len(a.addrs) == 0 && !texts) {
			t.Fatalf("negative %v with addresses %v and texts %v (%q)", a.nx, a.addrs, texts, a.txt)
		}
		if a.ttl < 0 || (!a.failed() && a.ttl > maxTTL) {
			t.Fatalf("cached for %v, max_ttl %v", a.ttl, maxTTL)
		}
		if a.nx {
			var soa *dns.SOA
			for _, rr := range resp.Ns {
				if s, ok := rr.(*dns.SOA); ok {
					soa = s
					break
				}
			}
			if soa == nil && a.ttl != 0 {
				t.Fatalf("negative answer without SOA cached for %v", a.ttl)
			}
			if soa != nil && (a.ttl > time.Duration(ttlOf(soa.Hdr.Ttl))*time.Second || a.ttl > time.Duration(ttlOf(soa.Minttl))*time.Second) {
				t.Fatalf("negative answer cached for %v, SOA TTL %d MINIMUM %d", a.ttl, soa.Hdr.Ttl, soa.Minttl)
			}
			return
		}
		// A positive answer is cached no longer than any record that
		// made it.
		owners := fuzzOwners(&resp)
		for _, rr := range resp.Answer {
			h := rr.Header()
			if !owners[strings.ToLower(h.Name)] {
				continue
			}
			if h.Rrtype == dns.TypeCNAME || h.Rrtype == qtype {
				if limit := time.Duration(ttlOf(h.Ttl)) * time.Second; a.ttl > limit {
					t.Fatalf("cached for %v, record %v allows %v", a.ttl, rr, limit)
				}
			}
		}
	})
}

// fuzzOwners returns the owner names whose records answer fuzzQuery, lower
// case: the name and, over and over until nothing changes, the targets of
// CNAMEs owned by a name already found. It is the plain definition that
// chain implements with an index.
func fuzzOwners(m *dns.Msg) map[string]bool {
	owners := map[string]bool{strings.ToLower(dns.Fqdn(fuzzQuery)): true}
	for changed := true; changed; {
		changed = false
		for _, rr := range m.Answer {
			c, ok := rr.(*dns.CNAME)
			if !ok || !owners[strings.ToLower(c.Hdr.Name)] || owners[strings.ToLower(c.Target)] {
				continue
			}
			owners[strings.ToLower(c.Target)] = true
			changed = true
		}
	}
	return owners
}

// fuzzOwnedAddrs returns the distinct addresses of the A records that
// answer an A query for fuzzQuery, in the order they come; none for
// another query type or a negative answer.
func fuzzOwnedAddrs(m *dns.Msg, qtype uint16) []netip.Addr {
	if qtype != dns.TypeA || m.Rcode != dns.RcodeSuccess {
		return nil
	}
	owners := fuzzOwners(m)
	var out []netip.Addr
	for _, rr := range m.Answer {
		r, ok := rr.(*dns.A)
		if !ok || !owners[strings.ToLower(r.Hdr.Name)] {
			continue
		}
		ip, ok := netip.AddrFromSlice(r.A)
		if ok && !slices.Contains(out, ip.Unmap()) {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// fuzzOwnsTXT reports whether some TXT record answers fuzzQuery.
func fuzzOwnsTXT(m *dns.Msg) bool {
	owners := fuzzOwners(m)
	for _, rr := range m.Answer {
		if r, ok := rr.(*dns.TXT); ok && owners[strings.ToLower(r.Hdr.Name)] {
			return true
		}
	}
	return false
}

// fuzzAnswerSeeds are answers as lists and resolvers give them, and as
// they go wrong.
func fuzzAnswerSeeds() []*dns.Msg {
	q := dns.Fqdn(fuzzQuery)
	hdr := func(name string, t uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	a := func(name, ip string, ttl uint32) dns.RR {
		return &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: net.ParseIP(ip)}
	}
	txt := func(name string, ttl uint32, parts ...string) dns.RR {
		return &dns.TXT{Hdr: hdr(name, dns.TypeTXT, ttl), Txt: parts}
	}
	cname := func(name, target string, ttl uint32) dns.RR {
		return &dns.CNAME{Hdr: hdr(name, dns.TypeCNAME, ttl), Target: target}
	}
	soa := &dns.SOA{Hdr: hdr("zen.example.", dns.TypeSOA, 900), Ns: "ns.zen.example.", Mbox: "hostmaster.zen.example.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 150}
	msg := func(rcode int, answer []dns.RR, ns ...dns.RR) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(q, dns.TypeA)
		m.Response = true
		m.Rcode = rcode
		m.Answer = answer
		m.Ns = ns
		return m
	}
	many := make([]dns.RR, 0, maxAddrs+1)
	for i := range maxAddrs + 1 {
		many = append(many, a(q, netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}).String(), 300))
	}
	return []*dns.Msg{
		msg(dns.RcodeSuccess, []dns.RR{a(q, "127.0.0.2", 300), a(q, "127.0.0.10", 60), a(q, "127.0.0.2", 300)}),
		msg(dns.RcodeSuccess, []dns.RR{txt(q, 300, "Listed; see https://zen.example/query?ip=192.0.2.1", " \"more\" ")}),
		msg(dns.RcodeNameError, nil, soa),
		msg(dns.RcodeNameError, []dns.RR{a(q, "127.0.0.2", 300)}, soa),
		msg(dns.RcodeSuccess, nil, soa),
		msg(dns.RcodeSuccess, nil),
		msg(dns.RcodeSuccess, []dns.RR{cname("Alias.Example.", "127.0.0.2.other.example.", 30), a("127.0.0.2.other.example.", "127.0.0.4", 600), cname(strings.ToUpper(q), "alias.example.", 100)}),
		msg(dns.RcodeSuccess, []dns.RR{cname(q, "loop.example.", 100), cname("loop.example.", q, 100), a("loop.example.", "127.0.0.3", 100)}),
		msg(dns.RcodeSuccess, []dns.RR{a("1.0.0.127.zen.example.", "127.0.0.2", 300), txt("other.example.", 300, "not ours")}),
		msg(dns.RcodeSuccess, []dns.RR{a(q, "192.0.2.1", 2147483648), txt(q, 5, strings.Repeat("x", 255), strings.Repeat("y\x00\r\n", 60))}),
		msg(dns.RcodeSuccess, many),
		msg(dns.RcodeServerFailure, nil),
		msg(dns.RcodeRefused, nil),
		msg(dns.RcodeFormatError, []dns.RR{a(q, "127.0.0.2", 300)}),
		msg(dns.RcodeSuccess, []dns.RR{a(q, "127.255.255.254", 300)}),
	}
}

// FuzzEndsEarly checks the test by which a UDP answer that does not parse
// is asked for again over TCP (see endsEarly): a whole message never
// ends early, and one cut anywhere after its header so that it no longer
// parses always does. The messages are packed anew, compressed, so that
// their names point back only, as a server writes them.
func FuzzEndsEarly(f *testing.F) {
	for _, m := range fuzzAnswerSeeds() {
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, uint16(len(wire)-3))
		f.Add(wire, uint16(20))
	}
	f.Fuzz(func(t *testing.T, wire []byte, cut uint16) {
		endsEarly(wire) // whatever the bytes, no panic
		var m dns.Msg
		if m.Unpack(wire) != nil {
			return
		}
		m.Compress = true
		whole, err := m.Pack()
		if err != nil || new(dns.Msg).Unpack(whole) != nil {
			return
		}
		if endsEarly(whole) {
			t.Fatalf("a whole message ends early:\n%v", &m)
		}
		if len(whole) <= 12 {
			return
		}
		k := 12 + int(cut)%(len(whole)-12)
		if new(dns.Msg).Unpack(whole[:k]) != nil && !endsEarly(whole[:k]) {
			t.Fatalf("cut at %d of %d bytes, not found to end early:\n%v", k, len(whole), &m)
		}
	})
}
