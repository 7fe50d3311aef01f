package dnsbl

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// tcpAnswerServer runs a DNS server on one 127.0.0.1 port that answers
// every query over UDP with an empty, truncated reply and over TCP with
// whatever reply makes of it, compressed: the way to get an answer of up
// to 64 KiB to the resolver, as a hostile server can.
func tcpAnswerServer(t *testing.T, reply func(r *dns.Msg) *dns.Msg) string {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for range 50 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no loopback port free for both udp and tcp")
	}
	udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Truncated = true
		w.WriteMsg(m)
	})}
	tcp := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := reply(r)
		m.Compress = true
		w.WriteMsg(m)
	})}
	for _, s := range []*dns.Server{udp, tcp} {
		serveDNS(t, s)
	}
	return pc.LocalAddr().String()
}

// cnameChain returns n CNAMEs leading from name (fully qualified) through
// n other names to the last, in reverse order and in upper case, so that
// resolving the chain one round at a time takes n rounds over all n
// records, and lowering a name allocates.
func cnameChain(name string, n int) (rrs []dns.RR, last string) {
	owner := name
	chain := make([]dns.RR, 0, n)
	for i := range n {
		target := fmt.Sprintf("C%d.BL.TEST.", i)
		chain = append(chain, &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: target})
		owner = target
	}
	for i := len(chain) - 1; i >= 0; i-- {
		rrs = append(rrs, chain[i])
	}
	return rrs, owner
}

// A hostile answer of thousands of CNAMEs in reverse order made the
// CNAME chain quadratic work: about a second of CPU for one 64 KiB
// answer, on every lookup the server answers so (with TTL 0, nothing is
// cached). The chain is followed in work linear in the records; the
// listing at its end still counts.
func TestLongCNAMEChainIsLinearWork(t *testing.T) {
	const name = "1.2.0.192.bl.test."
	const n = 2700
	chain, last := cnameChain("1.2.0.192.BL.TEST.", n)
	answer := append(chain, &dns.A{Hdr: dns.RR_Header{Name: last, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0}, A: net.IPv4(127, 0, 0, 2)})
	reply := func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == name {
			m.Answer = answer
		}
		return m
	}
	probe := reply(new(dns.Msg).SetQuestion(name, dns.TypeA))
	probe.Compress = true
	if wire, err := probe.Pack(); err != nil || len(wire) > dns.MaxMsgSize {
		t.Fatalf("the answer does not fit a TCP message: %d bytes, %v", len(wire), err)
	}
	addr := tcpAnswerServer(t, reply)
	cfg := Config{Servers: []string{addr}, Timeout: 5 * time.Second, Attempts: 1, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("listed at the end of a chain of %d CNAMEs: %+v, want reject", n, v)
	}

	allocs := testing.AllocsPerRun(1, func() { interpret(probe, "1.2.0.192.bl.test", dns.TypeA, "server", time.Hour) })
	if allocs > 10*n {
		t.Errorf("reading an answer of %d CNAMEs took %.0f allocations, want at most %d", n, allocs, 10*n)
	}
}

// CNAMEs that loop end the chain where it meets itself: the records of
// the names in the loop count, and a loop without records lists nobody.
func TestCNAMELoop(t *testing.T) {
	addr := answerServer(t, func(qname string) []dns.RR {
		switch qname {
		case "1.2.0.192.bl.test.":
			return []dns.RR{
				mustRR(t, "1.2.0.192.bl.test. 300 IN CNAME a.bl.test."),
				mustRR(t, "a.bl.test. 300 IN CNAME B.bl.test."),
				mustRR(t, "b.bl.test. 300 IN CNAME 1.2.0.192.bl.test."),
				mustRR(t, "b.bl.test. 300 IN A 127.0.0.2"),
			}
		case "2.2.0.192.bl.test.":
			return []dns.RR{
				mustRR(t, "2.2.0.192.bl.test. 300 IN CNAME a.bl.test."),
				mustRR(t, "a.bl.test. 300 IN CNAME 2.2.0.192.bl.test."),
			}
		}
		return nil
	})
	cfg := Config{Servers: []string{addr}, Timeout: 300 * time.Millisecond, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("listed inside a CNAME loop: %+v, want reject", v)
	}
	if v := e.check(t, filters.StageConnect, conn("192.0.2.2")); v.Action != filters.Continue {
		t.Errorf("a CNAME loop without records: %+v, want continue", v)
	}
}

