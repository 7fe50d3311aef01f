package dnsbl

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// A server that gives no answer is passed over while another answers:
// with two of three resolvers dead and two attempts, taking the servers
// strictly in turn failed every third lookup, leaving those clients
// unchecked. Once the dead servers have shown themselves, every lookup
// is answered, and only by the live server.
func TestResolverPassesOverDeadServers(t *testing.T) {
	srv := dnsbltest.Start(t)
	var dead []string
	for range 2 {
		// Reads queries and never answers.
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		dead = append(dead, pc.LocalAddr().String())
	}
	r := newResolver([]string{dead[0], dead[1], srv.Addr}, 100*time.Millisecond, 2)
	failed := 0
	const lookups = 30
	for i := range lookups {
		name := fmt.Sprintf("%d.2.0.192.zen.example", i)
		srv.AddA(name, 60, "127.0.0.2")
		a := r.query(context.Background(), name, dns.TypeA, time.Hour, time.Minute)
		if a.fail != "" {
			failed++
			continue
		}
		if len(a.addrs) != 1 || a.addrs[0].String() != "127.0.0.2" {
			t.Errorf("%s: %+v", name, a)
		}
	}
	// The first lookup may meet both dead servers before either is known
	// to be dead.
	if failed > 1 {
		t.Errorf("%d of %d lookups failed with a live server configured", failed, lookups)
	}
	if n := len(srv.Queries()); n != lookups-failed {
		t.Errorf("the live server got %d queries for %d lookups answered", n, lookups-failed)
	}

	// A server passed over is asked again once its time is up: with
	// every server down, the order is the plain turn.
	if got := r.order(0, time.Now().Add(downFor+time.Second)); fmt.Sprint(got) != "[0 1 2]" {
		t.Errorf("order after downFor: %v, want [0 1 2]", got)
	}
}

// A server without EDNS answers queries with an OPT record FORMERR (RFC
// 6891 section 7). It is asked again without one, and then, for a while,
// without one from the start, so that it costs no extra round trip per
// lookup. Every lookup failed before.
func TestResolverFallsBackWithoutEDNS(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.WithoutEDNS()
	srv.AddA("1.2.0.192.bl.test", 60, "127.0.0.2")
	srv.AddA("2.2.0.192.bl.test", 60, "127.0.0.3")
	r := newResolver([]string{srv.Addr}, time.Second, 1)

	a := r.query(context.Background(), "1.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	if a.fail != "" || len(a.addrs) != 1 || a.addrs[0].String() != "127.0.0.2" {
		t.Fatalf("server without EDNS: %+v, want the listing", a)
	}
	if got := fmt.Sprint(srv.Queries()); got != "[{1.2.0.192.bl.test 1 udp true} {1.2.0.192.bl.test 1 udp false}]" {
		t.Errorf("queries %s, want one with EDNS, then one without", got)
	}
	a = r.query(context.Background(), "2.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	if a.fail != "" || len(a.addrs) != 1 || a.addrs[0].String() != "127.0.0.3" {
		t.Fatalf("second lookup: %+v, want the listing", a)
	}
	if got := fmt.Sprint(srv.Queries()[2:]); got != "[{2.2.0.192.bl.test 1 udp false}]" {
		t.Errorf("second lookup: queries %s, want one without EDNS", got)
	}
	// Remembered for noEDNSFor, not for ever: a server upgraded since is
	// asked with EDNS again.
	until := time.Unix(0, r.noEDNS[0].Load())
	if d := time.Until(until); d <= noEDNSFor-time.Minute || d > noEDNSFor {
		t.Errorf("server remembered without EDNS for %s, want %s", d, noEDNSFor)
	}
	r.noEDNS[0].Store(time.Now().Add(-time.Second).UnixNano())
	r.query(context.Background(), "1.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	if got := fmt.Sprint(srv.Queries()[3:]); got != "[{1.2.0.192.bl.test 1 udp true} {1.2.0.192.bl.test 1 udp false}]" {
		t.Errorf("after noEDNSFor: queries %s, want one with EDNS, then one without", got)
	}
}

// A FORMERR that carries an OPT record comes from a server that does
// implement EDNS and found fault with the query (RFC 6891 section 7):
// asking again without EDNS is no remedy, and the server is not taken
// for one without it.
func TestResolverKeepsEDNSAfterFormerrWithOPT(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 60, "127.0.0.2")
	srv.SetBehaviour("1.2.0.192.bl.test", dnsbltest.BadEDNS)
	srv.AddA("2.2.0.192.bl.test", 60, "127.0.0.3")
	r := newResolver([]string{srv.Addr}, time.Second, 1)
	a := r.query(context.Background(), "1.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	if a.fail != KindRcode {
		t.Errorf("FORMERR with OPT: %+v, want a failure of kind %s", a, KindRcode)
	}
	r.query(context.Background(), "2.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	if got := fmt.Sprint(srv.Queries()); got != "[{1.2.0.192.bl.test 1 udp true} {2.2.0.192.bl.test 1 udp true}]" {
		t.Errorf("queries %s, want each once, with EDNS", got)
	}
}
