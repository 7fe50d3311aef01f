package dnsbl

import (
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// "sluice config check" builds each filter to check its options and
// closes it at once (filters.Env.CheckOnly). The dnsbl filter started its
// health probes all the same, which query every list at once: a check
// run on a machine without the resolver (a package build, a config
// pushed from elsewhere) sent queries to the lists, and with a
// probe_interval that runs one probe per list per check. Built to check
// only, it starts none.
func TestCheckOnlyStartsNoProbe(t *testing.T) {
	for _, checkOnly := range []bool{false, true} {
		srv := dnsbltest.Start(t)
		cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
		cfg.ProbeInterval = dur(time.Hour) // one probe, at start
		f, err := New(filters.Env{Name: "dnsbl", CheckOnly: checkOnly}, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A filter that serves probes at once; give one built to check
		// only as long to send one before it is closed, as the check
		// would close it sooner.
		wait := 5 * time.Second
		if checkOnly {
			wait = 500 * time.Millisecond
		}
		deadline := time.Now().Add(wait)
		for len(srv.Queries()) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		f.Close()
		if n := len(srv.Queries()); checkOnly && n != 0 {
			t.Errorf("built to check only, the filter sent %d queries: %v", n, srv.Queries())
		} else if !checkOnly && n == 0 {
			t.Error("a filter that serves sent no probe: the test cannot tell")
		}
	}
}
