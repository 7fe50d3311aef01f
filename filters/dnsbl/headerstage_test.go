package dnsbl

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// At the end of the header block the From domains are looked up in the
// refusing lists and in the tag lists, and all lists of a stage are asked
// in parallel (docs/dnsbl.md): a slow refusing list must not hold the tag
// lists' queries back until it answers or the filter's time runs out,
// which left them no time at all, so that a listing of a tag list that
// answers at once was lost and counted as a timeout of that list.
func TestFromTagListsAskedAlongTheRefusingOnes(t *testing.T) {
	srv := dnsbltest.Start(t)
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	srv.Hold("spammer.example.slow.test", gate)
	srv.AddA("spammer.example.tag.test", 300, "127.0.1.2")
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "slow.test", Type: "domain", Check: []string{"header_from"}},
		ZoneConfig{Zone: "tag.test", Type: "domain", Check: []string{"header_from"}, Action: "tag"})
	// The slow list's answer does not come within the filter's time.
	cfg.Timeout = 10 * time.Second
	cfg.Attempts = 1
	e := newEnv(t, srv, cfg, nil)
	m := message("192.0.2.1", "mx.example", "bob@fine.example", "Bob <bob@spammer.example>")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := e.f.Check(ctx, filters.StageHeaders, m)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	tagged := false
	for _, ed := range v.Edits {
		if ed.Kind == filters.AddHeader && ed.Name == DefaultHeader && strings.HasPrefix(ed.Value, "tag.test; from=spammer.example;") {
			tagged = true
		}
	}
	if !tagged {
		t.Errorf("no tag of tag.test, which answers at once, while slow.test did not answer: %+v", v)
	}
	if n := e.obs.get("error tag.test timeout"); n != 0 {
		t.Errorf("tag.test counted %d timeouts, answering at once: %s", n, e.obs)
	}
	if n := e.obs.get("error slow.test timeout"); n != 1 {
		t.Errorf("slow.test: %d timeouts, want 1: %s", n, e.obs)
	}
}
