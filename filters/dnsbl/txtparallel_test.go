package dnsbl

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// The TXT reasons of a message's tag listings are looked up at once, as
// its lists are: looked up one after the other, a list whose TXT answer
// is slow used up the time of those after it, whose TXT lookups then got
// none at all, were counted as timeouts of lists that answer at once,
// and lost their reason texts.
func TestTXTReasonsOfTagListingsLookedUpAtOnce(t *testing.T) {
	srv := dnsbltest.Start(t)
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	for _, z := range []string{"slow.test", "quick.test"} {
		srv.AddA("1.2.0.192."+z, 300, "127.0.0.2")
		// Not cached: each message asks for the text anew.
		srv.AddTXT("1.2.0.192."+z, 0, "Listed by "+z)
	}
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "slow.test", Action: "tag", TXT: true},
		ZoneConfig{Zone: "quick.test", Action: "tag", TXT: true})
	cfg.Timeout = 10 * time.Second
	cfg.Attempts = 1
	e := newEnv(t, srv, cfg, nil)
	m := message("192.0.2.1", "mx.example", "bob@fine.example", "")
	// A first message caches the A answers; then slow.test's answers,
	// its TXT answer now, are held.
	e.check(t, filters.StageHeaders, m)
	srv.Hold("1.2.0.192.slow.test", gate)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := e.f.Check(ctx, filters.StageHeaders, m)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	var fields []string
	for _, ed := range v.Edits {
		if ed.Kind == filters.AddHeader && ed.Name == DefaultHeader {
			fields = append(fields, ed.Value)
		}
	}
	if len(fields) != 2 {
		t.Fatalf("fields %q, want one per list", fields)
	}
	if !strings.Contains(fields[1], `reason="Listed by quick.test"`) {
		t.Errorf("quick.test's TXT reason lost to slow.test's: %q", fields[1])
	}
	if n := e.obs.get("error quick.test timeout"); n != 0 {
		t.Errorf("quick.test counted %d timeouts, answering at once: %s", n, e.obs)
	}
}