// A list that answers TXT queries with 60 KiB of text had all of it kept
// in the cache, for every listed name it was asked about: with the
// default cache_size, some 600 MB. Only what a reason can show is kept.
func TestHugeTXTKeepsOnlyTheReason(t *testing.T) {
	srv := dnsbltest.Start(t)
	name := "1.2.0.192.bl.test"
	srv.AddA(name, 300, "127.0.0.2")
	for i := range 200 {
		srv.AddTXT(name, 300, fmt.Sprintf("Listed %d, see https://bl.test/%s", i, strings.Repeat("x", 260)))
	}
	srv.SetBehaviour(name, dnsbltest.Truncate)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test", TXT: true}), nil)
	v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if v.Action != filters.Reject || v.Reply == nil || !strings.Contains(v.Reply.Text, "(Listed 0, see https://bl.test/xxx") {
		t.Fatalf("verdict %+v, want a reject with the TXT text as reason", v)
	}
	if n := srv.CountNet(name, dns.TypeTXT, "tcp"); n != 1 {
		t.Fatalf("%d TXT queries over TCP, want 1 (the test needs the whole answer read)", n)
	}
	ans, ok := e.f.cache.get(cacheKey{name: name, qtype: dns.TypeTXT}, e.f.lifetimes())
	if !ok {
		t.Fatal("the TXT answer is not cached")
	}
	kept := 0
	for _, s := range ans.txt {
		kept += len(s)
	}
	if kept > maxReason {
		t.Errorf("the cached TXT answer keeps %d bytes of text in %d strings, want at most %d", kept, len(ans.txt), maxReason)
	}
}

// An A answer is a handful of return codes. One of 1500 distinct
// addresses was kept whole in the cache (some 100 KB per name) and made
// as many codes: a header field of tens of kilobytes and a metric series
// per address. It is no DNSBL answer, and counts as a bad answer; one
// address given many times is one code.
func TestManyAddressesAreNoListing(t *testing.T) {
	srv := dnsbltest.Start(t)
	many := "1.2.0.192.bl.test"
	var addrs []string
	for i := range 1500 {
		addrs = append(addrs, fmt.Sprintf("127.0.%d.%d", 1+i/250, 2+i%250))
	}
	srv.AddA(many, 300, addrs...)
	srv.SetBehaviour(many, dnsbltest.Truncate)
	same := "2.2.0.192.bl.test"
	for range 200 {
		srv.AddA(same, 300, "127.0.0.2")
	}
	srv.SetBehaviour(same, dnsbltest.Truncate)
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.Attempts = 1
	cfg.Timeout = 5 * time.Second
	e := newEnv(t, srv, cfg, nil)

	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Errorf("1500 addresses: %v, want continue", v.Action)
	}
	if n := srv.CountNet(many, dns.TypeA, "tcp"); n != 1 {
		t.Fatalf("%d queries over TCP, want 1 (the test needs the whole answer read)", n)
	}
	if n := e.obs.get("error bl.test " + KindBadAnswer); n != 1 {
		t.Errorf("%d bad answers counted, want 1", n)
	}
	if ans, ok := e.f.cache.get(cacheKey{name: many, qtype: dns.TypeA}, e.f.lifetimes()); ok && len(ans.addrs) > maxAddrs {
		t.Errorf("the cache keeps %d addresses of one answer", len(ans.addrs))
	}

	v := e.check(t, filters.StageConnect, conn("192.0.2.2"))
	if v.Action != filters.Reject || !strings.Contains(v.Reason, "(127.0.0.2)") {
		t.Errorf("one address 200 times: %+v, want a reject with the one code", v)
	}
	if ans, _ := e.f.cache.get(cacheKey{name: same, qtype: dns.TypeA}, e.f.lifetimes()); len(ans.addrs) != 1 {
		t.Errorf("one address 200 times: %d addresses cached, want 1", len(ans.addrs))
	}
}

