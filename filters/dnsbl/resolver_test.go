package dnsbl

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
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
	r := newResolver([]string{dead[0], dead[1], srv.Addr}, 100*time.Millisecond, 2, nil)
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
	if got := r.order(r.current().servers, 0, time.Now().Add(downFor+time.Second)); fmt.Sprint(got) != "[0 1 2]" {
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
	r := newResolver([]string{srv.Addr}, time.Second, 1, nil)

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
	r.noEDNS.mu.Lock()
	until := r.noEDNS.until[srv.Addr]
	r.noEDNS.until[srv.Addr] = time.Now().Add(-time.Second)
	r.noEDNS.mu.Unlock()
	if d := time.Until(until); d <= noEDNSFor-time.Minute || d > noEDNSFor {
		t.Errorf("server remembered without EDNS for %s, want %s", d, noEDNSFor)
	}
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
	r := newResolver([]string{srv.Addr}, time.Second, 1, nil)
	a := r.query(context.Background(), "1.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	if a.fail != KindRcode {
		t.Errorf("FORMERR with OPT: %+v, want a failure of kind %s", a, KindRcode)
	}
	r.query(context.Background(), "2.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	if got := fmt.Sprint(srv.Queries()); got != "[{1.2.0.192.bl.test 1 udp true} {2.2.0.192.bl.test 1 udp true}]" {
		t.Errorf("queries %s, want each once, with EDNS", got)
	}
}

// A server found without EDNS is remembered across a reload, which builds
// a new resolver, and by every entry that asks it: the memory lived on
// the resolver, so after each reload every such server cost a FORMERR
// round trip again.
func TestNoEDNSRememberedAcrossReloads(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.WithoutEDNS()
	for _, ip := range []string{"1", "2", "3"} {
		srv.AddA(ip+".2.0.192.bl.test", 60, "127.0.0.2")
	}
	shared := NewShared()
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	e1 := newEnv(t, srv, cfg, shared)
	if v := e1.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Fatalf("before the reload: %v, want reject", v.Action)
	}
	if got := fmt.Sprint(srv.Queries()); got != "[{1.2.0.192.bl.test 1 udp true} {1.2.0.192.bl.test 1 udp false}]" {
		t.Fatalf("before the reload: queries %s, want one with EDNS, then one without", got)
	}
	e1.f.Close()

	cfg.Zones[0].Reply = "550 5.7.1 Reloaded"
	e2 := newEnv(t, srv, cfg, shared)
	if v := e2.check(t, filters.StageConnect, conn("192.0.2.2")); v.Action != filters.Reject {
		t.Fatalf("after the reload: %v, want reject", v.Action)
	}
	if got := fmt.Sprint(srv.Queries()[2:]); got != "[{2.2.0.192.bl.test 1 udp false}]" {
		t.Errorf("after the reload: queries %s, want one, without EDNS", got)
	}
	other, err := New(filters.Env{Name: "other"}, cfg, shared)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := other.Check(ctx, filters.StageConnect, conn("192.0.2.3")); err != nil || v.Action != filters.Reject {
		t.Fatalf("another entry: %v, %v; want reject", v.Action, err)
	}
	if got := fmt.Sprint(srv.Queries()[3:]); got != "[{3.2.0.192.bl.test 1 udp false}]" {
		t.Errorf("another entry on the same server: queries %s, want one, without EDNS", got)
	}
}

