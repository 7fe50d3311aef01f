package dnsbl

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
)

// tcpOnlyServer runs a DNS server that listens on a 127.0.0.1 TCP port
// only, as a resolver behind a forwarder into DNS over TLS, or behind a
// firewall that drops UDP, is reached. It answers the names of listed
// (lower case, no final dot) with 127.0.0.2 and every other name with
// NXDOMAIN, and counts the queries it gets.
func tcpOnlyServer(t *testing.T, listed ...string) (addr string, queries *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	queries = &atomic.Int32{}
	s := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		name := strings.TrimSuffix(strings.ToLower(r.Question[0].Name), ".")
		if r.Question[0].Qtype == dns.TypeA && strings.Contains(" "+strings.Join(listed, " ")+" ", " "+name+" ") {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 2)}}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	serveDNS(t, s)
	return ln.Addr().String(), queries
}

// A resolver reachable over TCP only (a local forwarder into DNS over
// TLS, a firewall that drops UDP) made every lookup fail: queries went
// over UDP, and only a truncated answer over TCP. With transport: tcp the
// listing is found, and the health probe passes, over TCP; without it
// the lookup fails as before, and the probe too.
func TestTransportTCP(t *testing.T) {
	addr, queries := tcpOnlyServer(t, "1.2.0.192.bl.test", "2.0.0.127.bl.test")
	for _, tc := range []struct {
		transport string
		action    filters.Action
		up        bool
	}{
		{"", filters.Continue, false},
		{"udp", filters.Continue, false},
		{"tcp", filters.Reject, true},
	} {
		t.Run("transport="+tc.transport, func(t *testing.T) {
			before := queries.Load()
			cfg := Config{
				Servers:       []string{addr},
				Timeout:       300 * time.Millisecond,
				Transport:     tc.transport,
				ProbeInterval: dur(time.Hour), // one probe, at start
				Zones:         []ZoneConfig{{Zone: "bl.test"}},
			}
			e := newEnv(t, nil, cfg, nil)
			if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != tc.action {
				t.Errorf("listed client: %v, want %v (observer: %s)", v.Action, tc.action, e.obs)
			}
			if tc.up {
				if n := e.obs.get("error bl.test " + KindNetwork); n != 0 {
					t.Errorf("%d network errors over TCP", n)
				}
			} else if n := e.obs.get("lookup bl.test error"); n != 1 {
				t.Errorf("%d failed lookups counted, want 1 (observer: %s)", n, e.obs)
			}
			waitFor(t, "the health probe", func() bool {
				return e.obs.get("health bl.test up")+e.obs.get("health bl.test down") > 0
			})
			if got := e.obs.get("health bl.test up") > 0; got != tc.up {
				t.Errorf("health probe up: %v, want %v", got, tc.up)
			}
			if asked := queries.Load() > before; asked != tc.up {
				t.Errorf("the TCP server was asked: %v, want %v", asked, tc.up)
			}
		})
	}
	if _, err := (Config{Servers: []string{addr}, Transport: "dot", Zones: []ZoneConfig{{Zone: "bl.test"}}}).check(); err == nil ||
		!strings.Contains(err.Error(), `transport "dot": want udp or tcp`) {
		t.Errorf("transport: dot: %v, want it refused", err)
	}
}