// The listings metric has a series per return code. A list answering
// every name with codes of its own made a new series per listing, without
// end: some 16 million codes fit in 127.0.0.0/8. The first maxCodeLabels
// codes of a list are told apart; later ones count as OtherCode.
func TestReturnCodesInMetricsBounded(t *testing.T) {
	addr := answerServer(t, func(qname string) []dns.RR {
		var client int
		if _, err := fmt.Sscanf(qname, "%d.2.0.192.bl.test.", &client); err != nil {
			return nil
		}
		var rrs []dns.RR
		for i := range maxAddrs {
			rrs = append(rrs, mustRR(t, fmt.Sprintf("%s 300 IN A 127.1.%d.%d", qname, client, 2+i)))
		}
		return rrs
	})
	cfg := Config{Servers: []string{addr}, Timeout: 300 * time.Millisecond, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	const clients = 20
	for i := range clients {
		if v := e.check(t, filters.StageConnect, conn(fmt.Sprintf("192.0.2.%d", 1+i))); v.Action != filters.Reject {
			t.Fatalf("client %d: %+v, want reject", i+1, v)
		}
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	labels, listings := 0, 0
	for k, n := range e.obs.counts {
		if strings.HasPrefix(k, "listed bl.test ") {
			labels++
			listings += n
		}
	}
	if listings != clients*maxAddrs {
		t.Errorf("%d listings counted, want %d", listings, clients*maxAddrs)
	}
	if labels > maxCodeLabels+1 || e.obs.counts["listed bl.test "+OtherCode] != clients*maxAddrs-maxCodeLabels {
		t.Errorf("%d distinct codes reported, %d as %s; want at most %d and the rest as %[3]s", labels, e.obs.counts["listed bl.test "+OtherCode], OtherCode, maxCodeLabels)
	}
	if e.obs.counts["listed bl.test 127.1.1.2"] != 1 {
		t.Error("the first code is not reported as itself")
	}
}

// RFC 5322 allows comments and blanks inside an address, around the
// atoms of its domain (CFWS, section 3.4.1; the obsolete forms of section
// 4.4): a mail reader shows "bob@(x)spammer.example" and "bob @ spammer .
// example" as bob@spammer.example. net/mail refuses them, and the search
// of a field it refuses split them into words none of which was an
// address, so a listed From domain went unchecked.
func TestCommentsInFromAddressDoNotHideTheDomain(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}}), nil)
	for _, from := range []string{
		"bob@(comment)spammer.example",
		"Bob <bob @ spammer.example>",
		"Bob <bob@ (a (nested) comment) spammer . example>",
		"bob@spammer\t.example",
	} {
		m := message("192.0.2.1", "mx.example", "bob@fine.example", from)
		if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
			t.Errorf("From %q: %v, want reject", from, v.Action)
		}
	}
}

// An answer that does not parse, here one whose record name is a
// compression pointer to itself (a loop miekg/dns refuses), is a bad
// answer: it was counted as a network error, which the docs describe as
// no server reachable, and sent whoever read the metrics looking for a
// dead resolver. Either way the client is not listed, and at once.
func TestUnparsableAnswerIsABadAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		wire, err := m.Pack()
		if err != nil {
			return
		}
		wire[7] = 1 // one answer record:
		off := len(wire)
		wire = append(wire, 0xc0|byte(off>>8), byte(off), 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2)
		w.Write(wire)
	})}
	serveDNS(t, s)

	cfg := Config{Servers: []string{pc.LocalAddr().String()}, Timeout: 5 * time.Second, Attempts: 1, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	start := time.Now()
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Errorf("verdict %+v, want continue", v)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the check took %s, want an answer at once", d)
	}
	if n := e.obs.get("error bl.test " + KindBadAnswer); n != 1 {
		t.Errorf("observer: %s, want one bad answer", e.obs)
	}
}

