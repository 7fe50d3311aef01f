package dnsbl

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// An IPv4 client that reaches a dual-stack listener shows as an
// IPv4-mapped IPv6 address (::ffff:192.0.2.1). It is an IPv4 client: it
// is looked up in IPv4 lists by its four octets, never by the nibbles of
// the mapped form, which no list holds, and a mapped private address is
// skipped like the plain one.
func TestIPv4MappedClient(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	e := newEnv(t, srv, baseConfig(srv,
		ZoneConfig{Zone: "bl.test", Family: "ipv4"},
		ZoneConfig{Zone: "bl6.test", Family: "ipv6"},
	), nil)

	v := e.check(t, filters.StageConnect, conn("::ffff:192.0.2.1"))
	if v.Action != filters.Reject {
		t.Fatalf("mapped listed client: verdict %+v, want reject", v)
	}
	if v.Reply == nil || !strings.Contains(v.Reply.Text, "[192.0.2.1]") {
		t.Errorf("reply %v does not name the client in its IPv4 form", v.Reply)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 1 {
		t.Errorf("queries for 1.2.0.192.bl.test: %d, want 1; all: %v", n, srv.Queries())
	}

	if v := e.check(t, filters.StageConnect, conn("::ffff:10.1.2.3")); v.Action != filters.Continue {
		t.Errorf("mapped private client: verdict %+v, want continue", v)
	}
	// The one name asked about, whatever the record type.
	for _, q := range srv.Queries() {
		if q.Name != "1.2.0.192.bl.test" {
			t.Errorf("unexpected query %s", q.Name)
		}
	}
}

// A trusted network written in the mapped form (as a dual-stack socket
// shows an IPv4 client, ::ffff:192.0.2.0/120) trusts the IPv4 clients it
// names: clients are compared in their IPv4 form, so the network must be
// too.
func TestTrustedNetworkInMappedForm(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	srv.AddA("9.2.0.192.bl.test", 300, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.TrustedNetworks = []string{"::ffff:192.0.2.0/125", "::ffff:192.0.2.9"}
	e := newEnv(t, srv, cfg, nil)
	for _, ip := range []string{"192.0.2.1", "::ffff:192.0.2.1", "192.0.2.9"} {
		if v := e.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Continue {
			t.Errorf("client %s in a trusted network: %+v, want continue", ip, v)
		}
	}
	// Outside them: looked up as usual.
	e.check(t, filters.StageConnect, conn("192.0.2.10"))
	if q := srv.Queries(); len(q) != 1 || q[0].Name != "10.2.0.192.bl.test" {
		t.Errorf("queries %v, want only 10.2.0.192.bl.test", q)
	}
}

// A client address may come with an IPv6 zone ("2001:db8::1%eth0", as
// Sendmail's textual form of it can carry one). The zone only says which
// interface the address was reached through: it is the same host, so
// trusted_networks must trust it, and the zone must not show in the reply
// or in what is looked up.
func TestZonedClientAddress(t *testing.T) {
	srv := dnsbltest.Start(t)
	const rev = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	srv.AddA(rev+".bl.test", 300, "127.0.0.2")
	srv.AddA("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.b.d.0.1.0.0.2.bl.test", 300, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.TrustedNetworks = []string{"2001:db9::/32"}
	e := newEnv(t, srv, cfg, nil)

	m := conn("2001:db9::1")
	m.Conn.Addr = netip.MustParseAddr("2001:db9::1%eth0")
	if v := e.check(t, filters.StageConnect, m); v.Action != filters.Continue {
		t.Errorf("zoned client in a trusted network: %+v, want continue", v)
	}
	if q := srv.Queries(); len(q) != 0 {
		t.Errorf("trusted zoned client looked up: %v", q)
	}

	m = conn("2001:db8::1")
	m.Conn.Addr = netip.MustParseAddr("2001:db8::1%eth0")
	v := e.check(t, filters.StageConnect, m)
	if v.Action != filters.Reject {
		t.Fatalf("zoned listed client: %+v, want reject", v)
	}
	if v.Reply == nil || strings.Contains(v.Reply.Text, "%") || !strings.Contains(v.Reply.Text, "[2001:db8::1]") {
		t.Errorf("reply %v: want the client without its zone", v.Reply)
	}
	if strings.Contains(v.Reason, "%") {
		t.Errorf("reason %q names the zone", v.Reason)
	}
}