// A memory of servers (those without EDNS, those that gave no answer) is
// bounded: servers whose time is up go first, then those whose time ends
// soonest; the newest is kept.
func TestServerMemoryBounded(t *testing.T) {
	m := newServerMemory(noEDNSFor)
	now := time.Now()
	m.remember("192.0.2.1:53", now.Add(-noEDNSFor)) // time up at now
	for i := range maxServerMemory - 1 {
		m.remember(fmt.Sprintf("198.51.100.%d:%d", i%250, 1000+i), now.Add(time.Duration(i)*time.Millisecond))
	}
	// Later than every server before, as time goes on.
	later := now.Add(time.Second)
	m.remember("203.0.113.1:53", later)
	if !m.holds("203.0.113.1:53", now) {
		t.Error("the server remembered last is forgotten")
	}
	if _, ok := m.until["192.0.2.1:53"]; ok {
		t.Error("a server whose time is up is kept while the memory is full")
	}
	m.remember("203.0.113.2:53", later)
	m.remember("203.0.113.3:53", later)
	if n := len(m.until); n != maxServerMemory {
		t.Errorf("%d servers remembered, bound %d", n, maxServerMemory)
	}
	if m.holds("198.51.100.0:1000", now) || !m.holds(fmt.Sprintf("198.51.100.%d:%d", (maxServerMemory-2)%250, 1000+maxServerMemory-2), now) {
		t.Error("the memory did not drop the server whose time ends soonest")
	}
}

// A server that gave no answer is remembered across a reload, which
// builds a new resolver: the memory lived on the resolver, so after each
// reload the first lookup that started at a dead server waited its
// timeout again. The resolver after the reload starts at the dead server
// as the one before did, and must pass it over at once.
func TestDeadServerRememberedAcrossReloads(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 60, "127.0.0.2")
	srv.AddA("2.2.0.192.bl.test", 60, "127.0.0.2")
	// Reads queries and never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	const timeout = time.Second
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.Servers = []string{pc.LocalAddr().String(), srv.Addr}
	cfg.Timeout = timeout
	shared := NewShared()

	e1 := newEnv(t, srv, cfg, shared)
	start := time.Now()
	if v := e1.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Fatalf("before the reload: %v, want reject", v.Action)
	}
	if took := time.Since(start); took < timeout {
		t.Fatalf("before the reload the lookup took %s: it did not start at the dead server, so this test proves nothing", took)
	}
	e1.f.Close()

	cfg.Zones[0].Reply = "550 5.7.1 Reloaded"
	e2 := newEnv(t, srv, cfg, shared)
	start = time.Now()
	if v := e2.check(t, filters.StageConnect, conn("192.0.2.2")); v.Action != filters.Reject {
		t.Fatalf("after the reload: %v, want reject", v.Action)
	}
	if took := time.Since(start); took >= timeout/2 {
		t.Errorf("the first lookup after the reload took %s: it waited for the dead server again", took)
	}
}

// A list refuses queries that come through a public resolver with a
// refusal code (Spamhaus 127.255.255.254), and resolv.conf often names
// one after the local resolver, as a fallback. Queries go to the servers
// in turn, so every other lookup reached the public one, and the list's
// refusal ended it: half the listed clients passed. A refusal code is
// asked again at the next server, as REFUSED is; only when every attempt
// is refused does the lookup count as refused.
func TestRefusalCodeAskedAtTheNextServer(t *testing.T) {
	own := dnsbltest.Start(t)
	public := dnsbltest.Start(t)
	cfg := baseConfig(own, ZoneConfig{Zone: "bl.test"})
	cfg.Servers = []string{public.Addr, own.Addr}
	cfg.Attempts = 2
	e := newEnv(t, own, cfg, nil)
	const clients = 6
	for i := range clients {
		name := fmt.Sprintf("%d.2.0.192.bl.test", i+1)
		own.AddA(name, 300, "127.0.0.2")
		public.AddA(name, 300, "127.255.255.254")
	}
	for i := range clients {
		ip := fmt.Sprintf("192.0.2.%d", i+1)
		if v := e.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Reject {
			t.Errorf("%s, listed: %v, want reject", ip, v.Action)
		}
	}
	if n := len(public.Queries()); n == 0 {
		t.Error("no query reached the public resolver: this test proves nothing")
	}
	if e.obs.get("lookup bl.test listed") != clients || e.obs.get("error bl.test list_refused") != 0 {
		t.Errorf("observer: %s, want %d listings and no refusal", e.obs, clients)
	}

	// Refused at every server: a refusal, not a listing.
	name := "99.2.0.192.bl.test"
	own.AddA(name, 300, "127.255.255.254")
	public.AddA(name, 300, "127.255.255.254")
	if v := e.check(t, filters.StageConnect, conn("192.0.2.99")); v.Action != filters.Continue {
		t.Errorf("refused everywhere: %v, want continue", v.Action)
	}
	if n := e.obs.get("error bl.test list_refused"); n != 1 {
		t.Errorf("observer: %s, want one refusal", e.obs)
	}
	if n := own.Count(name, dns.TypeA) + public.Count(name, dns.TypeA); n != 2 {
		t.Errorf("refused everywhere: %d queries, want 2 (one per server)", n)
	}

	// With one server, asking it again would be refused again.
	cfg.Servers = []string{public.Addr}
	e1 := newEnv(t, public, cfg, nil)
	name = "98.2.0.192.bl.test"
	public.AddA(name, 300, "127.255.255.254")
	if v := e1.check(t, filters.StageConnect, conn("192.0.2.98")); v.Action != filters.Continue {
		t.Errorf("refused by the only server: %v, want continue", v.Action)
	}
	if n := public.Count(name, dns.TypeA); n != 1 {
		t.Errorf("refused by the only server: %d queries, want 1", n)
	}
}

