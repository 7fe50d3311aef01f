package dnsbl

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// docs/dnsbl.md: "When several refusing lists list a client at the same
// stage, reject wins over tempfail, and among equals the first list in
// configuration order provides the reply", whatever order the lookups
// ran in (the client's address, then the sender, then the HELO name).
func TestFirstListInConfigOrderProvidesReply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		zones   []ZoneConfig
		ipStage string
		want    string
	}{
		{"helo list before sender list", []ZoneConfig{
			{Zone: "helo.test", Type: "domain", Check: []string{"helo"}, Reply: "554 5.7.1 helo list {listed}"},
			{Zone: "sender.test", Type: "domain", Check: []string{"sender"}, Reply: "554 5.7.1 sender list {listed}"},
		}, "", "554 5.7.1 helo list bad-helo.example"},
		{"domain list before ip list, ip_stage mail", []ZoneConfig{
			{Zone: "sender.test", Type: "domain", Check: []string{"sender"}, Reply: "554 5.7.1 sender list {listed}"},
			{Zone: "ip.test", Reply: "554 5.7.1 ip list {listed}"},
		}, "mail", "554 5.7.1 sender list spammer.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnsbltest.Start(t)
			srv.AddA("bad-helo.example.helo.test", 300, "127.0.0.2")
			srv.AddA("spammer.example.sender.test", 300, "127.0.0.2")
			srv.AddA("1.2.0.192.ip.test", 300, "127.0.0.2")
			cfg := baseConfig(srv, tc.zones...)
			cfg.IPStage = tc.ipStage
			e := newEnv(t, srv, cfg, nil)
			v := e.check(t, filters.StageMailFrom, message("192.0.2.1", "bad-helo.example", "bob@spammer.example", ""))
			if v.Action != filters.Reject || v.Reply == nil || v.Reply.String() != tc.want {
				t.Errorf("got %v reply %v, want the first list's in configuration order, %q", v.Action, v.Reply, tc.want)
			}
		})
	}
}

// A datagram with another ID is no answer to the query (see
// TestAnswerWithAnotherIDIsIgnored), also when it does not parse (its
// question name here is a compression pointer to itself): the real
// answer after it counts. miekg/dns ended the exchange at such a
// datagram, so a forger who knew the query's port, not its ID, made a
// listed client's lookup fail and the client pass.
func TestUnparsableDatagramWithAnotherIDIsIgnored(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		// Forged: another ID, QR set, QDCOUNT 1, and a question name
		// that is a compression pointer to itself: it does not parse.
		id := r.Id ^ 0x5a5a
		w.Write([]byte{byte(id >> 8), byte(id), 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1})
		real := new(dns.Msg)
		real.SetReply(r)
		real.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(127, 0, 0, 2)}}
		w.WriteMsg(real)
	})}
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go s.ActivateAndServe()
	t.Cleanup(func() { s.Shutdown() })
	<-started

	cfg := Config{Servers: []string{pc.LocalAddr().String()}, Timeout: 2 * time.Second, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("listed, after a forged unparsable datagram of another ID: %+v, want reject; observer: %s", v, e.obs)
	}
}

// docs/dnsbl.md, max_ttl: "0s caches no answer ... failed queries are
// remembered for failure_ttl all the same"; a refusal code "counts as an
// error of kind list_refused" and is cached for failure_ttl. With
// max_ttl: 0s a refusal was not remembered at all, and every message
// asked the list again.
func TestRefusalRememberedWithMaxTTLZero(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.255.255.254")
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.MaxTTL = dur(0)
	e := newEnv(t, srv, cfg, nil)
	for i := 0; i < 2; i++ {
		if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
			t.Fatalf("refusal: %+v", v)
		}
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 1 {
		t.Errorf("%d queries for a refused name within failure_ttl, want 1 (the refusal remembered for failure_ttl)", n)
	}
}