// The envelope sender has no comments in RFC 5321, but an MTA that reads
// MAIL FROM leniently passes on the RFC 5322 forms as written; the senders
// filter reads them as the address they name, and so must the lookup.
func TestCommentsInSenderDoNotHideTheDomain(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"sender"}}), nil)
	for _, from := range []string{
		"bob@(comment)spammer.example",
		"bob @ spammer.example",
		"bob@spammer .example",
		`"x"y@spammer.example`,
	} {
		m := message("192.0.2.1", "mx.example", from, "alice@fine.example")
		if v := e.check(t, filters.StageMailFrom, m); v.Action != filters.Reject {
			t.Errorf("MAIL FROM %q: %v, want reject", from, v.Action)
		}
	}
}

// The forms of MAIL FROM that Postfix or Sendmail accept and deliver
// from an address at spammer.example are looked up at spammer.example,
// as the senders filter reads them (filters.EnvelopeAddress): a comment
// never closed, a UUCP path, the percent hack, a quoted or escaped
// domain, a whole address in one quoted string, a final ";", a route.
func TestEnvelopeFormsDoNotHideTheDomain(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"sender"}}), nil)
	for _, from := range []string{
		"<bob@spammer.example (x>",
		"bob@spammer.example (x",
		"spammer.example!bob",
		"<Spammer.Example!x.example!bob>",
		"bob%spammer.example",
		"bob%x.example%spammer.example",
		`"bob"%spammer.example`,
		`bob@"spammer.example"`,
		`bob@spammer.example\ `,
		`"bob@spammer.example"`,
		`<"Bob@Spammer.Example">`,
		"bob@spammer.example ;",
		"bob@spammer.example.;;",
		"@relay.example:bob@spammer.example",
	} {
		m := message("192.0.2.1", "mx.example", from, "alice@fine.example")
		if v := e.check(t, filters.StageMailFrom, m); v.Action != filters.Reject {
			t.Errorf("MAIL FROM %q: %v, want reject", from, v.Action)
		}
	}
	// Not at spammer.example: a "%" or "!" before an "@" is part of the
	// local part, and a route to no address is the null sender.
	for _, from := range []string{
		"bob%spammer.example@fine.example",
		"spammer.example!bob@fine.example",
		`"bob@spammer.example"@fine.example`,
		"<@spammer.example:>",
	} {
		m := message("192.0.2.1", "mx.example", from, "alice@fine.example")
		if v := e.check(t, filters.StageMailFrom, m); v.Action != filters.Continue {
			t.Errorf("MAIL FROM %q: %v, want continue", from, v.Action)
		}
	}
}