// Over TCP, a server that gives no answer is passed over as over UDP:
// one that accepts connections and never answers costs the first lookup
// that meets it a timeout, and is asked no more while the other answers.
func TestTransportTCPPassesOverDeadServer(t *testing.T) {
	live, _ := tcpOnlyServer(t, "1.2.0.192.bl.test")
	var accepted atomic.Int32
	dead := silentTCPServer(t, func() { accepted.Add(1) })
	r := newResolver([]string{dead, live}, 100*time.Millisecond, 2, nil)
	r.tcpOnly = true
	const lookups = 10
	for i := range lookups {
		a := r.query(context.Background(), "1.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
		if a.fail != "" || len(a.addrs) != 1 || a.addrs[0].String() != "127.0.0.2" {
			t.Fatalf("lookup %d: %+v, want the listing", i, a)
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the dead server got %d connections in %d lookups, want 1", n, lookups)
	}
	if !r.down.holds(dead, time.Now()) {
		t.Errorf("the dead server %s is not passed over", dead)
	}
}

// With no servers set, the servers come from resolv.conf, and so does
// TCP: "options use-vc" (glibc; "usevc" and "tcp" as Go's resolver reads
// it too) sends every query over TCP, as the C library and Go's own
// resolver send theirs. A TCP-only resolver named there was asked over UDP
// and every lookup failed. An explicit transport: udp stays UDP.
func TestTransportFromResolvConfUseVC(t *testing.T) {
	addr, _ := tcpOnlyServer(t, "1.2.0.192.bl.test")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, options, transport string
		action                   filters.Action
	}{
		{"no option", "", "", filters.Continue},
		{"use-vc", "options edns0 use-vc\n", "", filters.Reject},
		{"usevc", "options usevc\n", "", filters.Reject},
		{"tcp", "options tcp\n", "", filters.Reject},
		{"use-vc, transport udp", "options use-vc\n", "udp", filters.Continue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			writeResolvConf(t, path, "nameserver 127.0.0.1\n"+tc.options)
			cfg := Config{
				Timeout:       300 * time.Millisecond,
				Transport:     tc.transport,
				ProbeInterval: dur(0),
				Zones:         []ZoneConfig{{Zone: "bl.test"}},
			}
			cfg.resolvConf, cfg.resolvPort = path, port
			e := newEnv(t, nil, cfg, nil)
			if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != tc.action {
				t.Errorf("listed client: %v, want %v (observer: %s)", v.Action, tc.action, e.obs)
			}
		})
	}
}

// A query keeps the transport of the servers it began with, as it keeps
// the servers: when resolv.conf loses "options use-vc" (and names other
// servers) while a query waits on its first server, the rest of that
// query went to its old servers over UDP, which a TCP-only resolver does
// not answer, and the lookup failed.
func TestTransportKeptWhileResolvConfChanges(t *testing.T) {
	live, _ := tcpOnlyServer(t, "1.2.0.192.bl.test")
	accepted := make(chan struct{}, 1)
	dead := silentTCPServer(t, func() {
		select {
		case accepted <- struct{}{}:
		default:
		}
	})
	r := newResolver(nil, time.Second, 2, nil)
	// As read from a resolv.conf with "options use-vc".
	r.use(serverSet{servers: []string{dead, live}, inOrder: true, tcp: true})
	got := make(chan answer, 1)
	go func() {
		got <- r.query(context.Background(), "1.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
	}()
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the first server got no connection")
	}
	// What resolvConfWatch.check does on a changed file, while the query
	// waits on the first server.
	r.use(serverSet{servers: []string{"127.0.0.1:1"}, inOrder: true})
	select {
	case a := <-got:
		if a.fail != "" || len(a.addrs) != 1 || a.addrs[0].String() != "127.0.0.2" {
			t.Errorf("query begun over TCP: %+v (%v), want the listing from the second server, over TCP", a, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the query did not end")
	}
}

// A reload that changes the transport starts the entry's cache afresh,
// as one that changes servers does, and as a change of "options use-vc"
// in resolv.conf does: the failures cached over the transport that
// does not reach the resolver (every lookup, before the fix in the
// configuration) were served for failure_ttl after the reload that set
// transport: tcp, and listed clients kept getting through.
func TestTransportChangeStartsCacheAfresh(t *testing.T) {
	addr, _ := tcpOnlyServer(t, "1.2.0.192.bl.test")
	cfg := Config{
		Servers:       []string{addr},
		Timeout:       300 * time.Millisecond,
		ProbeInterval: dur(0),
		Zones:         []ZoneConfig{{Zone: "bl.test"}},
	}
	shared := NewShared()
	before := newEnv(t, nil, cfg, shared)
	if v := before.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Fatalf("over UDP: %v, want continue (the lookup fails)", v.Action)
	}
	cfg.Transport = "tcp"
	after := newEnv(t, nil, cfg, shared)
	before.f.Close()
	if v := after.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("after the reload to transport: tcp: %v, want reject (observer: %s)", v.Action, after.obs)
	}
}

// silentTCPServer listens on a 127.0.0.1 TCP port, accepts connections
// and never answers on them, calling onAccept for each, and returns its
// address. The connections are closed when the test ends.
func silentTCPServer(t *testing.T, onAccept func()) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never answered
			mu.Unlock()
			onAccept()
		}
	}()
	return ln.Addr().String()
}