// The nameservers of resolv.conf are asked in the order listed, the
// first first, the others only when it fails, as resolv.conf(5) says and
// the C library does unless "options rotate" is set: the second is
// often a fallback (a public resolver) through which the lists answer
// differently or not at all. Taken in turn, it got half the lookups.
func TestResolverInOrder(t *testing.T) {
	own := dnsbltest.Start(t)
	fallback := dnsbltest.Start(t) // knows no listing
	r := newResolver([]string{own.Addr, fallback.Addr}, 300*time.Millisecond, 2, nil)
	r.use(serverSet{servers: r.current().servers, inOrder: true})
	const lookups = 6
	for i := range lookups {
		name := fmt.Sprintf("%d.2.0.192.bl.test", i+1)
		own.AddA(name, 60, "127.0.0.2")
		if a := r.query(context.Background(), name, dns.TypeA, time.Hour, time.Minute); len(a.addrs) != 1 {
			t.Errorf("%s: %+v, want the listing", name, a)
		}
	}
	if n := len(fallback.Queries()); n != 0 {
		t.Errorf("the fallback got %d queries while the first server answered", n)
	}

	// The first one failing, the next is asked.
	own.SetBehaviour("9.2.0.192.bl.test", dnsbltest.ServFail)
	fallback.AddA("9.2.0.192.bl.test", 60, "127.0.0.2")
	if a := r.query(context.Background(), "9.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute); len(a.addrs) != 1 {
		t.Errorf("first server failing: %+v, want the fallback's listing", a)
	}
}

func TestResolvConfRotate(t *testing.T) {
	dir := t.TempDir()
	for conf, want := range map[string]bool{
		"nameserver 127.0.0.1\n":                               false,
		"nameserver 127.0.0.1\noptions rotate\n":               true,
		"options timeout:1 rotate attempts:2\n":                true,
		"# options rotate\noptions edns0\n":                    false,
		"options rotated\nnameserver 127.0.0.1\n":              false,
		"nameserver 127.0.0.1\n  options   rotate  # spread\n": true,
	} {
		path := filepath.Join(dir, "resolv.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := resolvRotates(path); got != want {
			t.Errorf("%q: rotate %v, want %v", conf, got, want)
		}
	}
}

