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
