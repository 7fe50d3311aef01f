package dnsbl

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// A list that answered every name as listed and is then mended must not
// have the answers it gave meanwhile count: they were cached for their
// TTL while its listings were ignored, and once the probe finds it
// mended they would refuse every client seen during the breakage until
// they expire, though the list no longer lists them. The answers of the
// other lists stay cached.
func TestMendedListForgetsItsAnswers(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("2.0.0.127.all.test", 300, "127.0.0.2")
	srv.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	// The breakage: the entry no list may have is listed, and so is
	// every client.
	srv.AddA("1.0.0.127.all.test", 300, "127.0.0.2")
	srv.AddA("1.2.0.192.all.test", 300, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "all.test"}, ZoneConfig{Zone: "bl.test"})
	cfg.ProbeInterval = dur(100 * time.Millisecond)
	e := newEnv(t, srv, cfg, nil)
	waitFor(t, "the probe to find all.test listing everything", func() bool {
		return e.obs.get("health all.test down") > 0 && e.obs.get("health bl.test up") > 0
	})
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Fatalf("while the list lists everything: %+v, want continue", v)
	}
	if n := e.obs.get("error all.test lists_all"); n != 1 {
		t.Fatalf("listing not ignored as lists_all: %s", e.obs)
	}

	// The list is mended: the client is not listed, nor is 127.0.0.1.
	srv.Remove("1.0.0.127.all.test")
	srv.Remove("1.2.0.192.all.test")
	waitFor(t, "the probe to find all.test mended", func() bool { return e.obs.get("health all.test up") > 0 })
	// Well within the 300 s TTL of the answer given during the breakage.
	e.clock.Advance(time.Minute)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Errorf("client no longer listed, after the list was mended: %+v, want continue (an answer of the breakage served from the cache)", v)
	}
	if n := srv.Count("1.2.0.192.all.test", dns.TypeA); n != 2 {
		t.Errorf("the mended list was asked %d times for the client, want 2", n)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 1 {
		t.Errorf("the other list was asked %d times for the client, want 1: its answer stays cached", n)
	}

	// A client the mended list does list is refused.
	srv.AddA("3.2.0.192.all.test", 300, "127.0.0.2")
	if v := e.check(t, filters.StageConnect, conn("192.0.2.3")); v.Action != filters.Reject {
		t.Errorf("client listed by the mended list: %+v, want reject", v)
	}
}