// Configured servers are asked in turn; without them, those of
// resolv.conf in its order unless it sets "options rotate".
func TestServersOrderFromConfig(t *testing.T) {
	srv := dnsbltest.Start(t)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	if e.f.res.current().inOrder {
		t.Error("configured servers asked in order, want in turn")
	}
	if _, err := dns.ClientConfigFromFile(resolvConf); err != nil {
		t.Skipf("no %s here: %v", resolvConf, err)
	}
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.Servers = nil
	f, err := New(filters.Env{}, cfg, nil)
	if err != nil {
		t.Skipf("%s unusable here: %v", resolvConf, err)
	}
	defer f.Close()
	if want := !resolvRotates(resolvConf); f.res.current().inOrder != want {
		t.Errorf("servers of %s: in order %v, want %v", resolvConf, f.res.current().inOrder, want)
	}
}

// A resolver on an IPv6 address ("[::1]:53" in servers) is asked over
// UDP and, for a truncated answer, over TCP, as one on IPv4 is.
func TestIPv6Server(t *testing.T) {
	pc, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	pc.Close()
	srv := dnsbltest.StartOn(t, "::1")
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	srv.AddA("2.2.0.192.bl.test", 300, "127.0.0.2")
	srv.SetBehaviour("2.2.0.192.bl.test", dnsbltest.Truncate)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	if got := e.f.s.servers; len(got) != 1 || got[0] != srv.Addr || srv.Addr[0] != '[' {
		t.Fatalf("servers %v from %q", got, srv.Addr)
	}
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if v := e.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Reject {
			t.Errorf("%s: %+v, want reject", ip, v)
		}
	}
	if n := srv.CountNet("2.2.0.192.bl.test", dns.TypeA, "tcp"); n != 1 {
		t.Errorf("the truncated answer was asked %d times over TCP, want 1", n)
	}
}

// A server that answers over UDP but takes no TCP fails the lookups whose
// answer it truncates; the next server answers them. It is not passed
// over for the other lookups: it answers them, and the servers after it
// (in resolv.conf often a public fallback, which lists answer
// differently) must not get them all for downFor.
func TestServerWithoutTCPNotPassedOver(t *testing.T) {
	big := "1.2.0.192.bl.test."
	udpOnly := rawServer(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Name == big {
			m.Truncated = true
			return m
		}
		m.Answer = []dns.RR{mustRR(t, r.Question[0].Name+" 300 IN A 127.0.0.2")}
		return m
	})
	next := dnsbltest.Start(t)
	next.AddA(big, 300, "127.0.0.2")
	r := newResolver([]string{udpOnly, next.Addr}, time.Second, 2, nil)
	r.use(serverSet{servers: r.current().servers, inOrder: true})
	if a := r.query(context.Background(), strings.TrimSuffix(big, "."), dns.TypeA, time.Hour, time.Minute); a.fail != "" || len(a.addrs) != 1 {
		t.Fatalf("truncated at the first server: %+v, want the next server's listing", a)
	}
	if r.down.holds(udpOnly, time.Now()) {
		t.Error("the server that answered over UDP is passed over")
	}
	if a := r.query(context.Background(), "2.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute); a.fail != "" || len(a.addrs) != 1 {
		t.Errorf("another name: %+v, want the listing", a)
	}
	if n := next.Count("2.2.0.192.bl.test", dns.TypeA); n != 0 {
		t.Errorf("the next server got %d queries for a name the first answers", n)
	}
}

// A refusal code asked again at the next server that then fails leaves
// the refusal as the lookup's answer: the list answered, refusing the
// resolver, and that is what the log and the errors metric must say,
// not the timeout of a server that gave nothing.
func TestRefusalKeptWhenTheNextServerFails(t *testing.T) {
	public := dnsbltest.Start(t)
	public.AddA("1.2.0.192.bl.test", 60, "127.255.255.254")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	r := newResolver([]string{public.Addr, pc.LocalAddr().String()}, 100*time.Millisecond, 2, nil)
	r.use(serverSet{servers: r.current().servers, inOrder: true})
	a := r.query(context.Background(), "1.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	if a.fail != "" || !a.refused() {
		t.Errorf("answer %+v, want the refusal", a)
	}
	if !r.down.holds(pc.LocalAddr().String(), time.Now()) {
		t.Error("the server that gave no answer is not passed over")
	}
}

