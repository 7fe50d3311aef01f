package dnsbl

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// An answer that counts as a failed lookup, a refusal code (a public
// resolver, a quota) or an address outside 127.0.0.0/8 (a resolver that
// rewrites NXDOMAIN), is cached for failure_ttl, as a timeout is, not
// for the TTL the answer carries (up to max_ttl, an hour): a listed
// client would go unchecked for that long once the resolver is fixed.
func TestFailedAnswerCachedForFailureTTL(t *testing.T) {
	const name = "1.2.0.192.bl.test"
	for _, tc := range []struct{ what, addr string }{
		{"refusal code", "127.255.255.254"},
		{"address outside 127/8", "192.0.2.200"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			srv := dnsbltest.Start(t)
			srv.AddA(name, 3600, tc.addr)
			e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
			if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
				t.Fatalf("%s: %v, want continue", tc.addr, v.Action)
			}
			// The resolver answers right from now on.
			srv.Remove(name)
			srv.AddA(name, 3600, "127.0.0.2")
			e.clock.Advance(DefaultFailureTTL - time.Second)
			if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue || srv.Count(name, dns.TypeA) != 1 {
				t.Errorf("within failure_ttl: %v, %d queries; want the failure from the cache", v.Action, srv.Count(name, dns.TypeA))
			}
			e.clock.Advance(2 * time.Second)
			if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
				t.Errorf("after failure_ttl: %v, %d queries; want the name asked again and the listing to reject", v.Action, srv.Count(name, dns.TypeA))
			}
		})
	}

	// servers: [a public resolver, our own]. The public one refuses, ours
	// misses one answer: the refusal is what is kept, and it must not
	// keep ours from being asked for an hour.
	t.Run("refusal kept after a timeout", func(t *testing.T) {
		public, own := dnsbltest.Start(t), dnsbltest.Start(t)
		public.AddA(name, 3600, "127.255.255.254")
		own.AddA(name, 3600, "127.0.0.2")
		own.SetBehaviour(name, dnsbltest.Drop)
		cfg := baseConfig(public, ZoneConfig{Zone: "bl.test"})
		cfg.Servers = []string{public.Addr, own.Addr}
		cfg.Timeout = 200 * time.Millisecond
		e := newEnv(t, public, cfg, nil)
		if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
			t.Fatalf("first: %v, want continue", v.Action)
		}
		own.SetBehaviour(name, dnsbltest.Answer)
		e.clock.Advance(DefaultFailureTTL + time.Second)
		if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
			t.Errorf("after failure_ttl: %v (ours asked %d times); want the listing", v.Action, own.Count(name, dns.TypeA))
		}
	})
}