// The bound on told-apart return codes holds across reloads too: the
// metric's series outlive the filter that made them, so a list answering
// with ever new codes must not get maxCodeLabels more of them with each
// reload (a configuration manager may reload every hour).
func TestReturnCodesInMetricsBoundedAcrossReloads(t *testing.T) {
	addr := answerServer(t, func(qname string) []dns.RR {
		var client int
		if _, err := fmt.Sscanf(qname, "%d.2.0.192.bl.test.", &client); err != nil {
			return nil
		}
		var rrs []dns.RR
		for i := range maxAddrs {
			rrs = append(rrs, mustRR(t, fmt.Sprintf("%s 300 IN A 127.1.%d.%d", qname, client, 2+i)))
		}
		return rrs
	})
	cfg := Config{Servers: []string{addr}, Timeout: 300 * time.Millisecond, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	shared := NewShared()
	obs := newRecorder()
	const clients, reloads = 10, 3
	for r := range reloads {
		f, err := New(filters.Env{Name: "dnsbl", Observer: obs}, cfg, shared)
		if err != nil {
			t.Fatal(err)
		}
		for i := range clients {
			ip := fmt.Sprintf("192.0.2.%d", 1+r*clients+i)
			if v, err := f.Check(context.Background(), filters.StageConnect, conn(ip)); err != nil || v.Action != filters.Reject {
				t.Fatalf("client %s: %+v, %v; want reject", ip, v, err)
			}
		}
		f.Close()
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	labels := 0
	for k := range obs.counts {
		if strings.HasPrefix(k, "listed bl.test ") && k != "listed bl.test "+OtherCode {
			labels++
		}
	}
	if labels != maxCodeLabels {
		t.Errorf("%d codes told apart after %d reloads, want %d", labels, reloads, maxCodeLabels)
	}
}

// A domain in 8-bit text that is not UTF-8 (a Latin-1 From field, or
// envelope) is the domain a mail reader shows, reading it as
// windows-1252: "b\xfccher.example" is bücher.example. Read as UTF-8,
// each such byte became U+FFFD and the name looked up was one no list
// holds, so a listed domain so written went unchecked. The senders
// filter reads it the same way.
func TestEightBitDomainIsLookedUpAsShown(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("xn--bcher-kva.example.dbl.test", 300, "127.0.1.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"sender", "header_from"}}), nil)
	m := message("192.0.2.1", "mx.example", "bob@fine.example", "Bank <bob@b\xfccher.example>")
	if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
		t.Errorf("From in Latin-1: %v, want reject; queries %v", v.Action, srv.Queries())
	}
	m = message("192.0.2.1", "mx.example", "bob@B\xdcCHER.example", "")
	if v := e.check(t, filters.StageMailFrom, m); v.Action != filters.Reject {
		t.Errorf("envelope sender in Latin-1: %v, want reject; queries %v", v.Action, srv.Queries())
	}
}

// An internationalised sender (SMTPUTF8: UTF-8 in MAIL FROM, in From:
// and in HELO) is looked up by its A-label, in lower case: DNS names are
// ASCII, and a list holds the domain only in that form. No query carries
// the raw UTF-8 bytes.
func TestUTF8DomainIsLookedUpAsALabel(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("xn--exmple-cua.org.dbl.test", 300, "127.0.1.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"sender", "header_from", "helo"}}), nil)
	for _, c := range []struct {
		stage           filters.Stage
		helo, from, hdr string
	}{
		{filters.StageMailFrom, "mx.fine.example", "jösé@exämple.org", ""},
		{filters.StageMailFrom, "mx.fine.example", "jösé@EXÄMPLE.org", ""},
		{filters.StageMailFrom, "mx.fine.example", "x@xn--exmple-cua.org", ""},
		{filters.StageMailFrom, "exämple.org", "x@grün.example", ""},
		{filters.StageHeaders, "mx.fine.example", "x@grün.example", "José Müller <jösé@Exämple.org>"},
	} {
		m := message("192.0.2.1", c.helo, c.from, c.hdr)
		if v := e.check(t, c.stage, m); v.Action != filters.Reject {
			t.Errorf("HELO %s, MAIL FROM %s, From %q: %v, want reject; queries %v", c.helo, c.from, c.hdr, v.Action, srv.Queries())
		}
	}
	for _, q := range srv.Queries() {
		for i := 0; i < len(q.Name); i++ {
			if c := q.Name[i]; c >= 0x80 || c >= 'A' && c <= 'Z' {
				t.Errorf("query name %q is not a lower-case A-label", q.Name)
				break
			}
		}
	}
	if n := srv.Count("xn--grn-ioa.example.dbl.test", dns.TypeA); n == 0 {
		t.Errorf("grün.example not looked up as xn--grn-ioa.example; queries %v", srv.Queries())
	}
}