// A list whose own servers are dead makes the resolver time out on its
// names only (the resolver keeps trying them), while it answers every
// other query. Such a timeout must not pass the resolver over: every
// lookup of the other lists would go to the next server for downFor,
// in resolv.conf often a public fallback that lists answer "not listed".
// A server that answered some query while this one waited is not dead.
func TestTimeoutOfOneNameKeepsTheServer(t *testing.T) {
	own := dnsbltest.Start(t)
	fallback := dnsbltest.Start(t) // knows no listing
	dead := "1.2.0.192.dead.test"
	own.SetBehaviour(dead, dnsbltest.Drop)
	own.AddA("1.2.0.192.bl.test", 60, "127.0.0.2")
	own.AddA("2.2.0.192.bl.test", 60, "127.0.0.2")
	r := newResolver([]string{own.Addr, fallback.Addr}, 2*time.Second, 2, nil)
	r.use(serverSet{servers: r.current().servers, inOrder: true})
	done := make(chan answer, 1)
	go func() { done <- r.query(context.Background(), dead, dns.TypeA, time.Hour, time.Minute) }()
	waitFor(t, "the query of the dead list to reach the server", func() bool { return own.Count(dead, dns.TypeA) == 1 })
	// Another lookup, answered while the dead list's waits.
	if a := r.query(context.Background(), "1.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute); len(a.addrs) != 1 {
		t.Fatalf("meanwhile: %+v, want the listing", a)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the query of the dead list did not end")
	}
	if r.down.holds(own.Addr, time.Now()) {
		t.Error("a server that answers is passed over after one name's timeout")
	}
	if a := r.query(context.Background(), "2.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute); len(a.addrs) != 1 {
		t.Errorf("after the timeout: %+v, want the listing", a)
	}
	if n := fallback.Count("2.2.0.192.bl.test", dns.TypeA); n != 0 {
		t.Errorf("the fallback got %d queries for a name the first server answers", n)
	}
}

// A refusal answered through another server is no failure, but it means
// a public resolver is among the servers: a warning names it, once a
// minute, and no error is counted.
func TestRefusalAnsweredElsewhereIsLogged(t *testing.T) {
	own := dnsbltest.Start(t)
	public := dnsbltest.Start(t)
	cfg := baseConfig(own, ZoneConfig{Zone: "bl.test"})
	cfg.Servers = []string{public.Addr, own.Addr}
	cfg.Attempts = 2
	e := newEnv(t, own, cfg, nil)
	for i := range 4 {
		name := fmt.Sprintf("%d.2.0.192.bl.test", i+1)
		own.AddA(name, 300, "127.0.0.2")
		public.AddA(name, 300, "127.255.255.254")
	}
	for i := range 4 {
		if v := e.check(t, filters.StageConnect, conn(fmt.Sprintf("192.0.2.%d", i+1))); v.Action != filters.Reject {
			t.Errorf("192.0.2.%d, listed: %v, want reject", i+1, v.Action)
		}
	}
	if len(public.Queries()) == 0 {
		t.Fatal("no query reached the public resolver: this test proves nothing")
	}
	var warns []string
	for _, line := range strings.Split(e.logText(), "\n") {
		if strings.Contains(line, "level=WARN") {
			warns = append(warns, line)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "the list refused the query through a server and was asked again through another") ||
		!strings.Contains(warns[0], "server="+public.Addr) || !strings.Contains(warns[0], "zone=bl.test") {
		t.Errorf("warnings %q, want one naming server=%s", warns, public.Addr)
	}
	if e.obs.get("error bl.test list_refused") != 0 {
		t.Errorf("observer: %s, want no refusal counted", e.obs)
	}
}

// resolvRotates reports whether the resolv.conf file at path sets
// "options rotate" (see resolvOptions). A file that cannot be read sets
// nothing.
func resolvRotates(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	rotate, _ := resolvOptions(b)
	return rotate
}
