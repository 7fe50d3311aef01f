package dnsbl

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// A reload that fails builds the entry's new filter on the entry's cache,
// then closes it without its ever checking a message: the running filter
// goes on alone. The new filter's cache_size was set on the shared cache
// as it was built, and stayed: after a failed reload to cache_size 0 the
// running filter cached nothing any more, and asked the lists for every
// message (a dead list its timeout each time), until a restart.
func TestFailedReloadKeepsRunningCacheSize(t *testing.T) {
	srv := dnsbltest.Start(t)
	listed := "1.2.0.192.bl.test"
	srv.AddA(listed, 3600, "127.0.0.2")
	shared := NewShared()
	clock := newFakeClock()
	shared.now = clock.Now
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	running := newEnv(t, srv, cfg, shared)
	running.check(t, filters.StageConnect, conn("192.0.2.1"))

	// The reload's filter, with cache_size 0, built and closed again.
	failed := cfg
	failed.CacheSize = ptr(0)
	f, err := New(filters.Env{Name: "dnsbl"}, failed, shared)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	before := srv.Count(listed, dns.TypeA)
	for i := range 3 {
		if v := running.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
			t.Fatalf("check %d: %v, want reject", i+1, v.Action)
		}
	}
	// Answers the failed reload's filter evicted as it was built are
	// asked again once.
	if n := srv.Count(listed, dns.TypeA) - before; n > 1 {
		t.Errorf("running filter after a failed reload to cache_size 0: %d queries for 3 checks, want at most 1", n)
	}
	if n := running.f.cache.len(); n != 1 {
		t.Errorf("running filter's cache holds %d answers, want 1", n)
	}
}
